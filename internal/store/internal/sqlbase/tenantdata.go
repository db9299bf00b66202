package sqlbase

// Tenant data: export, erasure and the tenants' own data keys
// (docs/design/erasure.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// ---- export

type colKind int

const (
	kText colKind = iota // TEXT; NULL is ""
	kInt                 // INTEGER / BIGINT
	kBool                // INTEGER 0/1 / BOOLEAN
	kTime                // microseconds / TIMESTAMPTZ; NULL is nil
	kList                // a JSON list of strings
	kJSON                // bytes holding JSON, exported as embedded JSON
)

type exportCol struct {
	name string
	kind colKind
}

type exportTable struct {
	name  string
	query string // selects cols in order; one parameter, the tenant id
	cols  []exportCol
}

func cols(spec ...any) []exportCol {
	var out []exportCol
	for i := 0; i < len(spec); i += 2 {
		out = append(out, exportCol{spec[i].(string), spec[i+1].(colKind)})
	}
	return out
}

// exportTables: every tenant-scoped table but audit (read through
// ListAudit). No column holds a secret or a secret's hash: not
// password_hash, api_keys.hash, refresh_tokens.hash, enroll_tokens.hash,
// devices' keys, tenant_keys; nor client sessions' opaque state.
var exportTables = []exportTable{
	{"tenant", `SELECT id, name, plan, operator, ip_allowlist, disabled, created_at FROM tenants WHERE id = ?`,
		cols("id", kText, "name", kText, "plan", kText, "operator", kBool, "ip_allowlist", kList, "disabled", kBool, "created_at", kTime)},
	{"users", `SELECT id, name, role, password_hash <> '', disabled, failed_logins, locked_until, created_at FROM users WHERE tenant_id = ? ORDER BY name`,
		cols("id", kText, "name", kText, "role", kText, "password_login", kBool, "disabled", kBool, "failed_logins", kInt, "locked_until", kTime, "created_at", kTime)},
	{"api_keys", `SELECT id, user_id, name, prefix, role, scopes, expires_at, last_used_at, revoked_at, rotated_to, created_at FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id`,
		cols("id", kText, "user_id", kText, "name", kText, "prefix", kText, "role", kText, "scopes", kList, "expires_at", kTime, "last_used_at", kTime, "revoked_at", kTime, "rotated_to", kText, "created_at", kTime)},
	{"refresh_tokens", `SELECT id, family_id, user_id, expires_at, used_at, revoked_at, created_at FROM refresh_tokens WHERE tenant_id = ? ORDER BY created_at, id`,
		cols("id", kText, "family_id", kText, "user_id", kText, "expires_at", kTime, "used_at", kTime, "revoked_at", kTime, "created_at", kTime)},
	{"mcp_sessions", `SELECT binding, version, created_at, updated_at, expires_at FROM mcp_sessions WHERE tenant_id = ? ORDER BY created_at, id_hash`,
		cols("binding", kText, "version", kInt, "created_at", kTime, "updated_at", kTime, "expires_at", kTime)},
	{"virtual_servers", `SELECT id, name, upstreams, tools, created_at FROM virtual_servers WHERE tenant_id = ? ORDER BY name`,
		cols("id", kText, "name", kText, "upstreams", kList, "tools", kList, "created_at", kTime)},
	{"rules", `SELECT id, tool, effect, roles, scopes, priority, created_at FROM rules WHERE tenant_id = ? ORDER BY priority DESC, id`,
		cols("id", kText, "tool", kText, "effect", kText, "roles", kList, "scopes", kList, "priority", kInt, "created_at", kTime)},
	{"usage", `SELECT period, n FROM usage WHERE tenant_id = ? ORDER BY period`,
		cols("period", kText, "count", kInt)},
	{"usage_hourly", `SELECT hour, actor, actor_kind, upstream, tool, outcome, n FROM usage_hourly WHERE tenant_id = ? ORDER BY hour, upstream, tool, actor, actor_kind, outcome`,
		cols("hour", kTime, "actor", kText, "actor_kind", kText, "upstream", kText, "tool", kText, "outcome", kText, "count", kInt)},
	{"lattices", `SELECT id, name, spec, created_at FROM lattices WHERE tenant_id = ? ORDER BY ord`,
		cols("id", kText, "name", kText, "spec", kJSON, "created_at", kTime)},
	{"devices", `SELECT id, name, kind, attested, labels, enrolled_at, last_contact, last_addr FROM devices WHERE tenant_id = ? ORDER BY id`,
		cols("id", kText, "name", kText, "kind", kText, "attested", kBool, "labels", kList, "enrolled_at", kTime, "last_contact", kTime, "last_addr", kText)},
	{"enroll_tokens", `SELECT id, name, uses, expires_at, created_at FROM enroll_tokens WHERE tenant_id = ? ORDER BY created_at, id`,
		cols("id", kText, "name", kText, "uses", kInt, "expires_at", kTime, "created_at", kTime)},
}

// jsonCol scans bytes holding JSON into an embedded value (a string when
// it is not valid JSON, so nothing is lost).
type jsonCol struct{ p *any }

func (c jsonCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*c.p = nil
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("json column: unexpected %T", src)
	}
	if json.Valid(b) {
		*c.p = json.RawMessage(append([]byte(nil), b...))
	} else {
		*c.p = string(b)
	}
	return nil
}

// ExportTenant returns emit's errors as they are; its own say what they
// were reading.
func (s *Store) ExportTenant(ctx context.Context, tenantID string, emit func(table string, row any) error) error {
	if _, err := s.GetTenant(ctx, tenantID); err != nil {
		return err
	}
	for _, t := range exportTables {
		if err := s.exportTable(ctx, t, tenantID, emit); err != nil {
			return err
		}
	}
	// Audit entries a page at a time, in chain order.
	f := store.AuditFilter{TenantID: tenantID, Limit: 1000}
	for {
		entries, err := s.ListAudit(ctx, f)
		if err != nil {
			return fmt.Errorf("exporting tenant %q: %w", tenantID, err)
		}
		for i := range entries {
			if err := emit("audit", &entries[i]); err != nil {
				return err
			}
			f.AfterSeq = entries[i].Seq
		}
		if len(entries) < f.Limit {
			return nil
		}
	}
}

// exportPage is how many rows exportTable reads per query. Rows are read
// a page at a time and emitted after the page's cursor is closed, so a
// slow consumer (an HTTP client downloading the archive) never holds a
// database cursor or read snapshot open.
const exportPage = 1000

func (s *Store) exportTable(ctx context.Context, t exportTable, tenantID string, emit func(string, any) error) error {
	for offset := 0; ; offset += exportPage {
		page, err := s.exportRows(ctx, t, tenantID, offset)
		if err != nil {
			return fmt.Errorf("exporting tenant %q: reading %s: %w", tenantID, t.name, err)
		}
		for _, row := range page {
			if err := emit(t.name, row); err != nil {
				return err
			}
		}
		if len(page) < exportPage {
			return nil
		}
	}
}

// exportRows reads one page of t (its ORDER BY makes the order total).
func (s *Store) exportRows(ctx context.Context, t exportTable, tenantID string, offset int) ([]store.ExportRow, error) {
	rows, err := s.e.Query(ctx, t.query+` LIMIT ? OFFSET ?`, tenantID, exportPage, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ExportRow
	for rows.Next() {
		vals := make([]any, len(t.cols))
		dest := make([]any, len(t.cols))
		for i, c := range t.cols {
			switch c.kind {
			case kText:
				var v string
				vals[i], dest[i] = &v, strCol{&v}
			case kInt:
				var v int64
				vals[i], dest[i] = &v, &v
			case kBool:
				var v bool
				vals[i], dest[i] = &v, &v
			case kTime:
				var v time.Time
				vals[i], dest[i] = &v, timeCol{&v}
			case kList:
				var v []string
				vals[i], dest[i] = &v, listCol{&v}
			case kJSON:
				var v any
				vals[i], dest[i] = &v, jsonCol{&v}
			}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := store.ExportRow{}
		for i, c := range t.cols {
			switch v := vals[i].(type) {
			case *string:
				row[c.name] = *v
			case *int64:
				row[c.name] = *v
			case *bool:
				row[c.name] = *v
			case *time.Time:
				if v.IsZero() {
					row[c.name] = nil
				} else {
					row[c.name] = *v
				}
			case *[]string:
				row[c.name] = *v
			case *any:
				row[c.name] = *v
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// ---- erasure

// auditErase clears the personal fields of audit entries. The hash of a
// v2 entry covers pii_digest, which stays; see audit.Seal.
const auditErase = `UPDATE audit SET actor = '', target = '', client_ip = '', detail = NULL, pii_salt = NULL, erased = ? WHERE tenant_id = ? AND erased = ?`

func (s *Store) EraseTenant(ctx context.Context, tenantID string, record *store.AuditEntry, seal func(*store.AuditEntry)) (_ *store.Erasure, err error) {
	defer wrap(&err, "erasing tenant %q", tenantID)
	if record != nil && seal == nil {
		return nil, invalid("erase: seal must not be nil")
	}
	var saved store.AuditEntry
	if record != nil {
		saved = *record
	}
	var er *store.Erasure
	err = s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
		if record != nil {
			*record = saved
		}
		var name string
		err := q.QueryRow(ctx, `SELECT name FROM tenants WHERE id = ?`+s.e.ForUpdate(), tenantID).Scan(&name)
		if isNoRows(err) {
			if prev, gerr := s.getErasure(ctx, q, tenantID); gerr == nil {
				return fmt.Errorf("tenant %q was erased at %s: %w (%w)", prev.Name, prev.ErasedAt.Format(time.RFC3339), store.ErrErased, store.ErrNotFound)
			}
			return notFound("tenant", tenantID)
		}
		if err != nil {
			return err
		}
		rows := map[string]int64{}
		for _, t := range []string{"users", "api_keys", "refresh_tokens", "virtual_servers", "rules", "usage", "usage_hourly", "lattices", "devices", "enroll_tokens", "tenant_keys"} {
			var n int64
			if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM `+t+` WHERE tenant_id = ?`, tenantID).Scan(&n); err != nil {
				return fmt.Errorf("counting %s: %w", t, err)
			}
			rows[t] = n
		}
		n, err := s.deleteTenantTx(ctx, q, tenantID)
		if err != nil {
			return err
		}
		rows["mcp_sessions"] = n
		rows["tenants"] = 1
		erased, err := q.Exec(ctx, auditErase, true, tenantID, false)
		if err != nil {
			return fmt.Errorf("erasing audit entries: %w", err)
		}
		er = &store.Erasure{TenantID: tenantID, Name: name, ErasedAt: s.now(), AuditEntries: erased, Rows: rows}
		if _, err := q.Exec(ctx, `INSERT INTO tenant_erasures (tenant_id, name, erased_at, audit_entries) VALUES (?, ?, ?, ?)`,
			tenantID, name, er.ErasedAt, erased); err != nil {
			return fmt.Errorf("recording the erasure: %w", err)
		}
		if record != nil {
			return s.appendAuditTx(ctx, q, []*store.AuditEntry{record}, seal)
		}
		return nil
	})
	if err != nil {
		if record != nil {
			*record = saved
		}
		return nil, err
	}
	return er, nil
}

func (s *Store) getErasure(ctx context.Context, q Q, ref string) (*store.Erasure, error) {
	var e store.Erasure
	err := q.QueryRow(ctx, `SELECT tenant_id, name, erased_at, audit_entries FROM tenant_erasures WHERE tenant_id = ? OR name = ? ORDER BY erased_at DESC LIMIT 1`, ref, ref).
		Scan(&e.TenantID, &e.Name, timeCol{&e.ErasedAt}, &e.AuditEntries)
	if isNoRows(err) {
		return nil, notFound("erasure of tenant", ref)
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
}

func (s *Store) GetErasure(ctx context.Context, ref string) (_ *store.Erasure, err error) {
	defer wrap(&err, "getting the erasure of tenant %q", ref)
	return s.getErasure(ctx, s.e, ref)
}

// ---- tenant data keys

// tenantKeyAD is what a tenant key is wrapped with: bound to its tenant.
func tenantKeyAD(tenantID string) sealbox.AD {
	return sealbox.AD{Tenant: tenantID, Record: "tenant_keys/" + tenantID + "/key"}
}

// tenantKey returns the tenant's data key, creating it when create is set
// and it does not exist yet (nil, nil when it does not and create is not).
// It is read from the database every time, never cached: once an erasure
// commits, no process can open the tenant's data any more. Seals and
// opens are rare (offline-queue entries), so the query costs little.
func (s *Store) tenantKey(ctx context.Context, tenantID string, create bool) (*sealbox.DataKey, error) {
	box := s.box.Load()
	if box == nil {
		return nil, errors.New("tenant data keys need a store opened with its master key")
	}
	read := func() ([]byte, error) {
		var wrapped []byte
		err := s.e.QueryRow(ctx, `SELECT wrapped FROM tenant_keys WHERE tenant_id = ?`, tenantID).Scan(&wrapped)
		if isNoRows(err) {
			return nil, nil
		}
		return wrapped, err
	}
	wrapped, err := read()
	if err != nil {
		return nil, err
	}
	if wrapped == nil {
		if !create {
			return nil, nil
		}
		ct, err := box.Seal(ctx, tenantKeyAD(tenantID), sealbox.NewDataKeyMaterial())
		if err != nil {
			return nil, fmt.Errorf("wrapping a new data key: %w", err)
		}
		// Concurrent creators (other processes too): the first insert
		// wins, the others read its key.
		err = s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
			_, err := q.Exec(ctx, `INSERT INTO tenant_keys (tenant_id, wrapped, created_at) VALUES (?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING`,
				tenantID, ct, s.now())
			return err
		})
		if s.e.IsForeignKey(err) {
			return nil, notFound("tenant", tenantID)
		}
		if err != nil {
			return nil, fmt.Errorf("storing a new data key: %w", err)
		}
		if wrapped, err = read(); err != nil {
			return nil, err
		}
		if wrapped == nil { // the tenant was removed meanwhile
			return nil, notFound("tenant", tenantID)
		}
	}
	material, err := box.Open(ctx, tenantKeyAD(tenantID), wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrapping the data key of tenant %q: %w", tenantID, err)
	}
	k, err := sealbox.NewDataKey(material)
	clear(material)
	return k, err
}

func tenantDataAD(tenantID, record string) sealbox.AD {
	return sealbox.AD{Tenant: tenantID, Record: record}
}

func (s *Store) SealTenantData(ctx context.Context, tenantID, record string, plaintext []byte) (_ []byte, err error) {
	defer wrap(&err, "sealing data of tenant %q", tenantID)
	k, err := s.tenantKey(ctx, tenantID, true)
	if err != nil {
		return nil, err
	}
	return k.Seal(tenantDataAD(tenantID, record), plaintext), nil
}

func (s *Store) OpenTenantData(ctx context.Context, tenantID, record string, ciphertext []byte) (_ []byte, err error) {
	defer wrap(&err, "opening data of tenant %q", tenantID)
	k, err := s.tenantKey(ctx, tenantID, false)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, fmt.Errorf("tenant %q: %w", tenantID, store.ErrKeyDestroyed)
	}
	return k.Open(tenantDataAD(tenantID, record), ciphertext)
}
