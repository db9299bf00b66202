package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password rules.
const (
	// MinPasswordLen is the shortest password HashPassword accepts, in
	// characters. Length beats composition rules (NIST SP 800-63B).
	MinPasswordLen = 12
	// MaxPasswordLen bounds the input of a hash, in bytes.
	MaxPasswordLen = 1024
)

// argonParams are the argon2id parameters of new hashes.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	saltLen int
	keyLen  int
}

// productionArgon are the parameters of new password hashes: m=19456 KiB
// (19 MiB), t=2, p=1, a 16-byte salt and a 32-byte hash. This is the
// OWASP Password Storage Cheat Sheet's first argon2id configuration,
// chosen for a small device: one hash takes tens of milliseconds and 19
// MiB, and the Service lets only a few run at once (hashConcurrency), so
// a login flood costs bounded memory. Hashes store their own parameters,
// so raising these later keeps old hashes valid.
var productionArgon = argonParams{memory: 19456, time: 2, threads: 1, saltLen: 16, keyLen: 32}

// defaultArgon is what HashPassword uses: productionArgon, except in
// tests, which lower it.
var defaultArgon = productionArgon

// Bounds on the parameters VerifyPassword accepts from a stored hash, so
// that a corrupt or planted hash can not make one login take a gigabyte.
const (
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonTime    = 16
	maxArgonThreads = 16
)

var b64 = base64.RawStdEncoding

// HashPassword hashes pw with argon2id and returns a PHC string,
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (unpadded standard
// base64). The password must have at least MinPasswordLen characters.
func HashPassword(pw string) (string, error) {
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return "", invalid("a password must have at least %d characters", MinPasswordLen)
	}
	if len(pw) > MaxPasswordLen {
		return "", invalid("a password must have at most %d bytes", MaxPasswordLen)
	}
	return hashWith(defaultArgon, pw)
}

func hashWith(p argonParams, pw string) (string, error) {
	salt := make([]byte, p.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(p.keyLen))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("auth: malformed password hash")

// VerifyPassword reports whether pw matches the PHC string encoded (as
// made by HashPassword). The comparison is constant-time; the error is
// only for a malformed hash.
func VerifyPassword(encoded, pw string) (bool, error) {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	if len(pw) > MaxPasswordLen {
		// Still spend the time, so the length is not a timing oracle.
		pw = pw[:MaxPasswordLen]
		argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(want)))
		return false, nil
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func parsePHC(s string) (p argonParams, salt, key []byte, err error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(f[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errBadHash
	}
	var m, t, th uint32
	if n, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", m, t, th) != f[3] {
		return p, nil, nil, errBadHash
	}
	if m < 8 || m > maxArgonMemory || t < 1 || t > maxArgonTime || th < 1 || th > maxArgonThreads || m < 8*th {
		return p, nil, nil, errBadHash
	}
	if salt, err = b64.DecodeString(f[4]); err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(f[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return argonParams{memory: m, time: t, threads: uint8(th)}, salt, key, nil
}

// hashConcurrency is how many argon2 computations a Service runs at once.
func hashConcurrency() int { return max(1, min(runtime.GOMAXPROCS(0), 4)) }

// acquireHashSlot waits for one of the Service's hashing slots; call the
// returned function to give it back.
func (s *Service) acquireHashSlot(ctx context.Context) (release func(), err error) {
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dummy returns a hash (of the current parameters) to verify against
// when there is no real one, so that the time spent does not tell.
func (s *Service) dummy() string {
	s.dummyOnce.Do(func() {
		s.dummyHash, _ = hashWith(defaultArgon, "mcpedge dummy password")
	})
	return s.dummyHash
}

// burn spends the time of a password check for a login that fails before
// one (unknown tenant or user), so that response times do not tell which
// accounts exist.
func (s *Service) burn(ctx context.Context, pw string) {
	release, err := s.acquireHashSlot(ctx)
	if err != nil {
		return
	}
	defer release()
	_, _ = VerifyPassword(s.dummy(), pw)
}

// accountLocks serializes login attempts per account.
type accountLocks struct {
	mu sync.Mutex
	m  map[string]*accountLock
}

type accountLock struct {
	ch   chan struct{} // capacity 1: held when full
	refs int
}

func (a *accountLocks) lock(ctx context.Context, id string) (unlock func(), err error) {
	a.mu.Lock()
	if a.m == nil {
		a.m = make(map[string]*accountLock)
	}
	l := a.m[id]
	if l == nil {
		l = &accountLock{ch: make(chan struct{}, 1)}
		a.m[id] = l
	}
	l.refs++
	a.mu.Unlock()
	done := func() {
		a.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(a.m, id)
		}
		a.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}
