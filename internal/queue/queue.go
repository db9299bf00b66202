// Package queue is mcpedge's offline queue: a durable, bounded, encrypted
// store of tool calls waiting for an upstream that is not reachable, and
// of their results.
//
// # Guarantees
//
//   - Durable: [Queue.Enqueue] returns only after its entry is committed
//     to the queue's SQLite database with synchronous=FULL, so an entry
//     whose id was returned survives a crash of the process or of the
//     machine. Concurrent Enqueue calls share one transaction (group
//     commit) through a single writer goroutine, which is what makes
//     durable enqueues cheap.
//   - At least once: an entry is delivered until a delivery succeeds or
//     it has failed [Options.MaxAttempts] times. A delivery that was under
//     way when the process died is delivered again by the next consumer,
//     so an upstream can see an entry twice; every delivery carries the
//     entry's [Entry.DeliveryKey] so that an idempotent upstream can tell.
//   - In order per target: a target (upstream) gets its entries one at a
//     time, oldest first; the next is not sent before the previous one
//     succeeded or failed for good. A failing entry holds its target back
//     with exponential backoff.
//   - Bounded: entries and bytes are limited per queue and per tenant;
//     past a limit Enqueue returns an [*FullError] (errors.Is [ErrFull])
//     saying which limit and what to do.
//   - Encrypted at rest: arguments, meta and results are sealed with a
//     [sealbox.Box], bound to the entry's tenant and id.
//   - Scoped: [Queue.Get] finds an entry only under its own tenant.
//
// # Consumers
//
// One process consumes a queue file (the gateway); others (the CLI) may
// read, retry and purge at the same time. A consumer claims an entry by
// marking it delivering with its own instance id; an entry left
// delivering by another instance is taken to belong to a process that
// died, and is delivered again. Two consuming processes on one file would
// therefore deliver the same entries twice: do not run them.
package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of [Options].
const (
	DefaultMaxEntries       = 100_000
	DefaultMaxBytes         = int64(256 << 20)
	DefaultTenantMaxEntries = 10_000
	DefaultTenantMaxBytes   = int64(64 << 20)
	DefaultMaxEntryBytes    = 1 << 20
	DefaultMaxAttempts      = 10
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = 5 * time.Minute
	DefaultRetention        = 24 * time.Hour
	DefaultFailedRetention  = 7 * 24 * time.Hour
	DefaultPollInterval     = 2 * time.Second

	// maxBatch bounds how many operations one transaction commits.
	maxBatch = 512
	// maxErrorLen bounds a stored error message.
	maxErrorLen = 1000
)

// State is where an entry is in its life.
type State string

// States of an entry.
const (
	// Pending entries wait for delivery (maybe for a backoff to pass).
	Pending State = "pending"
	// Delivering entries have been handed to a consumer.
	Delivering State = "delivering"
	// Done entries were delivered; their result is stored.
	Done State = "done"
	// Failed entries failed MaxAttempts times, or for good; [Queue.Retry]
	// sends them again.
	Failed State = "failed"
)

// Valid reports whether s is one of the four states.
func (s State) Valid() bool {
	return s == Pending || s == Delivering || s == Done || s == Failed
}

var (
	// ErrFull is what a refused Enqueue's error matches: a bound is
	// reached. The error is a [*FullError].
	ErrFull = errors.New("queue: full")
	// ErrTooLarge refuses an entry larger than [Options.MaxEntryBytes].
	ErrTooLarge = errors.New("queue: entry too large")
	// ErrNotFound is returned for an id that is not in the queue, or not
	// under the tenant asked for.
	ErrNotFound = errors.New("queue: no such entry")
	// ErrState is returned by an operation the entry's state does not
	// allow, such as retrying a done entry.
	ErrState = errors.New("queue: not allowed in the entry's state")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("queue: closed")
	// ErrNoKey is returned by operations that seal or open data on a
	// queue opened without a box.
	ErrNoKey = errors.New("queue: opened without an encryption key")
)

// A FullError says which bound refused an entry.
type FullError struct {
	// Scope is "tenant" (Tenant's own bound) or "queue" (the whole
	// queue's).
	Scope  string
	Tenant string
	// Entries and Bytes are what the scope holds; MaxEntries and MaxBytes
	// its bounds.
	Entries, MaxEntries int64
	Bytes, MaxBytes     int64
}

func (e *FullError) Error() string {
	who := "the queue"
	if e.Scope == "tenant" {
		who = fmt.Sprintf("tenant %q", e.Tenant)
	}
	return fmt.Sprintf("queue: full: %s holds %d of %d entries and %d of %d bytes; retry after the upstream is back and entries are delivered, or purge done and failed entries (mcpedge queue ls, mcpedge queue purge ID)",
		who, e.Entries, e.MaxEntries, e.Bytes, e.MaxBytes)
}

// Is makes errors.Is(err, ErrFull) true.
func (e *FullError) Is(target error) bool { return target == ErrFull }

// Permanent marks a delivery error as final: the entry fails at once
// instead of being retried (a tool that does not exist, arguments the
// upstream rejects).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// IsPermanent reports whether err was marked with [Permanent].
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Entry is one queued tool call.
type Entry struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Target is the upstream's name.
	Target string `json:"target"`
	Tool   string `json:"tool"`
	// Arguments are the tool call's arguments. Sealed at rest; List
	// leaves them out.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// IdempotencyKey identifies the call for its tenant: enqueueing the
	// same key twice stores one entry. Generated when empty.
	IdempotencyKey string `json:"idempotency_key"`
	// Meta is the caller's data about the call (request id, session to
	// notify). Sealed at rest; List leaves it out.
	Meta map[string]string `json:"meta,omitempty"`

	State    State `json:"state"`
	Attempts int   `json:"attempts"`
	// LastError is the last failed delivery's error. Stored in clear
	// (so `mcpedge queue ls` can show it without the key), at most 1000
	// bytes.
	LastError string `json:"last_error,omitempty"`
	// Result is what the upstream answered (done entries). Sealed at
	// rest; only Get returns it.
	Result json.RawMessage `json:"result,omitempty"`
	// Size is the bytes the entry counts against the bounds: its sealed
	// arguments and meta, and result.
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// NextAttempt is when a pending entry may be delivered.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// DoneAt is when the entry became done or failed.
	DoneAt time.Time `json:"done_at,omitzero"`
}

// DeliveryKey is the key to send the upstream with every delivery of
// the entry, so it can drop repeats: a hash of the tenant and the
// idempotency key, so that two tenants choosing the same key never
// collide at a shared upstream, and the tenant is not disclosed.
func (e *Entry) DeliveryKey() string {
	h := sha256.New()
	for _, s := range []string{"mcpedge-queue-v1", e.Tenant, e.IdempotencyKey} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		h.Write([]byte(s))
	}
	return "mcpedge-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Options tune a Queue. Zero fields take their defaults.
type Options struct {
	// MaxEntries and MaxBytes bound the whole queue: entries in any
	// state, and their sealed arguments, meta and results. If zero,
	// DefaultMaxEntries and DefaultMaxBytes.
	MaxEntries int64
	MaxBytes   int64
	// TenantMaxEntries and TenantMaxBytes bound one tenant's share. If
	// zero, DefaultTenantMaxEntries and DefaultTenantMaxBytes.
	TenantMaxEntries int64
	TenantMaxBytes   int64
	// MaxEntryBytes bounds one entry's arguments and meta. If zero,
	// DefaultMaxEntryBytes.
	MaxEntryBytes int
	// MaxAttempts is how many deliveries an entry gets before it fails.
	// If zero, DefaultMaxAttempts.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the wait after a failed delivery:
	// BackoffMin after the first, doubling up to BackoffMax, with ±25%
	// jitter. If zero, DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
	// Retention is how long done entries (and their results) are kept,
	// FailedRetention how long failed ones are. If zero,
	// DefaultRetention and DefaultFailedRetention.
	Retention, FailedRetention time.Duration
	// PollInterval is how often a waiting consumer looks for changes
	// made by other processes (a retry from the CLI). Changes made
	// through this Queue wake it at once. If zero, DefaultPollInterval.
	PollInterval time.Duration
	// OnDone, if set, is called after an entry became done or failed,
	// with its result (done) or last error (failed), so the gateway can
	// announce it to a connected client. It runs on the goroutine that
	// completed the entry (a Deliver loop) and should return quickly.
	OnDone func(Entry)
	// Logger receives the queue's warnings; if nil, slog.Default().
	Logger *slog.Logger
	// TenantKeys, if set, seals each entry's arguments, meta and result
	// with its tenant's own data key (the store's; see
	// docs/design/erasure.md) inside the box's sealing, so that erasing
	// the tenant, which destroys that key, makes its entries unreadable
	// wherever they are. Entries of the single-user tenant ("") and
	// entries written without it are sealed by the box alone; both kinds
	// open either way, but a tenant-sealed entry needs TenantKeys.
	TenantKeys TenantKeys
}

// TenantKeys seals data with a tenant's own key; store.Store implements
// it.
type TenantKeys interface {
	SealTenantData(ctx context.Context, tenantID, record string, plaintext []byte) ([]byte, error)
	// OpenTenantData fails with an error that errors.Is
	// store.ErrKeyDestroyed once the tenant is gone.
	OpenTenantData(ctx context.Context, tenantID, record string, ciphertext []byte) ([]byte, error)
}

func (o *Options) setDefaults() {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxEntries, DefaultMaxEntries)
	def(&o.MaxBytes, DefaultMaxBytes)
	def(&o.TenantMaxEntries, DefaultTenantMaxEntries)
	def(&o.TenantMaxBytes, DefaultTenantMaxBytes)
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&o.BackoffMin, DefaultBackoffMin)
	dur(&o.BackoffMax, DefaultBackoffMax)
	dur(&o.Retention, DefaultRetention)
	dur(&o.FailedRetention, DefaultFailedRetention)
	dur(&o.PollInterval, DefaultPollInterval)
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// idEncoding is base32 in an alphabet whose order is the order of the
// values, so ids sort by time.
var idEncoding = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// newID returns an entry id: "q" and 26 base32 characters encoding the
// time in milliseconds (48 bits) and 80 random bits. Ids made later sort
// later, so new ids (and the default idempotency keys, which are ids)
// land at the end of their indexes: a commit of many entries touches a
// few index pages rather than one random page per entry.
func newID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	rand.Read(b[6:])
	return "q" + idEncoding.EncodeToString(b[:])
}

// Filter selects entries for List. Zero fields match everything.
type Filter struct {
	Tenant string
	// ExactTenant matches Tenant even when it is "" (the single-user
	// tenant); otherwise an empty Tenant matches every tenant.
	ExactTenant bool
	Target      string
	State       State
	// After lists entries enqueued after the entry with this id
	// (pagination).
	After string
	// Limit bounds the number of entries; if zero, 100; at most 1000.
	Limit int
}

// ctxErr wraps a context error as the queue's.
func ctxErr(ctx context.Context) error {
	return fmt.Errorf("queue: %w", context.Cause(ctx))
}
