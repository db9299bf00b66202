// Package sessionstore keeps the client sessions of the MCP session era
// (protocol 2025-11-25 and earlier) where every replica of the gateway,
// and the gateway after a restart, can find them: what a replica needs to
// re-create a session that another one opened (docs/design/sessions.md).
//
// A [Keeper] saves a session's [State] when initialize opens it and each
// time the client changes it (logging level, resource subscriptions), and
// loads it for a replica that meets the session's id for the first time.
// The session id is never stored: records are keyed by its SHA-256, and
// each is bound to the tenant and a hash of the credential identity that
// opened it ([Owner]); [Record.BoundTo] is checked before a record is used.
//
// Changes are announced to the other replicas through [Changes] (Redis
// pub/sub, redis.go) when one is configured, so that a replica holding a
// copy of the session applies them (a subscription made on another
// replica, say) without polling.
package sessionstore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// ErrNotFound: no live session with that id (never saved, deleted,
// expired), or one bound to another caller — the two are not told apart.
var ErrNotFound = errors.New("session not found")

// MaxStateBytes bounds a saved state: a record larger than this is refused
// when saved and when loaded (it did not come from this code).
const MaxStateBytes = 256 << 10

// MaxSubscriptions bounds the resource subscriptions a session keeps.
const MaxSubscriptions = 1024

// State is what a replica needs to re-create a session.
type State struct {
	// Face is the endpoint the session was opened on: "" for /mcp, the
	// upstream's name for /mcp/<upstream>.
	Face string `json:"face,omitempty"`
	// ProtocolVersion is the version negotiated by initialize.
	ProtocolVersion string `json:"protocol_version"`
	// Initialize are the client's initialize params as the SDK decoded
	// them (capabilities, client info).
	Initialize json.RawMessage `json:"initialize"`
	// LogLevel is the level the client set with logging/setLevel ("":
	// never set).
	LogLevel string `json:"log_level,omitempty"`
	// Subscriptions are the resource URIs the client subscribed to,
	// sorted, without duplicates.
	Subscriptions []string `json:"subscriptions,omitempty"`
}

// Subscribe adds uri to the subscriptions; it reports whether it was new.
func (s *State) Subscribe(uri string) bool {
	i, found := slices.BinarySearch(s.Subscriptions, uri)
	if found {
		return false
	}
	s.Subscriptions = slices.Insert(s.Subscriptions, i, uri)
	return true
}

// Unsubscribe removes uri from the subscriptions; it reports whether it
// was there.
func (s *State) Unsubscribe(uri string) bool {
	i, found := slices.BinarySearch(s.Subscriptions, uri)
	if found {
		s.Subscriptions = slices.Delete(s.Subscriptions, i, i+1)
	}
	return found
}

// Clone returns a deep copy.
func (s State) Clone() State {
	s.Initialize = slices.Clone(s.Initialize)
	s.Subscriptions = slices.Clone(s.Subscriptions)
	return s
}

// DecodeState parses a saved state, refusing what this package would not
// have saved: too large, not JSON, no protocol version or initialize
// params, subscriptions unsorted, duplicated or too many.
func DecodeState(b []byte) (State, error) {
	var s State
	if len(b) > MaxStateBytes {
		return s, fmt.Errorf("session state of %d bytes exceeds %d", len(b), MaxStateBytes)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("session state: %w", err)
	}
	switch {
	case s.ProtocolVersion == "" || len(s.ProtocolVersion) > 32:
		return s, errors.New("session state: no protocol version")
	case len(s.Initialize) == 0 || s.Initialize[0] != '{':
		return s, errors.New("session state: initialize params must be an object")
	case len(s.Subscriptions) > MaxSubscriptions:
		return s, fmt.Errorf("session state: %d subscriptions exceed %d", len(s.Subscriptions), MaxSubscriptions)
	case len(s.LogLevel) > 16:
		return s, errors.New("session state: log level too long")
	}
	for i := 1; i < len(s.Subscriptions); i++ {
		if s.Subscriptions[i-1] >= s.Subscriptions[i] {
			return s, errors.New("session state: subscriptions must be sorted and unique")
		}
	}
	return s, nil
}

func encodeState(s State) ([]byte, error) {
	if len(s.Subscriptions) > MaxSubscriptions {
		return nil, fmt.Errorf("%d subscriptions exceed %d", len(s.Subscriptions), MaxSubscriptions)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxStateBytes {
		return nil, fmt.Errorf("session state of %d bytes exceeds %d", len(b), MaxStateBytes)
	}
	return b, nil
}

// Owner is who a session is bound to: the identity of the credential
// that opened it (the SDK's TokenInfo.UserID, "kind:tenant:id"; "" in
// single-user mode) and its tenant.
type Owner struct {
	UserID   string
	TenantID string
}

// binding is what is stored of an owner's identity.
func (o Owner) binding() string {
	h := sha256.Sum256([]byte("mcpedge session binding\x00" + o.UserID))
	return hex.EncodeToString(h[:])
}

// IDHash is the key a session id is stored under.
func IDHash(id string) string {
	h := sha256.Sum256([]byte("mcpedge session id\x00" + id))
	return hex.EncodeToString(h[:])
}

// Record is a loaded session.
type Record struct {
	ID       string
	TenantID string
	binding  string
	State    State
	version  int64
}

// BoundTo reports whether the session belongs to o: the same tenant and
// the same credential identity.
func (r *Record) BoundTo(o Owner) bool {
	b := o.binding()
	return r.TenantID == o.TenantID && subtle.ConstantTimeCompare([]byte(r.binding), []byte(b)) == 1
}

// Keeper saves and loads sessions. Every method is safe for concurrent
// use; ids are the raw Mcp-Session-Id values.
type Keeper interface {
	// Create saves a session that initialize just opened.
	Create(ctx context.Context, id string, o Owner, s State) error
	// Load returns the live session with that id, ErrNotFound if none.
	Load(ctx context.Context, id string) (*Record, error)
	// Update applies change to the saved state (read, change, write at
	// the version read, again on a concurrent change) and announces it;
	// it returns the state saved. ErrNotFound when the session is gone.
	Update(ctx context.Context, id string, change func(*State)) (State, error)
	// Touch keeps a session in use alive for another idle timeout. It is
	// cheap to call on every request: the store is written at most once
	// per Options.TouchEvery per session, in the background.
	Touch(id string)
	// Delete removes a session (the client ended it) and announces it.
	Delete(ctx context.Context, id string) error
	// Watch calls fn for each change another replica announces, with the
	// hash of the session's id (IDHash) and whether it was deleted. It
	// returns at once; nothing is announced without Changes.
	Watch(fn func(idHash string, deleted bool))
}

// Changes carries the announcements of changed sessions between replicas.
type Changes interface {
	Publish(ctx context.Context, idHash string, deleted bool)
	// Subscribe calls fn for every announcement of another replica.
	Subscribe(fn func(idHash string, deleted bool))
}

// Options tune a store-backed Keeper.
type Options struct {
	// TTL is the idle timeout: a session unused this long expires
	// (default 30 minutes).
	TTL time.Duration
	// TouchEvery is how often, at most, a session in use has its expiry
	// moved (default TTL/8).
	TouchEvery time.Duration
	// Changes, if set, announces changes to the other replicas.
	Changes Changes
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnError reports background failures (touches); nil: dropped.
	OnError func(what string, err error)
}

// New returns a Keeper over the store's session table.
func New(st store.MCPSessions, o Options) Keeper {
	if o.TTL <= 0 {
		o.TTL = 30 * time.Minute
	}
	if o.TouchEvery <= 0 {
		o.TouchEvery = o.TTL / 8
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &keeper{st: st, o: o}
}

type keeper struct {
	st      store.MCPSessions
	o       Options
	touched sync.Map // session id -> time.Time of the last touch written (Touch hashes only when it writes)
}

func (k *keeper) Create(ctx context.Context, id string, o Owner, s State) error {
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	h := IDHash(id)
	now := k.o.Now()
	if err := k.st.CreateMCPSession(ctx, &store.MCPSession{IDHash: h, TenantID: o.TenantID, Binding: o.binding(), State: b, ExpiresAt: now.Add(k.o.TTL)}); err != nil {
		return err
	}
	k.touched.Store(id, now)
	return nil
}

func (k *keeper) load(ctx context.Context, h string) (*store.MCPSession, State, error) {
	m, err := k.st.GetMCPSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, State{}, ErrNotFound
	}
	if err != nil {
		return nil, State{}, err
	}
	s, err := DecodeState(m.State)
	if err != nil {
		return nil, State{}, err
	}
	return m, s, nil
}

func (k *keeper) Load(ctx context.Context, id string) (*Record, error) {
	m, s, err := k.load(ctx, IDHash(id))
	if err != nil {
		return nil, err
	}
	return &Record{ID: id, TenantID: m.TenantID, binding: m.Binding, State: s, version: m.Version}, nil
}

// updateTries bounds Update's retries on concurrent changes; each retry
// means another replica's change to the same session committed first.
const updateTries = 8

func (k *keeper) Update(ctx context.Context, id string, change func(*State)) (State, error) {
	h := IDHash(id)
	for range updateTries {
		m, s, err := k.load(ctx, h)
		if err != nil {
			return State{}, err
		}
		before, err := encodeState(s)
		if err != nil {
			return State{}, err
		}
		change(&s)
		b, err := encodeState(s)
		if err != nil {
			return State{}, err
		}
		if string(b) == string(before) {
			return s, nil // nothing changed: nothing to write or announce
		}
		m.State, m.ExpiresAt = b, k.o.Now().Add(k.o.TTL)
		err = k.st.UpdateMCPSession(ctx, m)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			return State{}, ErrNotFound
		}
		if err != nil {
			return State{}, err
		}
		k.touched.Store(id, k.o.Now())
		if k.o.Changes != nil {
			k.o.Changes.Publish(ctx, h, false)
		}
		return s, nil
	}
	return State{}, fmt.Errorf("session state changed concurrently %d times; giving up", updateTries)
}

func (k *keeper) Touch(id string) {
	now := k.o.Now()
	if v, ok := k.touched.Load(id); ok && now.Sub(v.(time.Time)) < k.o.TouchEvery {
		return
	}
	k.touched.Store(id, now)
	h := IDHash(id)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := k.st.TouchMCPSession(ctx, h, now.Add(k.o.TTL)); err != nil && !errors.Is(err, store.ErrNotFound) && k.o.OnError != nil {
			k.o.OnError("touching a session", err)
		}
	}()
}

func (k *keeper) Delete(ctx context.Context, id string) error {
	h := IDHash(id)
	k.touched.Delete(id)
	err := k.st.DeleteMCPSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	if err == nil && k.o.Changes != nil {
		k.o.Changes.Publish(ctx, h, true)
	}
	return err
}

func (k *keeper) Watch(fn func(idHash string, deleted bool)) {
	if k.o.Changes != nil {
		k.o.Changes.Subscribe(fn)
	}
}

// Purge removes expired sessions every interval until ctx is done (a
// janitor; any replica may run it, they agree on what expired).
func Purge(ctx context.Context, st store.MCPSessions, every time.Duration, onError func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := st.PurgeMCPSessions(ctx, time.Now()); err != nil && onError != nil && ctx.Err() == nil {
				onError(err)
			}
		}
	}
}
