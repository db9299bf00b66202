package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's reference test vector (its
// reference libraries test against it).
const (
	vecSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTimestamp = 1614265330
	vecBody      = `{"test": 2432232314}`
	vecSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignReferenceVector(t *testing.T) {
	key, err := ParseSecret(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, vecID, time.Unix(vecTimestamp, 0), []byte(vecBody)); got != vecSignature {
		t.Errorf("Sign = %s, want the reference %s", got, vecSignature)
	}
	if err := Verify(key, vecID, "1614265330", "v1a,xyz "+vecSignature, []byte(vecBody), time.Unix(vecTimestamp+60, 0), 5*time.Minute); err != nil {
		t.Errorf("Verify of the reference: %v", err)
	}
}

// TestSignIndependent recomputes a signature with the standard library
// alone, as a receiver in another language would.
func TestSignIndependent(t *testing.T) {
	s := NewSecret()
	key, err := ParseSecret(s)
	if err != nil || len(key) != 32 {
		t.Fatalf("NewSecret %q: %v (%d bytes)", s, err, len(key))
	}
	ts := time.Unix(1765000000, 0)
	body := []byte(`{"type":"key.created","timestamp":"2025-12-06T05:46:40Z","data":{}}`)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("evt_1.1765000000." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := Sign(key, "evt_1", ts, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerifyRotation(t *testing.T) {
	oldK, _ := ParseSecret(NewSecret())
	newK, _ := ParseSecret(NewSecret())
	other, _ := ParseSecret(NewSecret())
	now := time.Unix(1765000000, 0)
	body := []byte(`{}`)
	h := SignatureHeader([][]byte{newK, oldK}, "evt_1", now, body)
	if n := len(strings.Fields(h)); n != 2 {
		t.Fatalf("header %q has %d signatures, want 2", h, n)
	}
	for _, k := range [][]byte{oldK, newK} {
		if err := Verify(k, "evt_1", "1765000000", h, body, now, time.Minute); err != nil {
			t.Errorf("a receiver with either secret must accept: %v", err)
		}
	}
	for name, tc := range map[string]struct {
		key         []byte
		id, ts, hdr string
		body        string
		want        error
	}{
		"other secret":  {other, "evt_1", "1765000000", h, "{}", ErrNoSignature},
		"other id":      {newK, "evt_2", "1765000000", h, "{}", ErrNoSignature},
		"other body":    {newK, "evt_1", "1765000000", h, "{ }", ErrNoSignature},
		"stale":         {newK, "evt_1", "1764999000", h, "{}", ErrBadTimestamp},
		"future":        {newK, "evt_1", "1765001000", h, "{}", ErrBadTimestamp},
		"not a number":  {newK, "evt_1", "17650e5", h, "{}", ErrBadTimestamp},
		"no v1":         {newK, "evt_1", "1765000000", strings.ReplaceAll(h, "v1,", "v2,"), "{}", ErrNoSignature},
		"empty header":  {newK, "evt_1", "1765000000", "", "{}", ErrNoSignature},
		"truncated sig": {newK, "evt_1", "1765000000", h[:20], "{}", ErrNoSignature},
	} {
		if err := Verify(tc.key, tc.id, tc.ts, tc.hdr, []byte(tc.body), now, time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.want)
		}
	}
}

func TestParseSecret(t *testing.T) {
	for _, bad := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!!", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) succeeded", bad)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(vecID, "1614265330", vecSignature, []byte(vecBody))
	f.Add("", "", "v1, v1,,, v2,x", []byte{})
	key, _ := ParseSecret(vecSecret)
	f.Fuzz(func(t *testing.T, id, ts, header string, body []byte) {
		err := Verify(key, id, ts, header, body, time.Unix(vecTimestamp, 0), time.Hour)
		if err != nil && !errors.Is(err, ErrNoSignature) && !errors.Is(err, ErrBadTimestamp) {
			t.Fatalf("Verify returned an unexpected error: %v", err)
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	f.Add(vecSecret)
	f.Add("whsec_")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseSecret(s)
		if err == nil && (len(b) < minSecretBytes || len(b) > maxSecretBytes) {
			t.Fatalf("ParseSecret(%q) accepted %d bytes", s, len(b))
		}
	})
}
