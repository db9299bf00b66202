package sqlbase

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const deviceCols = `id, tenant_id, name, kind, public_key, ak, attested, labels, cred_key_id, enrolled_at, last_contact, last_addr, audit_seq, metrics, metrics_at, pcrs, pcr_policy, reapprove, refusal, refused_at`

func scanDevice(r Row) (*store.Device, error) {
	var d store.Device
	var pcrs []byte
	err := r.Scan(&d.ID, &d.TenantID, &d.Name, &d.Kind, &d.PublicKey, &d.AK, &d.Attested, listCol{&d.Labels},
		strCol{&d.CredKeyID}, timeCol{&d.EnrolledAt}, timeCol{&d.LastContact}, &d.LastAddr, &d.AuditSeq, &d.Metrics, timeCol{&d.MetricsAt},
		&pcrs, &d.PCRPolicy, &d.Reapprove, &d.Refusal, timeCol{&d.RefusedAt})
	if err != nil {
		return nil, err
	}
	if d.PCRs, err = decodePCRs(pcrs); err != nil {
		return nil, fmt.Errorf("device %q: pcrs: %w", d.ID, err)
	}
	return &d, nil
}

// encodePCRs stores PCR values as JSON {"index": "hex"} (NULL for none),
// readable with SQL tools.
func encodePCRs(m map[int][]byte) any {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for i, v := range m {
		out[strconv.Itoa(i)] = hex.EncodeToString(v)
	}
	b, _ := json.Marshal(out)
	return b
}

func decodePCRs(b []byte) (map[int][]byte, error) {
	if b == nil {
		return nil, nil
	}
	var raw map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := make(map[int][]byte, len(raw))
	for k, v := range raw {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i > 255 {
			return nil, fmt.Errorf("PCR index %q", k)
		}
		if out[i], err = hex.DecodeString(v); err != nil {
			return nil, fmt.Errorf("PCR %d: %v", i, err)
		}
	}
	return out, nil
}

// nullBytes stores an empty byte slice as NULL (optional blobs).
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// PutDevice inserts or updates in one transaction; the public key of a
// known id never changes (the id is derived from it).
func (s *Store) PutDevice(ctx context.Context, d *store.Device) (err error) {
	defer wrap(&err, "storing device %q", d.ID)
	if d.ID == "" || len(d.PublicKey) == 0 {
		return invalid("device: id and public key are required")
	}
	if d.Kind != "tpm" && d.Kind != "file" {
		return invalid("device kind %q: want tpm or file", d.Kind)
	}
	if d.PCRPolicy != "" && d.PCRPolicy != "enrolled" && d.PCRPolicy != "off" {
		return invalid("device PCR policy %q: want \"\", enrolled or off", d.PCRPolicy)
	}
	now := s.now()
	var enrolled time.Time
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		old, err := scanDevice(q.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`+s.e.ForUpdate(), d.ID))
		switch {
		case isNoRows(err):
			_, err = q.Exec(ctx, `INSERT INTO devices (id, tenant_id, name, kind, public_key, ak, attested, labels, enrolled_at, pcrs, pcr_policy, reapprove, refusal, refused_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				d.ID, d.TenantID, d.Name, d.Kind, d.PublicKey, nullBytes(d.AK), d.Attested, jsonList(d.Labels), now,
				encodePCRs(d.PCRs), d.PCRPolicy, d.Reapprove, d.Refusal, ts(d.RefusedAt))
			if s.e.IsForeignKey(err) {
				return notFound("tenant", d.TenantID)
			}
			enrolled = now
			return err
		case err != nil:
			return err
		}
		if !bytes.Equal(old.PublicKey, d.PublicKey) {
			return conflict("device " + quote(d.ID) + " with another public key")
		}
		_, err = q.Exec(ctx, `UPDATE devices SET tenant_id = ?, name = ?, kind = ?, ak = ?, attested = ?, labels = ?, pcrs = ?, pcr_policy = ?, reapprove = ?, refusal = ?, refused_at = ? WHERE id = ?`,
			d.TenantID, d.Name, d.Kind, nullBytes(d.AK), d.Attested, jsonList(d.Labels),
			encodePCRs(d.PCRs), d.PCRPolicy, d.Reapprove, d.Refusal, ts(d.RefusedAt), d.ID)
		if s.e.IsForeignKey(err) {
			return notFound("tenant", d.TenantID)
		}
		enrolled = old.EnrolledAt
		return err
	})
	if err == nil {
		d.EnrolledAt = enrolled
	}
	return err
}

func (s *Store) GetDevice(ctx context.Context, id string) (_ *store.Device, err error) {
	defer wrap(&err, "getting device %q", id)
	d, err := scanDevice(s.e.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
	if isNoRows(err) {
		return nil, notFound("device", id)
	}
	return d, err
}

func (s *Store) GetDeviceByCredential(ctx context.Context, keyID string) (_ *store.Device, err error) {
	defer wrap(&err, "getting the device of key %q", keyID)
	if keyID == "" {
		return nil, notFound("device of key", keyID)
	}
	d, err := scanDevice(s.e.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE cred_key_id = ?`, keyID))
	if isNoRows(err) {
		return nil, notFound("device of key", keyID)
	}
	return d, err
}

func (s *Store) ListDevices(ctx context.Context, tenantID string) (_ []store.Device, err error) {
	defer wrap(&err, "listing devices")
	if tenantID == "" {
		return collect(ctx, s.e, scanDevice, `SELECT `+deviceCols+` FROM devices ORDER BY id`)
	}
	return collect(ctx, s.e, scanDevice, `SELECT `+deviceCols+` FROM devices WHERE tenant_id = ? ORDER BY id`, tenantID)
}

func (s *Store) DeleteDevice(ctx context.Context, tenantID, id string) (err error) {
	defer wrap(&err, "deleting device %q", id)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `DELETE FROM devices WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err == nil && n == 0 {
			return notFound("device", id)
		}
		return err
	})
}

func (s *Store) SetDeviceCredential(ctx context.Context, id, keyID string, at time.Time, addr string) (prev string, err error) {
	defer wrap(&err, "recording the credential of device %q", id)
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		err := q.QueryRow(ctx, `SELECT cred_key_id FROM devices WHERE id = ?`+s.e.ForUpdate(), id).Scan(strCol{&prev})
		if isNoRows(err) {
			return notFound("device", id)
		}
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx, `UPDATE devices SET cred_key_id = ?, last_contact = ?, last_addr = ? WHERE id = ?`, nullStr(keyID), ts(at), addr, id)
		return err
	})
	return prev, err
}

func (s *Store) RecordDeviceTelemetry(ctx context.Context, id string, from, to int64, metrics []byte, at time.Time, addr string) (err error) {
	defer wrap(&err, "recording telemetry of device %q", id)
	if to < from {
		return invalid("audit sequence: %d is before %d", to, from)
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var n int64
		var err error
		if metrics != nil {
			n, err = q.Exec(ctx, `UPDATE devices SET audit_seq = ?, metrics = ?, metrics_at = ?, last_contact = ?, last_addr = ? WHERE id = ? AND audit_seq = ?`,
				to, metrics, ts(at), ts(at), addr, id, from)
		} else {
			n, err = q.Exec(ctx, `UPDATE devices SET audit_seq = ?, last_contact = ?, last_addr = ? WHERE id = ? AND audit_seq = ?`,
				to, ts(at), addr, id, from)
		}
		if err != nil || n > 0 {
			return err
		}
		var seq int64
		if err := q.QueryRow(ctx, `SELECT audit_seq FROM devices WHERE id = ?`, id).Scan(&seq); isNoRows(err) {
			return notFound("device", id)
		} else if err != nil {
			return err
		}
		return conflict(fmt.Sprintf("device %q: audit sequence is at %d, not %d", id, seq, from))
	})
}

const enrollTokenCols = `id, tenant_id, name, hash, uses, expires_at, created_at`

func scanEnrollToken(r Row) (*store.EnrollToken, error) {
	var t store.EnrollToken
	if err := r.Scan(&t.ID, &t.TenantID, &t.Name, &t.Hash, &t.Uses, timeCol{&t.ExpiresAt}, timeCol{&t.CreatedAt}); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Store) CreateEnrollToken(ctx context.Context, t *store.EnrollToken) (err error) {
	defer wrap(&err, "creating enrollment token %q", t.Name)
	if len(t.Hash) == 0 || t.Uses <= 0 || t.ExpiresAt.IsZero() {
		return invalid("enrollment token: hash, a positive number of uses and an expiry are required")
	}
	id, now := store.NewID(), s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO enroll_tokens (`+enrollTokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, t.TenantID, t.Name, t.Hash, t.Uses, ts(t.ExpiresAt), now)
		switch {
		case s.e.IsUnique(err):
			return conflict("enrollment token hash")
		case s.e.IsForeignKey(err):
			return notFound("tenant", t.TenantID)
		}
		return err
	})
	if err == nil {
		t.ID, t.CreatedAt, t.ExpiresAt = id, now, ts(t.ExpiresAt)
	}
	return err
}

// UseEnrollToken decrements uses in the same statement that checks them,
// so two enrollments racing for the last use cannot both get it.
func (s *Store) UseEnrollToken(ctx context.Context, hash []byte, at time.Time) (_ *store.EnrollToken, err error) {
	defer wrap(&err, "using an enrollment token")
	var t *store.EnrollToken
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `UPDATE enroll_tokens SET uses = uses - 1 WHERE hash = ? AND uses > 0 AND expires_at > ?`, hash, ts(at))
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("enrollment token", "(unknown, expired or used up)")
		}
		t, err = scanEnrollToken(q.QueryRow(ctx, `SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE hash = ?`, hash))
		if err != nil {
			return err
		}
		t.Uses++ // as it was
		return nil
	})
	return t, err
}

func (s *Store) ListEnrollTokens(ctx context.Context, tenantID string) (_ []store.EnrollToken, err error) {
	defer wrap(&err, "listing enrollment tokens")
	if tenantID == "" {
		return collect(ctx, s.e, scanEnrollToken, `SELECT `+enrollTokenCols+` FROM enroll_tokens ORDER BY created_at DESC, id`)
	}
	return collect(ctx, s.e, scanEnrollToken, `SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE tenant_id = ? ORDER BY created_at DESC, id`, tenantID)
}

func (s *Store) PutNonce(ctx context.Context, hash []byte, expires time.Time) (err error) {
	defer wrap(&err, "storing a nonce")
	if len(hash) == 0 {
		return invalid("nonce: empty")
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		if _, err := q.Exec(ctx, `DELETE FROM hub_nonces WHERE expires_at <= ?`, s.now()); err != nil {
			return err
		}
		_, err := q.Exec(ctx, `INSERT INTO hub_nonces (hash, expires_at) VALUES (?, ?)`, hash, ts(expires))
		if s.e.IsUnique(err) {
			return conflict("nonce")
		}
		return err
	})
}

// UseNonce deletes the nonce; only the one caller whose delete removed a
// live row gets nil, so a nonce is used at most once. An expired nonce is
// deleted too (the transaction commits) and reported as not found.
func (s *Store) UseNonce(ctx context.Context, hash []byte, at time.Time) (err error) {
	defer wrap(&err, "using a nonce")
	var exp time.Time
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		exp = time.Time{}
		err := q.QueryRow(ctx, `DELETE FROM hub_nonces WHERE hash = ? RETURNING expires_at`, hash).Scan(timeCol{&exp})
		if isNoRows(err) {
			return notFound("nonce", "(unknown or already used)")
		}
		return err
	})
	if err == nil && !exp.After(ts(at)) {
		return notFound("nonce", "(expired)")
	}
	return err
}
