// Package sealbox encrypts records at rest with AES-256-GCM.
//
// A [Box] seals a record's bytes under a data key and binds the ciphertext
// to the record it belongs to: the tenant and the record id are
// authenticated as additional data ([AD]), so a ciphertext copied into
// another record or another tenant's row fails to open instead of
// decrypting there.
//
// # Keys
//
// One secret, the master key (32 bytes), comes from a [KeySource]: a key
// file ([FileKey], created with 32 random bytes and mode 0600 when absent),
// an environment variable holding it in base64 ([EnvKey]), or later a key
// sealed by a TPM. The master key never encrypts data itself. Data keys are
// derived from it with HKDF-SHA256 and a random 32-byte salt per key, and
// the key ring — each key's id, salt, a check value and its message count,
// but no key material — lives in a [Store] next to the data it protects
// (the queue keeps it in its database). So:
//
//   - [Box.Rotate] adds a key (a new salt) without a new master key; new
//     seals use it and ciphertexts of older keys still open, because every
//     ciphertext names its key id in its header. A re-encrypt pass (the
//     queue's Reencrypt) then moves records to the newest key.
//   - A master key that does not match the ring (another key file, a typo
//     in the environment variable) is refused when the box is attached,
//     with an error naming the key, not discovered later as "message
//     authentication failed" on every record.
//
// # Message limit
//
// Nonces are 96 random bits, so the number of messages one key may seal is
// bounded (NIST SP 800-38D allows 2^32 with random nonces, keeping the
// chance of a repeated nonce below 2^-32). Each key counts its messages in
// the Store and refuses to seal past [Options.MaxMessages] (default 2^30,
// a quarter of that bound) with [ErrKeyExhausted], asking for a rotation.
// Counts are reserved from the Store in blocks, so a crash can only make
// the count too high, never too low.
//
// # Format
//
// A ciphertext is
//
//	version (1 byte, 1) | key id (4 bytes, big-endian) | nonce (12 bytes) | GCM ciphertext and tag
//
// and its additional data is "mcpedge-sealbox-v1", the first five bytes
// of the header, then the tenant and the record id, each preceded by its
// length as 4 bytes big-endian.
package sealbox

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/hkdf"
)

// Sizes and defaults.
const (
	// KeySize is the size of a master key and of every data key: AES-256.
	KeySize = 32
	// SaltSize is the size of a data key's random salt.
	SaltSize = 32
	// Overhead is how many bytes a sealed message is longer than its
	// plaintext: header, nonce and tag.
	Overhead = headerSize + nonceSize + tagSize

	// DefaultMaxMessages is the default [Options.MaxMessages]: 2^30
	// messages per key, a quarter of the 2^32 random-nonce bound.
	DefaultMaxMessages = uint64(1) << 30
	// LimitMaxMessages is the largest accepted [Options.MaxMessages].
	LimitMaxMessages = uint64(1) << 31
	// DefaultReserve is the default [Options.Reserve].
	DefaultReserve = uint64(4096)

	version    = 1
	headerSize = 1 + 4
	nonceSize  = 12
	tagSize    = 16
	checkSize  = 16
)

var (
	// ErrOpen is returned by [Box.Open] for a ciphertext that does not
	// authenticate: it was altered, or it belongs to another record or
	// tenant, or it was sealed under another master key.
	ErrOpen = errors.New("sealbox: ciphertext does not authenticate (altered, moved from another record or tenant, or sealed with another master key)")
	// ErrKeyExhausted is returned by [Box.Seal] when the active key has
	// sealed [Options.MaxMessages] messages. Rotate the key.
	ErrKeyExhausted = errors.New("sealbox: the active key has sealed as many messages as it may; rotate the key")
	// ErrUnknownKey is returned by [Box.Open] for a ciphertext whose key
	// id is not in the key ring.
	ErrUnknownKey = errors.New("sealbox: ciphertext names a key that is not in the key ring")
	// ErrNotAttached is returned by a Box that has no [Store] yet.
	ErrNotAttached = errors.New("sealbox: box is not attached to a key store")
	// ErrKeyExists is what [Store.AddKey] returns (wrapped or not) when
	// the id is taken: another process added a key at the same time.
	ErrKeyExists = errors.New("sealbox: key id exists")
)

// A KeySource provides the master key. Implementations must return a fresh
// copy of the key each time (the box may clear its copy) and should be
// cheap: it is called once, by [New].
type KeySource interface {
	// MasterKey returns the KeySize-byte master key.
	MasterKey(ctx context.Context) ([]byte, error)
	// String says where the key comes from, for error messages
	// ("key file /var/lib/mcpedge/queue.key"). It must not include the
	// key.
	String() string
}

// A KeyRecord describes one data key. It holds no secret: the key is
// derived from the master key and Salt.
type KeyRecord struct {
	ID uint32
	// Salt is SaltSize random bytes.
	Salt []byte
	// Check is derived from the master key and Salt (not the data key
	// itself) and proves that a master key is the one this key was made
	// with.
	Check []byte
	// Used is how many messages were reserved for sealing under this key:
	// an upper bound of how many were sealed.
	Used    uint64
	Created time.Time
}

// A Store keeps the key ring. Its writes must be durable when they return,
// and Reserve must be atomic across processes that share the store.
type Store interface {
	// Keys returns every key record, in any order.
	Keys(ctx context.Context) ([]KeyRecord, error)
	// AddKey stores a new key record (Used 0). It returns an error that
	// is or wraps ErrKeyExists if the id is taken.
	AddKey(ctx context.Context, k KeyRecord) error
	// Reserve adds n to key id's Used count and returns the count before.
	Reserve(ctx context.Context, id uint32, n uint64) (before uint64, err error)
}

// Options tune a Box. The zero value means the defaults.
type Options struct {
	// MaxMessages is how many messages one key may seal. If zero,
	// DefaultMaxMessages; at most LimitMaxMessages.
	MaxMessages uint64
	// Reserve is how many messages the box reserves in the Store at a
	// time: a larger block writes the Store less often and wastes more
	// of a key's messages when a process ends. If zero, DefaultReserve.
	Reserve uint64
}

// AD is the additional data a ciphertext is bound to.
type AD struct {
	Tenant string
	// Record names the record and, when a record holds several sealed
	// fields, the field ("q_abc/arguments").
	Record string
}

// A Box seals and opens records. It is safe for concurrent use.
type Box struct {
	src    KeySource
	master []byte
	max    uint64
	block  uint64

	mu     sync.Mutex
	st     Store
	keys   map[uint32]*dataKey
	active *dataKey
}

type dataKey struct {
	rec  KeyRecord
	aead cipher.AEAD
	// next and end are the reserved range of message numbers not used
	// yet: [next, end).
	next, end uint64
}

// New reads the master key from src. The box seals and opens nothing
// until it is attached to the Store that holds its key ring.
func New(ctx context.Context, src KeySource, opts *Options) (*Box, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxMessages == 0 {
		o.MaxMessages = DefaultMaxMessages
	}
	if o.MaxMessages > LimitMaxMessages {
		return nil, fmt.Errorf("sealbox: MaxMessages %d is over the limit %d for random nonces", o.MaxMessages, LimitMaxMessages)
	}
	if o.Reserve == 0 {
		o.Reserve = DefaultReserve
	}
	key, err := src.MasterKey(ctx)
	if err != nil {
		return nil, err
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealbox: %s gave a %d-byte key, want %d", src, len(key), KeySize)
	}
	return &Box{src: src, master: key, max: o.MaxMessages, block: o.Reserve, keys: map[uint32]*dataKey{}}, nil
}

// Attach loads the key ring from st, creating the first key when the ring
// is empty, and checks that the master key matches every key in it. A Box
// is attached once.
func (b *Box) Attach(ctx context.Context, st Store) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st != nil {
		return errors.New("sealbox: box is already attached")
	}
	b.st = st
	if err := b.reload(ctx); err != nil {
		b.st = nil
		return err
	}
	if b.active == nil {
		if _, err := b.addKey(ctx); err != nil {
			b.st = nil
			return err
		}
	}
	return nil
}

// reload reads the key ring; the caller holds b.mu.
func (b *Box) reload(ctx context.Context) error {
	recs, err := b.st.Keys(ctx)
	if err != nil {
		return fmt.Errorf("sealbox: reading the key ring: %w", err)
	}
	for _, r := range recs {
		if k, ok := b.keys[r.ID]; ok {
			k.rec.Used = max(k.rec.Used, r.Used)
			continue
		}
		k, err := b.derive(r)
		if err != nil {
			return err
		}
		b.keys[r.ID] = k
	}
	for _, k := range b.keys {
		if b.active == nil || k.rec.ID > b.active.rec.ID {
			b.active = k
		}
	}
	return nil
}

// derive makes the data key of r, checking the master key against r.Check.
func (b *Box) derive(r KeyRecord) (*dataKey, error) {
	if len(r.Salt) != SaltSize {
		return nil, fmt.Errorf("sealbox: key %d in the key ring has a %d-byte salt, want %d", r.ID, len(r.Salt), SaltSize)
	}
	if subtle.ConstantTimeCompare(b.check(r.Salt), r.Check) != 1 {
		return nil, fmt.Errorf("sealbox: the master key from %s is not the one key %d was made with (another key file, or another value of the variable?); records sealed with key %d can only be opened with that master key", b.src, r.ID, r.ID)
	}
	dk := make([]byte, KeySize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, b.master, r.Salt, []byte("mcpedge-sealbox-v1 data key")), dk); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &dataKey{rec: r, aead: aead}, nil
}

func (b *Box) check(salt []byte) []byte {
	c := make([]byte, checkSize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, b.master, salt, []byte("mcpedge-sealbox-v1 key check")), c); err != nil {
		panic(err) // hkdf can give 255*32 bytes; 16 never fail
	}
	return c
}

// addKey creates a key with the next id and makes it active; the caller
// holds b.mu.
func (b *Box) addKey(ctx context.Context) (uint32, error) {
	for range 10 {
		id := uint32(1)
		if b.active != nil {
			id = b.active.rec.ID + 1
		}
		salt := make([]byte, SaltSize)
		rand.Read(salt)
		r := KeyRecord{ID: id, Salt: salt, Check: b.check(salt), Created: time.Now().UTC().Truncate(time.Microsecond)}
		err := b.st.AddKey(ctx, r)
		if errors.Is(err, ErrKeyExists) {
			// Another process added this id: learn its keys and go on
			// from there.
			if err := b.reload(ctx); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("sealbox: storing a new key: %w", err)
		}
		k, err := b.derive(r)
		if err != nil {
			return 0, err
		}
		b.keys[id] = k
		b.active = k
		return id, nil
	}
	return 0, errors.New("sealbox: could not add a key: other processes keep adding keys")
}

// Rotate adds a key and makes it the one new seals use. Ciphertexts of
// older keys still open. It returns the new key's id.
func (b *Box) Rotate(ctx context.Context) (uint32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st == nil {
		return 0, ErrNotAttached
	}
	if err := b.reload(ctx); err != nil {
		return 0, err
	}
	return b.addKey(ctx)
}

// ActiveKey returns the id of the key new seals use, 0 before Attach.
func (b *Box) ActiveKey() uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active == nil {
		return 0
	}
	return b.active.rec.ID
}

// KeyStats describes one key of the ring.
type KeyStats struct {
	ID uint32
	// Used is an upper bound of the messages sealed with the key (this
	// process's view: other processes may have reserved more).
	Used, MaxMessages uint64
	Active            bool
	Created           time.Time
}

// Keys describes the key ring, in id order.
func (b *Box) Keys() []KeyStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []KeyStats
	for _, k := range b.keys {
		out = append(out, KeyStats{ID: k.rec.ID, Used: k.rec.Used, MaxMessages: b.max, Active: k == b.active, Created: k.rec.Created})
	}
	slices.SortFunc(out, func(a, b KeyStats) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// take reserves one message number of the active key and returns the key.
func (b *Box) take(ctx context.Context) (*dataKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st == nil {
		return nil, ErrNotAttached
	}
	k := b.active
	if k.next >= k.end {
		// Learn of keys other processes added, so that they converge on
		// the newest key.
		if err := b.reload(ctx); err != nil {
			return nil, err
		}
		k = b.active
	}
	if k.next >= k.end {
		if k.rec.Used >= b.max {
			return nil, fmt.Errorf("%w (key %d has reached %d messages)", ErrKeyExhausted, k.rec.ID, b.max)
		}
		before, err := b.st.Reserve(ctx, k.rec.ID, b.block)
		if err != nil {
			return nil, fmt.Errorf("sealbox: counting messages of key %d: %w", k.rec.ID, err)
		}
		k.rec.Used = max(k.rec.Used, before+b.block)
		if before >= b.max {
			return nil, fmt.Errorf("%w (key %d has reached %d messages)", ErrKeyExhausted, k.rec.ID, b.max)
		}
		k.next, k.end = before, min(before+b.block, b.max)
	}
	k.next++
	return k, nil
}

// Seal encrypts plaintext for the record ad names, under the active key.
func (b *Box) Seal(ctx context.Context, ad AD, plaintext []byte) ([]byte, error) {
	k, err := b.take(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(plaintext)+tagSize)
	out[0] = version
	binary.BigEndian.PutUint32(out[1:headerSize], k.rec.ID)
	nonce := out[headerSize:]
	rand.Read(nonce) // never fails (crypto/rand)
	return k.aead.Seal(out, nonce, plaintext, additional(out[:headerSize], ad)), nil
}

// Open decrypts a ciphertext made by Seal for the same ad. A ciphertext of
// a key this box does not know yet (another process rotated) makes it
// reload the key ring once.
func (b *Box) Open(ctx context.Context, ad AD, ciphertext []byte) ([]byte, error) {
	id, err := KeyID(ciphertext)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.st == nil {
		b.mu.Unlock()
		return nil, ErrNotAttached
	}
	k := b.keys[id]
	if k == nil {
		if err := b.reload(ctx); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		k = b.keys[id]
	}
	b.mu.Unlock()
	if k == nil {
		return nil, fmt.Errorf("%w (key %d)", ErrUnknownKey, id)
	}
	nonce := ciphertext[headerSize : headerSize+nonceSize]
	pt, err := k.aead.Open(nil, nonce, ciphertext[headerSize+nonceSize:], additional(ciphertext[:headerSize], ad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Stale reports whether ciphertext was sealed with a key other than the
// active one, so a re-encrypt pass should seal it again.
func (b *Box) Stale(ciphertext []byte) bool {
	id, err := KeyID(ciphertext)
	return err == nil && id != b.ActiveKey()
}

// KeyID returns the id of the key a ciphertext was sealed with.
func KeyID(ciphertext []byte) (uint32, error) {
	if len(ciphertext) < Overhead {
		return 0, fmt.Errorf("sealbox: ciphertext too short (%d bytes, at least %d)", len(ciphertext), Overhead)
	}
	if ciphertext[0] != version {
		return 0, fmt.Errorf("sealbox: unknown ciphertext version %d", ciphertext[0])
	}
	return binary.BigEndian.Uint32(ciphertext[1:headerSize]), nil
}

// additional is the GCM additional data: a domain tag, the header, and
// the tenant and record, each length-prefixed so that no two (tenant,
// record) pairs give the same bytes.
func additional(header []byte, ad AD) []byte {
	const tag = "mcpedge-sealbox-v1"
	out := make([]byte, 0, len(tag)+len(header)+8+len(ad.Tenant)+len(ad.Record))
	out = append(out, tag...)
	out = append(out, header...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ad.Tenant)))
	out = append(out, ad.Tenant...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ad.Record)))
	out = append(out, ad.Record...)
	return out
}
