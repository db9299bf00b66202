package webhook

// Signing, as the Standard Webhooks specification has it: the signed
// content is "<webhook-id>.<webhook-timestamp>.<body>", the signature the
// base64 of its HMAC-SHA256 under the secret's bytes, sent as
// "v1,<base64>"; several signatures (one per live secret, during a
// rotation) are separated by spaces. A secret is written "whsec_" and the
// base64 of its bytes.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret's text.
const SecretPrefix = "whsec_"

// Secret bounds: the specification asks for 24 to 64 bytes; mcpedge makes
// 32-byte secrets.
const (
	minSecretBytes = 24
	maxSecretBytes = 64
	newSecretBytes = 32
)

// NewSecret returns a fresh random secret, "whsec_" and base64.
func NewSecret() string {
	b := make([]byte, newSecretBytes)
	rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSecret returns the bytes of a secret written "whsec_<base64>".
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New(`a webhook secret starts with "whsec_"`)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("a webhook secret is whsec_ and standard base64")
	}
	if len(b) < minSecretBytes || len(b) > maxSecretBytes {
		return nil, fmt.Errorf("a webhook secret has %d to %d bytes, this one %d", minSecretBytes, maxSecretBytes, len(b))
	}
	return b, nil
}

// Sign returns the "v1,<base64>" signature of a message.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignatureHeader returns the webhook-signature value: one signature per
// key, space-separated.
func SignatureHeader(keys [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, ts, body)
	}
	return strings.Join(sigs, " ")
}

// Verification errors.
var (
	ErrNoSignature  = errors.New("webhook: no valid v1 signature")
	ErrBadTimestamp = errors.New("webhook: the timestamp is missing, malformed or outside the tolerance")
)

// maxHeader bounds a signature header Verify reads.
const maxHeader = 8 << 10

// Verify checks a received message as a receiver would: timestamp (Unix
// seconds) within tolerance of now, and one of the header's v1 signatures
// made with key. It is what the tests' receivers use, and what an
// operator's receiver in Go may copy.
func Verify(key []byte, id, timestamp, header string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || len(timestamp) > 19 {
		return ErrBadTimestamp
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return ErrBadTimestamp
	}
	if len(header) > maxHeader {
		return ErrNoSignature
	}
	want := Sign(key, id, ts, body)
	for _, sig := range strings.Fields(header) {
		if !strings.HasPrefix(sig, "v1,") {
			continue // another scheme (v1a, …) or junk
		}
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return ErrNoSignature
}
