package auth

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Revocation kinds (store.Revocation.Kind).
const (
	revKey    = "key"
	revUser   = "user"
	revFamily = "token_family"
	revJTI    = "jti"
)

func knownRevKind(k string) bool {
	switch k {
	case revKey, revUser, revFamily, revJTI:
		return true
	}
	return false
}

type revID struct{ kind, subject string }

type revEntry struct {
	at, expires time.Time
}

// revocations is the in-memory copy of the store's revocation list,
// loaded at New and followed by the watcher.
type revocations struct {
	mu  sync.RWMutex
	m   map[revID]revEntry
	seq int64 // highest store Seq seen
	// sessionTail is how long after a session revocation an access
	// token issued before it can still be presented (AccessTTL plus
	// leeway and a margin for clock skew): after that the entry is not
	// needed in memory, whatever the store keeps. Refresh checks a
	// session revocation in the store itself (IsRevoked).
	sessionTail time.Duration
	// userTail is how long a user revocation is kept: it ends every
	// session started at or before it (Refresh compares the session's
	// start with it, so a refresh token that escaped the store's
	// revocation by racing it is still refused), and such a session
	// lives at most RefreshTTL, its last access token sessionTail more.
	userTail time.Duration

	pollMu   sync.Mutex   // one poll at a time
	polls    atomic.Int64 // polls started (under pollMu)
	polledOK int64        // the number of the last poll that succeeded (under pollMu)
}

func newRevocations(accessTTL, refreshTTL time.Duration) *revocations {
	r := &revocations{m: make(map[revID]revEntry)}
	r.setLifetimes(accessTTL, refreshTTL)
	return r
}

// setLifetimes sets how long revocations recorded from now on are kept,
// from the token lifetimes. Entries already recorded keep theirs: the
// tokens they stop were issued under the lifetimes in force then.
func (r *revocations) setLifetimes(accessTTL, refreshTTL time.Duration) {
	tail := accessTTL + leeway + time.Minute
	r.mu.Lock()
	r.sessionTail, r.userTail = tail, refreshTTL+tail
	r.mu.Unlock()
}

// add records a revocation. For a subject revoked twice the latest time
// is kept (a user revoked again revokes the sessions started since).
func (r *revocations) add(kind, subject string, at, expires time.Time) {
	k := revID{kind, subject}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !at.IsZero() {
		switch kind {
		case revFamily:
			expires = at.Add(r.sessionTail)
		case revUser:
			expires = at.Add(r.userTail)
		}
	}
	e, ok := r.m[k]
	if !ok || at.After(e.at) {
		e.at = at
	}
	if !ok || expires.IsZero() || (!e.expires.IsZero() && expires.After(e.expires)) {
		e.expires = expires
	}
	r.m[k] = e
}

func (r *revocations) has(kind, subject string) bool {
	if subject == "" {
		return false
	}
	r.mu.RLock()
	_, ok := r.m[revID{kind, subject}]
	r.mu.RUnlock()
	return ok
}

// revokedAt returns when subject was last revoked.
func (r *revocations) revokedAt(kind, subject string) (time.Time, bool) {
	r.mu.RLock()
	e, ok := r.m[revID{kind, subject}]
	r.mu.RUnlock()
	return e.at, ok
}

// prune forgets revocations whose credential can no longer be used
// anyway.
func (r *revocations) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.m {
		if !e.expires.IsZero() && now.After(e.expires) {
			delete(r.m, k)
		}
	}
}

// pollRevocations reads the revocations recorded since the last poll and
// applies them. The first call (from New) loads them all.
func (s *Service) pollRevocations(ctx context.Context) error {
	s.rev.pollMu.Lock()
	defer s.rev.pollMu.Unlock()
	return s.pollLocked(ctx)
}

// syncRevocations returns once the in-memory list holds every revocation
// the store had committed when it was called: it polls, unless a poll
// that started after the call has already succeeded meanwhile (so that a
// burst of callers shares polls).
func (s *Service) syncRevocations(ctx context.Context) error {
	r := s.rev
	started := r.polls.Load()
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	if r.polledOK > started {
		return nil
	}
	return s.pollLocked(ctx)
}

// pollLocked is pollRevocations under pollMu.
func (s *Service) pollLocked(ctx context.Context) error {
	r := s.rev
	n := r.polls.Add(1)
	const page = 1000
	for {
		r.mu.RLock()
		after := r.seq
		r.mu.RUnlock()
		list, err := s.st.RevocationsSince(ctx, after, page)
		if err != nil {
			return err
		}
		for i := range list {
			s.applyRevocation(&list[i])
		}
		if len(list) > 0 {
			r.mu.Lock()
			r.seq = max(r.seq, list[len(list)-1].Seq)
			r.mu.Unlock()
		}
		if len(list) < page {
			break
		}
	}
	r.prune(s.now())
	r.polledOK = n
	return nil
}

// applyRevocation records rev and evicts what it invalidates from the
// caches.
func (s *Service) applyRevocation(rev *store.Revocation) {
	if !knownRevKind(rev.Kind) || rev.Subject == "" {
		return
	}
	s.rev.add(rev.Kind, rev.Subject, rev.At, rev.ExpiresAt)
	switch rev.Kind {
	case revKey:
		s.keys.deleteFunc(func(_ string, e *keyEntry) bool { return e.key.ID == rev.Subject })
	case revUser:
		s.users.delete(rev.Subject)
		s.keys.deleteFunc(func(_ string, e *keyEntry) bool { return e.key.UserID == rev.Subject })
	}
}

// revokeLocal applies a revocation just recorded in the store on this
// replica and tells the others through Redis.
func (s *Service) revokeLocal(ctx context.Context, rev store.Revocation) {
	s.applyRevocation(&rev)
	s.publish(ctx, &rev)
}

// revMessage is what goes over Redis. A forged message can only revoke,
// never grant; the store poll remains the source of truth.
type revMessage struct {
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires,omitzero"`
}

func (s *Service) publish(ctx context.Context, rev *store.Revocation) {
	if s.rdb == nil {
		return
	}
	b, err := json.Marshal(revMessage{Kind: rev.Kind, Subject: rev.Subject, At: rev.At, Expires: rev.ExpiresAt})
	if err != nil {
		return
	}
	// A failed publish is only slower: the others find the revocation
	// in the store within RevocationPoll.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.rdb.Publish(ctx, RevocationChannel, b).Err(); err != nil {
		s.log.Warn("auth: publishing a revocation", "kind", rev.Kind, "err", err)
	}
}

// subscribe listens for revocations from other replicas. The
// subscription is confirmed before it returns (bounded by a timeout), so
// that a revocation published after Start is seen; go-redis reconnects
// and resubscribes on its own afterwards.
func (s *Service) subscribe(ctx context.Context) {
	ps := s.rdb.Subscribe(ctx, RevocationChannel)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := ps.Receive(rctx); err != nil {
		s.log.Warn("auth: subscribing to revocations on Redis; relying on the store poll until it reconnects", "err", err)
	}
	cancel()
	ch := ps.Channel()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				var m revMessage
				if len(msg.Payload) > 4096 || json.Unmarshal([]byte(msg.Payload), &m) != nil || len(m.Subject) > 256 {
					continue
				}
				s.applyRevocation(&store.Revocation{Kind: m.Kind, Subject: m.Subject, At: m.At, ExpiresAt: m.Expires})
			}
		}
	}()
}
