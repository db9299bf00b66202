// Package hub lets one mcpedge gateway be the hub of others (edges): edges
// enroll with their device key, sign in again by a signed challenge
// whenever they connect, call the hub's tools through its /mcp as their
// device, and send it batched, zstd-compressed telemetry (metrics and
// audit entries). The hub lists its devices and their last contact.
//
// This file is the wire format both sides share; service.go is the hub's
// side and package internal/hub/edge the edge's. See docs/hub.md.
package hub

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Paths of the hub API, under the gateway's /api.
const (
	PathNonce     = "/api/hub/nonce"
	PathEnroll    = "/api/hub/enroll"
	PathSession   = "/api/hub/session"
	PathTelemetry = "/api/hub/telemetry"
	PathTokens    = "/api/hub/tokens"
	PathDevices   = "/api/devices"
)

// PublicPaths need no credential: a device signs in through them.
var PublicPaths = []string{PathNonce, PathEnroll, PathSession}

// Bounds of what the hub accepts. They are part of the protocol: an edge
// stays within them (a batch of at most MaxAuditEntries, snapshots of at
// most MaxSnapshots) so that the hub never has to refuse a well-behaved
// device.
const (
	// NonceBytes is the size of a challenge nonce.
	NonceBytes = 32
	// MaxSignInBody bounds an enrollment or sign-in request (JSON): a
	// public key, a signature and a TPM attestation fit easily.
	MaxSignInBody = 64 << 10
	// MaxCompressedTelemetry bounds a telemetry post as sent (zstd).
	MaxCompressedTelemetry = 1 << 20
	// MaxTelemetry bounds a telemetry post after decompression: a zip
	// bomb stops here, having cost at most this much memory.
	MaxTelemetry = 16 << 20
	// MaxDecoderWindow bounds the zstd window the hub accepts (decoder
	// memory); the edge compresses with a smaller one.
	MaxDecoderWindow = 8 << 20
	// MaxAuditEntries bounds the audit entries of one post.
	MaxAuditEntries = 5000
	// MaxSnapshots bounds the metric snapshots of one post.
	MaxSnapshots = 10000
	// MaxSeriesPerSnapshot bounds the series of one snapshot.
	MaxSeriesPerSnapshot = 20000
	// MaxJSONDepth bounds the nesting of every hub request.
	MaxJSONDepth = 32
)

// SignInRequest is the body of POST /api/hub/enroll and /api/hub/session.
// The device proves it holds the key by signing Digest(purpose, nonce,
// device id, hub URL) with it; the nonce is one the hub issued (POST
// /api/hub/nonce) and accepts once.
type SignInRequest struct {
	DeviceID string `json:"device_id"`
	// Nonce and Signature are base64 (standard encoding) in JSON.
	Nonce     []byte `json:"nonce"`
	Signature []byte `json:"signature"`
	// HubURL is the hub's base URL as the edge has it configured; its host
	// must be the one the request reached.
	HubURL string `json:"hub_url"`

	// Enrollment only.
	// PublicKey is the device key's public half, PKIX DER (base64).
	PublicKey []byte `json:"public_key,omitempty"`
	// Kind is "tpm" or "file". A TPM key comes with Attestation, which
	// the hub verifies (devicekey.Verify) and whose AK it pins.
	Kind string `json:"kind,omitempty"`
	// Attestation (devicekey.Attestation JSON) is made for Nonce. A TPM
	// device sends one with its enrollment and with every sign-in: the
	// hub checks it against the pinned AK and the recorded PCR values.
	Attestation json.RawMessage `json:"attestation,omitempty"`
	// Activation is the secret the device's TPM recovered from the hub's
	// credential activation challenge (SignInResponse.Activation), on the
	// second enrollment request of a TPM device.
	Activation []byte `json:"activation,omitempty"`
	// Token is the enrollment token; a device the hub knows needs none.
	Token  string   `json:"token,omitempty"`
	Name   string   `json:"name,omitempty"`
	Labels []string `json:"labels,omitempty"`
}

// SignInResponse is the hub's answer to a successful enrollment or sign-in:
// a short-lived bearer credential for /mcp and /api/hub/telemetry, and
// where the device's telemetry stands.
type SignInResponse struct {
	DeviceID   string    `json:"device_id"`
	TenantID   string    `json:"tenant_id"`
	TenantName string    `json:"tenant"`
	Token      string    `json:"token"`
	ExpiresAt  time.Time `json:"expires_at"`
	// AuditSeq is the last of the device's audit sequence numbers the
	// hub has: telemetry resumes after it.
	AuditSeq int64 `json:"audit_seq"`
	Attested bool  `json:"attested"`
	// Activation, when set, is a credential activation challenge instead
	// of a credential (Token is empty): the TPM device recovers its
	// secret with TPM2_ActivateCredential and enrolls again with it in
	// SignInRequest.Activation (and a fresh nonce).
	Activation *ActivationChallenge `json:"activation,omitempty"`
}

// ActivationChallenge is a credential the hub made (TPM2_MakeCredential)
// for the EK and AK of an enrolling TPM device's attestation: only the TPM
// that holds both can recover its secret.
type ActivationChallenge struct {
	// CredentialBlob is the TPM2B_ID_OBJECT's and Secret the
	// TPM2B_ENCRYPTED_SECRET's contents (base64 in JSON).
	CredentialBlob []byte `json:"credential_blob"`
	Secret         []byte `json:"secret"`
}

// MaxActivation bounds SignInRequest.Activation (a SHA-256 sized secret).
const MaxActivation = 32

// NonceResponse is the answer of POST /api/hub/nonce.
type NonceResponse struct {
	Nonce     []byte    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Sign-in purposes, bound into the signed digest so that a signature made
// for one can never be presented for the other.
const (
	PurposeEnroll  = "enroll"
	PurposeSession = "session"
)

// Digest is what a device signs (ECDSA P-256 over this SHA-256 digest):
// a domain-separated, length-prefixed encoding of purpose, nonce, device id
// and hub URL.
func Digest(purpose string, nonce []byte, deviceID, hubURL string) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte("mcpedge hub sign-in v1"), []byte(purpose), nonce, []byte(deviceID), []byte(CanonicalURL(hubURL))} {
		var n [8]byte
		for i := range 8 {
			n[i] = byte(uint64(len(part)) >> (56 - 8*i))
		}
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

// CanonicalURL lower-cases scheme and host and drops a trailing slash, so
// that "HTTP://Hub/" and "http://hub" sign the same.
func CanonicalURL(s string) string {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return s
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u.String()
}

// DeviceID is the id of the device whose key's public half is pub: the
// first 32 hex digits of the SHA-256 of its PKIX DER encoding (the same
// rule as devicekey.Key.ID).
func DeviceID(pkixDER []byte) string {
	sum := sha256.Sum256(pkixDER)
	return hex.EncodeToString(sum[:16])
}

// ParsePublicKey parses a device's PKIX DER public key; only ECDSA P-256
// keys are device keys.
func ParsePublicKey(der []byte) (*ecdsa.PublicKey, error) {
	if len(der) == 0 || len(der) > 1024 {
		return nil, fmt.Errorf("public_key: want the device key's PKIX DER encoding (base64), got %d bytes", len(der))
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public_key: not a PKIX public key: %v", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("public_key: a device key is an ECDSA P-256 key")
	}
	return ek, nil
}

// DecodeSignIn parses and checks the shape of an enrollment or sign-in
// request (not its signature, which needs the nonce and key). enroll says
// which of the two it is.
func DecodeSignIn(body []byte, enroll bool) (*SignInRequest, error) {
	if len(body) > MaxSignInBody {
		return nil, fmt.Errorf("request body exceeds %d bytes", MaxSignInBody)
	}
	var req SignInRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if !isDeviceID(req.DeviceID) {
		return nil, errors.New("device_id: want 32 lower-case hex digits (the device key's id)")
	}
	if len(req.Nonce) != NonceBytes {
		return nil, fmt.Errorf("nonce: want the %d-byte nonce from POST %s (base64), got %d bytes", NonceBytes, PathNonce, len(req.Nonce))
	}
	if len(req.Signature) == 0 || len(req.Signature) > 128 {
		return nil, errors.New("signature: want the device key's ASN.1 ECDSA signature (base64)")
	}
	if req.HubURL == "" || len(req.HubURL) > 2048 {
		return nil, errors.New("hub_url: want the hub's base URL as the edge has it configured")
	}
	if len(req.Attestation) > 0 && !json.Valid(req.Attestation) {
		return nil, errors.New("attestation: not JSON")
	}
	if !enroll {
		if req.PublicKey != nil || req.Kind != "" || req.Activation != nil || req.Token != "" || req.Name != "" || req.Labels != nil {
			return nil, errors.New("a sign-in carries only device_id, nonce, signature, hub_url and (TPM devices) attestation; enrollment fields belong to " + PathEnroll)
		}
		return &req, nil
	}
	if req.Activation != nil && (req.Kind != "tpm" || len(req.Activation) == 0 || len(req.Activation) > MaxActivation) {
		return nil, fmt.Errorf("activation: want the 1 to %d byte secret a TPM device recovered from the hub's challenge", MaxActivation)
	}
	if _, err := ParsePublicKey(req.PublicKey); err != nil {
		return nil, err
	}
	if DeviceID(req.PublicKey) != req.DeviceID {
		return nil, errors.New("device_id does not belong to public_key")
	}
	switch req.Kind {
	case "file":
		if req.Attestation != nil {
			return nil, errors.New(`attestation: a "file" key cannot be attested`)
		}
	case "tpm":
		if len(req.Attestation) == 0 {
			return nil, errors.New(`attestation: a "tpm" key must come with its attestation`)
		}
	default:
		return nil, fmt.Errorf(`kind: want "tpm" or "file", got %q`, req.Kind)
	}
	if len(req.Token) > 256 || len(req.Name) > 64 || len(req.Labels) > 32 {
		return nil, errors.New("token (256 bytes), name (64 bytes) or labels (32) too long")
	}
	for _, l := range req.Labels {
		if l == "" || len(l) > 128 {
			return nil, errors.New("labels: each must be 1 to 128 bytes")
		}
	}
	return &req, nil
}

func isDeviceID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Batch is one telemetry post: the edge's metric snapshots taken since the
// last post, its audit entries after AuditFrom, and its counters.
type Batch struct {
	DeviceID string    `json:"device_id"`
	SentAt   time.Time `json:"sent_at"`
	// Snapshots are metric snapshots, oldest first.
	Snapshots []Snapshot `json:"snapshots"`
	// DroppedSnapshots counts snapshots the edge dropped (oldest first)
	// because its buffer was full while the hub was unreachable.
	DroppedSnapshots int64 `json:"dropped_snapshots"`
	// AuditFrom is the last audit sequence number the edge believes the
	// hub has; Audit are the entries after it, in order, without gaps.
	AuditFrom int64              `json:"audit_from"`
	Audit     []store.AuditEntry `json:"audit"`
}

// Snapshot is the edge's metrics at one moment: each series (name and
// labels, in the Prometheus text form) and its value. Histograms and
// summaries are carried as their _count and _sum.
type Snapshot struct {
	At time.Time `json:"at"`
	// QueueDepth is the edge's offline queue entries waiting for delivery
	// (pending or delivering).
	QueueDepth int64              `json:"queue_depth"`
	Series     map[string]float64 `json:"series"`
}

// TelemetryResponse acknowledges a batch.
type TelemetryResponse struct {
	// AuditSeq is the last audit sequence number the hub has of this
	// device, after the batch (or, with 409, before it: resume there).
	AuditSeq  int64 `json:"audit_seq"`
	Snapshots int   `json:"snapshots"`
	Audit     int   `json:"audit"`
}

// ErrTooLarge reports a telemetry post over MaxCompressedTelemetry or,
// decompressed, over MaxTelemetry.
var ErrTooLarge = errors.New("telemetry too large")

// DecodeTelemetry decompresses (zstd) and parses a telemetry post, within
// the bounds above whatever the input: bounded decoder memory and window,
// output cut at MaxTelemetry, strict JSON.
func DecodeTelemetry(compressed io.Reader) (*Batch, error) {
	dec, err := zstd.NewReader(io.LimitReader(compressed, MaxCompressedTelemetry+1),
		zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(MaxTelemetry), zstd.WithDecoderMaxWindow(MaxDecoderWindow))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	defer dec.Close()
	raw, err := io.ReadAll(io.LimitReader(dec, MaxTelemetry+1))
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, fmt.Errorf("%w: %v", ErrTooLarge, err)
		}
		return nil, fmt.Errorf("body is not zstd-compressed JSON: %v", err)
	}
	if len(raw) > MaxTelemetry {
		return nil, fmt.Errorf("%w: more than %d bytes decompressed", ErrTooLarge, MaxTelemetry)
	}
	return ParseBatch(raw)
}

// ParseBatch parses a decompressed telemetry post and checks its shape.
func ParseBatch(raw []byte) (*Batch, error) {
	var b Batch
	if err := decodeStrict(raw, &b); err != nil {
		return nil, err
	}
	if !isDeviceID(b.DeviceID) {
		return nil, errors.New("device_id: want 32 lower-case hex digits")
	}
	if len(b.Snapshots) > MaxSnapshots || len(b.Audit) > MaxAuditEntries {
		return nil, fmt.Errorf("at most %d snapshots and %d audit entries per post, got %d and %d", MaxSnapshots, MaxAuditEntries, len(b.Snapshots), len(b.Audit))
	}
	for i, s := range b.Snapshots {
		if len(s.Series) > MaxSeriesPerSnapshot {
			return nil, fmt.Errorf("snapshots[%d]: more than %d series", i, MaxSeriesPerSnapshot)
		}
	}
	if b.AuditFrom < 0 || b.DroppedSnapshots < 0 {
		return nil, errors.New("audit_from and dropped_snapshots must not be negative")
	}
	for i, e := range b.Audit {
		if e.Seq != b.AuditFrom+int64(i)+1 {
			return nil, fmt.Errorf("audit[%d]: seq %d, want %d (entries after audit_from, in order, without gaps)", i, e.Seq, b.AuditFrom+int64(i)+1)
		}
		if e.Action == "" || len(e.Action) > 128 || len(e.Actor) > 256 || len(e.ActorKind) > 32 || len(e.TenantID) > 64 ||
			len(e.Target) > 1024 || len(e.ClientIP) > 64 || len(e.Detail) > 64<<10 {
			return nil, fmt.Errorf("audit[%d]: action missing or a field too long", i)
		}
		switch e.Outcome {
		case "ok", "denied", "error":
		default:
			return nil, fmt.Errorf("audit[%d]: outcome %q, want ok, denied or error", i, e.Outcome)
		}
		if e.LatencyUS < 0 {
			return nil, fmt.Errorf("audit[%d]: negative latency", i)
		}
	}
	return &b, nil
}

// decodeStrict decodes one JSON object into v: bounded depth, no unknown
// fields, no trailing data.
func decodeStrict(data []byte, v any) error {
	if err := jsonguard.Check(data, jsonguard.Limits{MaxDepth: MaxJSONDepth}); err != nil {
		return fmt.Errorf("body must be one JSON object: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %v", err)
	}
	if dec.More() {
		return errors.New("body: data after the JSON object")
	}
	return nil
}

// openAPIDoc describes the hub's endpoints; the admin API merges it into
// /api/openapi.json.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPIDocument returns the OpenAPI 3.1 document of the hub endpoints.
func OpenAPIDocument() []byte { return openAPIDoc }

// wireAudit is an audit entry as the telemetry wire carries it: without
// store.AuditEntry's JSON methods, so detail is base64 as encoding/json
// writes []byte — the form hubs of every version read (a hub reads the
// JSON-object form too, store.AuditEntry.UnmarshalJSON).
type wireAudit store.AuditEntry

// MarshalJSON writes the batch with its audit entries in the wire's form
// (wireAudit), so that an edge upgraded before its hub is still read.
func (b Batch) MarshalJSON() ([]byte, error) {
	type plain Batch // without this method
	audit := make([]wireAudit, len(b.Audit))
	for i := range b.Audit {
		audit[i] = wireAudit(b.Audit[i])
	}
	return json.Marshal(struct {
		plain
		Audit []wireAudit `json:"audit"`
	}{plain(b), audit})
}
