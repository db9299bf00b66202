package store

import (
	"context"
	"time"
)

// Device is an edge gateway enrolled with this gateway acting as its hub
// (internal/hub). Its identity is its device key: ID is derived from
// PublicKey, so one key is one device.
type Device struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	// Kind is where the device key lives: "tpm" or "file".
	Kind string `json:"kind"`
	// PublicKey is the device key's public half, PKIX DER.
	PublicKey []byte `json:"-"`
	// AK is the TPM attestation key pinned at the first attested
	// enrollment (nil for file keys); Attested says whether the last
	// enrollment was verified against it.
	AK       []byte   `json:"-"`
	Attested bool     `json:"attested"`
	Labels   []string `json:"labels"`
	// CredKeyID is the API key the hub issued to the device at its last
	// sign-in (short-lived; see internal/hub).
	CredKeyID   string    `json:"-"`
	EnrolledAt  time.Time `json:"enrolled_at"`
	LastContact time.Time `json:"last_contact,omitzero"`
	LastAddr    string    `json:"last_addr,omitempty"`
	// AuditSeq is the last of the device's own audit sequence numbers the
	// hub has stored: telemetry resumes after it.
	AuditSeq int64 `json:"audit_seq"`
	// Metrics is the latest metrics snapshot the device sent (opaque
	// JSON) and MetricsAt when it arrived.
	Metrics   []byte    `json:"-"`
	MetricsAt time.Time `json:"metrics_at,omitzero"`

	// PCRs are the sha256 PCR values a TPM device attested at enrollment
	// (or at its last re-approval); its sign-ins must attest the same
	// values unless PCRPolicy is "off". Nil for file keys.
	PCRs map[int][]byte `json:"-"`
	// PCRPolicy is the device's own PCR policy: "" (the hub's default,
	// "enrolled"), "enrolled" or "off".
	PCRPolicy string `json:"pcr_policy,omitempty"`
	// Reapprove is set by an operator after a legitimate PCR change
	// (firmware update): the next attestation's PCRs are accepted and
	// recorded, and the flag cleared.
	Reapprove bool `json:"reapprove,omitempty"`
	// Refusal is why the device's last sign-in was refused, until one
	// succeeds; RefusedAt is when.
	Refusal   string    `json:"refusal,omitempty"`
	RefusedAt time.Time `json:"refused_at,omitzero"`
}

// EnrollToken lets an edge gateway enroll once (or Uses times) into a
// tenant. The secret is shown once; the store keeps only its hash.
type EnrollToken struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Name      string    `json:"name"`
	Hash      []byte    `json:"-"`    // unique
	Uses      int       `json:"uses"` // enrollments left
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// Devices is the hub's registry of enrolled edge gateways, their
// enrollment tokens and the single-use nonces of enrollment and sign-in.
type Devices interface {
	// PutDevice creates the device (filling EnrolledAt) or, for a known
	// ID, replaces TenantID, Name, Kind, AK, Attested, Labels, PCRs,
	// PCRPolicy, Reapprove, Refusal and RefusedAt (the credential, contact,
	// AuditSeq and metrics have their own methods). A known ID with
	// another PublicKey is ErrConflict.
	PutDevice(ctx context.Context, d *Device) error
	GetDevice(ctx context.Context, id string) (*Device, error)
	// GetDeviceByCredential finds the device whose CredKeyID is keyID.
	GetDeviceByCredential(ctx context.Context, keyID string) (*Device, error)
	// ListDevices lists a tenant's devices ("" tenant: all), by id.
	ListDevices(ctx context.Context, tenantID string) ([]Device, error)
	DeleteDevice(ctx context.Context, tenantID, id string) error
	// SetDeviceCredential records the key issued at a sign-in and the
	// contact (time and address); it returns the previous CredKeyID.
	SetDeviceCredential(ctx context.Context, id, keyID string, at time.Time, addr string) (prev string, err error)
	// RecordDeviceTelemetry stores a metrics snapshot (nil: keep the old
	// one), the contact, and advances AuditSeq from `from` to `to`,
	// atomically: when AuditSeq is not `from` nothing changes and the
	// error is ErrConflict (the caller re-reads AuditSeq).
	RecordDeviceTelemetry(ctx context.Context, id string, from, to int64, metrics []byte, at time.Time, addr string) error

	// CreateEnrollToken fills ID and CreatedAt; ErrConflict on a taken
	// hash, ErrNotFound for an unknown tenant.
	CreateEnrollToken(ctx context.Context, t *EnrollToken) error
	// UseEnrollToken takes one use of the token with this hash and
	// returns it as it was. Unknown, expired or used up: ErrNotFound.
	UseEnrollToken(ctx context.Context, hash []byte, at time.Time) (*EnrollToken, error)
	ListEnrollTokens(ctx context.Context, tenantID string) ([]EnrollToken, error) // "" all; newest first
	// PutNonce stores a single-use nonce (by hash) until expires, and
	// prunes expired ones.
	PutNonce(ctx context.Context, hash []byte, expires time.Time) error
	// UseNonce consumes the nonce: ErrNotFound when it is unknown,
	// already used or expired at `at`.
	UseNonce(ctx context.Context, hash []byte, at time.Time) error
}
