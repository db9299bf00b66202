package store

import (
	"context"
	"errors"
	"time"
)

// ErrErased is returned (wrapped) for a tenant that was erased
// (TenantData.EraseTenant): it is gone, and its erasure is on record.
var ErrErased = errors.New("tenant was erased")

// Erasure records that a tenant was erased. It holds no personal data.
type Erasure struct {
	TenantID string    `json:"tenant_id"`
	Name     string    `json:"name"`
	ErasedAt time.Time `json:"erased_at"`
	// AuditEntries is how many of the tenant's audit entries had their
	// personal fields erased.
	AuditEntries int64 `json:"audit_entries"`
	// Rows is how many rows were removed, by table (filled by
	// EraseTenant only, not kept).
	Rows map[string]int64 `json:"rows,omitempty"`
}

// ExportRow is one record of a tenant export: a JSON object whose values
// are strings, numbers, booleans, lists of strings, embedded JSON
// (json.RawMessage), times (time.Time; the zero time means not set) or
// nil.
type ExportRow map[string]any

// ExportTables returns the tables ExportTenant emits, in order; "audit"
// rows are *AuditEntry values rather than ExportRows.
func ExportTables() []string {
	return []string{
		"tenant", "users", "api_keys", "refresh_tokens", "mcp_sessions",
		"virtual_servers", "rules", "usage", "usage_hourly", "lattices",
		"devices", "enroll_tokens", "audit",
	}
}

// TenantData exports and erases everything the store holds about one
// tenant, and seals the tenant's data with its own key.
type TenantData interface {
	// ExportTenant calls emit for every record the store holds about the
	// tenant, table by table in ExportTables' order (within a table in a
	// stable order), reading the database a page at a time (no cursor is
	// open while emit runs), never the whole export at once. Rows carry metadata only: no
	// secret, no hash of a secret (API key and refresh token hashes,
	// password hashes), no data key. "audit" rows are *AuditEntry. The
	// export is not one snapshot: each table is read at its own moment.
	// An error from emit stops the export and is returned as is.
	ExportTenant(ctx context.Context, tenantID string, emit func(table string, row any) error) error

	// EraseTenant removes the tenant and everything that belongs to it,
	// as DeleteTenant does, and in the same transaction erases the
	// personal fields of its audit entries (Actor, Target, ClientIP,
	// Detail and PIISalt become empty, Erased true; the hash chain stays
	// valid, see audit.Seal), destroys the tenant's data key, records the
	// Erasure, and appends record (sealed with seal, as AppendAudit does)
	// as the last entry of the chain, so the erasure and its audit entry
	// commit together or not at all. record may be nil. A tenant erased
	// before: an error that errors.Is ErrErased (and ErrNotFound).
	EraseTenant(ctx context.Context, tenantID string, record *AuditEntry, seal func(*AuditEntry)) (*Erasure, error)
	// GetErasure finds the erasure of a tenant by its id or name
	// (ErrNotFound if none).
	GetErasure(ctx context.Context, ref string) (*Erasure, error)

	// SealTenantData encrypts plaintext with the tenant's data key,
	// creating the key on first use, bound to the tenant and record (a
	// ciphertext does not open for another tenant or record). A store
	// opened without its master key can not: an error. A tenant that
	// does not exist (or was erased): ErrNotFound.
	SealTenantData(ctx context.Context, tenantID, record string, plaintext []byte) ([]byte, error)
	// OpenTenantData decrypts what SealTenantData sealed. Once the
	// tenant's removal commits its key is gone, for every process (the
	// key is read from the database on each call, never cached), and
	// this fails with an error that errors.Is ErrKeyDestroyed.
	OpenTenantData(ctx context.Context, tenantID, record string, ciphertext []byte) ([]byte, error)
}

// ErrKeyDestroyed is returned by OpenTenantData when the tenant's data
// key does not exist (the tenant was removed): what it sealed is
// unreadable for good.
var ErrKeyDestroyed = errors.New("the tenant's data key does not exist (destroyed with the tenant)")
