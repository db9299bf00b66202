package hub

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mcpedge/mcpedge/internal/store"
)

func testKey(t testing.TB) (*ecdsa.PrivateKey, []byte, string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return k, der, DeviceID(der)
}

func compress(t testing.TB, b []byte) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func validBatch(id string) Batch {
	return Batch{
		DeviceID: id, SentAt: time.Unix(1700000000, 0).UTC(),
		Snapshots: []Snapshot{{At: time.Unix(1700000000, 0).UTC(), QueueDepth: 2, Series: map[string]float64{"go_goroutines": 40, `mcpedge_requests_total{method="tools/call"}`: 3}}},
		AuditFrom: 4,
		Audit: []store.AuditEntry{
			{Seq: 5, Time: time.Unix(1700000000, 0).UTC(), Actor: "k1", ActorKind: "key", Action: "tool.call", Outcome: "ok", Detail: []byte(`{"tool":"echo"}`)},
			{Seq: 6, Time: time.Unix(1700000001, 0).UTC(), Actor: "k1", ActorKind: "key", Action: "tool.call", Outcome: "denied"},
		},
	}
}

func TestDigestBindsEverything(t *testing.T) {
	n := bytes.Repeat([]byte{1}, NonceBytes)
	base := Digest(PurposeEnroll, n, "dev", "https://hub.example.com")
	if !bytes.Equal(base, Digest(PurposeEnroll, n, "dev", "HTTPS://Hub.Example.com/")) {
		t.Error("the canonical URL should not depend on case or a trailing slash")
	}
	for name, d := range map[string][]byte{
		"purpose": Digest(PurposeSession, n, "dev", "https://hub.example.com"),
		"nonce":   Digest(PurposeEnroll, bytes.Repeat([]byte{2}, NonceBytes), "dev", "https://hub.example.com"),
		"device":  Digest(PurposeEnroll, n, "dev2", "https://hub.example.com"),
		"hub":     Digest(PurposeEnroll, n, "dev", "https://other.example.com"),
		// Length prefixes: moving a byte between fields changes the digest.
		"shifted": Digest(PurposeEnroll, n, "de", "vhttps://hub.example.com"),
	} {
		if bytes.Equal(d, base) {
			t.Errorf("changing the %s does not change the digest", name)
		}
	}
}

func TestSignInRoundTrip(t *testing.T) {
	k, der, id := testKey(t)
	nonce := bytes.Repeat([]byte{9}, NonceBytes)
	sig, _ := k.Sign(rand.Reader, Digest(PurposeEnroll, nonce, id, "http://h"), crypto.SHA256)
	body, _ := json.Marshal(SignInRequest{DeviceID: id, Nonce: nonce, Signature: sig, HubURL: "http://h", PublicKey: der, Kind: "file", Token: "t", Name: "n", Labels: []string{"a=b"}})
	req, err := DecodeSignIn(body, true)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(req.PublicKey)
	if err != nil || !ecdsa.VerifyASN1(pub, Digest(PurposeEnroll, req.Nonce, req.DeviceID, req.HubURL), req.Signature) {
		t.Fatalf("the decoded request does not verify: %v", err)
	}
	if _, err := DecodeSignIn(body, false); err == nil {
		t.Error("a session request with enrollment fields was accepted")
	}
	// A TPM device's sign-in carries its attestation; its enrollment may
	// carry the answer to the activation challenge.
	session, _ := json.Marshal(SignInRequest{DeviceID: id, Nonce: nonce, Signature: sig, HubURL: "http://h", Attestation: json.RawMessage(`{"version":1}`)})
	if req, err := DecodeSignIn(session, false); err != nil || string(req.Attestation) != `{"version":1}` {
		t.Errorf("a session with an attestation: %v", err)
	}
	withActivation, _ := json.Marshal(SignInRequest{DeviceID: id, Nonce: nonce, Signature: sig, HubURL: "http://h", PublicKey: der, Kind: "tpm", Attestation: json.RawMessage(`{}`), Activation: []byte("secret")})
	if req, err := DecodeSignIn(withActivation, true); err != nil || string(req.Activation) != "secret" {
		t.Errorf("an enrollment with an activation answer: %v", err)
	}
	if _, err := DecodeSignIn(withActivation, false); err == nil {
		t.Error("a session request with an activation answer was accepted")
	}
}

func TestDecodeSignInRefusals(t *testing.T) {
	_, der, id := testKey(t)
	_, der2, _ := testKey(t)
	rsaLike := []byte("not a key")
	good := func() SignInRequest {
		return SignInRequest{DeviceID: id, Nonce: bytes.Repeat([]byte{1}, NonceBytes), Signature: []byte{1, 2}, HubURL: "http://h", PublicKey: der, Kind: "file"}
	}
	for name, mod := range map[string]func(*SignInRequest){
		"bad id":               func(r *SignInRequest) { r.DeviceID = "XYZ" },
		"short nonce":          func(r *SignInRequest) { r.Nonce = []byte{1} },
		"no signature":         func(r *SignInRequest) { r.Signature = nil },
		"no hub url":           func(r *SignInRequest) { r.HubURL = "" },
		"not a key":            func(r *SignInRequest) { r.PublicKey = rsaLike },
		"another key":          func(r *SignInRequest) { r.PublicKey = der2 },
		"kind":                 func(r *SignInRequest) { r.Kind = "usb" },
		"tpm without att":      func(r *SignInRequest) { r.Kind = "tpm" },
		"file with att":        func(r *SignInRequest) { r.Attestation = json.RawMessage(`{}`) },
		"file with activation": func(r *SignInRequest) { r.Activation = []byte{1} },
		"long activation": func(r *SignInRequest) {
			r.Kind, r.Attestation, r.Activation = "tpm", json.RawMessage(`{}`), make([]byte, MaxActivation+1)
		},
		"empty label": func(r *SignInRequest) { r.Labels = []string{""} },
		"long name":   func(r *SignInRequest) { r.Name = strings.Repeat("x", 65) },
	} {
		r := good()
		mod(&r)
		b, _ := json.Marshal(r)
		if _, err := DecodeSignIn(b, true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, b := range map[string]string{
		"unknown field": `{"device_id":"` + id + `","surprise":1}`,
		"two objects":   `{} {}`,
		"deep":          strings.Repeat("[", 100) + strings.Repeat("]", 100),
		"not json":      `nope`,
		"too big":       `{"name":"` + strings.Repeat("x", MaxSignInBody) + `"}`,
	} {
		if _, err := DecodeSignIn([]byte(b), true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecodeTelemetry(t *testing.T) {
	_, _, id := testKey(t)
	raw, _ := json.Marshal(validBatch(id))
	b, err := DecodeTelemetry(bytes.NewReader(compress(t, raw)))
	if err != nil {
		t.Fatal(err)
	}
	if b.DeviceID != id || len(b.Audit) != 2 || string(b.Audit[0].Detail) != `{"tool":"echo"}` || b.Snapshots[0].Series["go_goroutines"] != 40 {
		t.Errorf("decoded %+v", b)
	}
	// A zip bomb stops at MaxTelemetry, with ErrTooLarge.
	bomb := compress(t, bytes.Repeat([]byte(" "), MaxTelemetry+1024))
	if len(bomb) > MaxCompressedTelemetry {
		t.Fatalf("the bomb is %d bytes compressed", len(bomb))
	}
	if _, err := DecodeTelemetry(bytes.NewReader(bomb)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("bomb: %v", err)
	}
	if _, err := DecodeTelemetry(strings.NewReader("not zstd")); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("garbage: %v", err)
	}
	// Batches that break the rules.
	for name, mod := range map[string]func(*Batch){
		"gap":          func(b *Batch) { b.Audit[1].Seq = 8 },
		"before from":  func(b *Batch) { b.AuditFrom = 5 },
		"no action":    func(b *Batch) { b.Audit[0].Action = "" },
		"bad device":   func(b *Batch) { b.DeviceID = "x" },
		"outcome":      func(b *Batch) { b.Audit[0].Outcome = "maybe" },
		"long ip":      func(b *Batch) { b.Audit[0].ClientIP = strings.Repeat("1", 65) },
		"negative":     func(b *Batch) { b.DroppedSnapshots = -1 },
		"many entries": func(b *Batch) { b.Audit = make([]store.AuditEntry, MaxAuditEntries+1) },
	} {
		bb := validBatch(id)
		mod(&bb)
		raw, _ := json.Marshal(bb)
		if _, err := DecodeTelemetry(bytes.NewReader(compress(t, raw))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeTelemetry: whatever the bytes, DecodeTelemetry returns within
// its bounds and never panics; what it accepts keeps the batch rules.
func FuzzDecodeTelemetry(f *testing.F) {
	k, _, id := testKey(f)
	_ = k
	raw, _ := json.Marshal(validBatch(id))
	f.Add(compress(f, raw))
	f.Add(raw)
	f.Add([]byte{})
	f.Add(compress(f, []byte(`{"device_id":"`+id+`","audit_from":0,"audit":[{"seq":2,"action":"x"}]}`)))
	f.Add(compress(f, bytes.Repeat([]byte("["), 1000)))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff}) // a zstd frame header claiming a huge window
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeTelemetry(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(b.Audit) > MaxAuditEntries || len(b.Snapshots) > MaxSnapshots {
			t.Fatalf("accepted an oversized batch")
		}
		for i, e := range b.Audit {
			if e.Seq != b.AuditFrom+int64(i)+1 {
				t.Fatalf("accepted a gap")
			}
		}
	})
}

// FuzzDecodeSignIn: enrollment and sign-in requests never panic the
// decoder, and what it accepts has a device id that matches its key.
func FuzzDecodeSignIn(f *testing.F) {
	k, der, id := testKey(f)
	nonce := bytes.Repeat([]byte{3}, NonceBytes)
	sig, _ := k.Sign(rand.Reader, Digest(PurposeEnroll, nonce, id, "http://h"), crypto.SHA256)
	enroll, _ := json.Marshal(SignInRequest{DeviceID: id, Nonce: nonce, Signature: sig, HubURL: "http://h", PublicKey: der, Kind: "file", Token: "t"})
	session, _ := json.Marshal(SignInRequest{DeviceID: id, Nonce: nonce, Signature: sig, HubURL: "http://h"})
	f.Add(enroll, true)
	f.Add(session, false)
	f.Add([]byte(`{"kind":"tpm","attestation":{"version":1}}`), true)
	tpmEnroll, _ := json.Marshal(SignInRequest{DeviceID: id, Nonce: nonce, Signature: sig, HubURL: "http://h", PublicKey: der, Kind: "tpm", Attestation: json.RawMessage(`{"version":1}`), Activation: bytes.Repeat([]byte{7}, MaxActivation)})
	tpmSession, _ := json.Marshal(SignInRequest{DeviceID: id, Nonce: nonce, Signature: sig, HubURL: "http://h", Attestation: json.RawMessage(`{"version":1,"pcrs":{"23":"AA=="}}`)})
	f.Add(tpmEnroll, true)
	f.Add(tpmSession, false)
	f.Add(tpmEnroll, false)
	f.Add([]byte(`{`), false)
	f.Fuzz(func(t *testing.T, data []byte, isEnroll bool) {
		req, err := DecodeSignIn(data, isEnroll)
		if err != nil {
			return
		}
		if isEnroll && DeviceID(req.PublicKey) != req.DeviceID {
			t.Fatalf("accepted a device id of another key")
		}
		if len(req.Nonce) != NonceBytes {
			t.Fatalf("accepted a nonce of %d bytes", len(req.Nonce))
		}
	})
}
