package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// requireService returns the environment variable's value, or skips the
// test when it is unset (fails instead when MCPEDGE_REQUIRE_SERVICES=1).
func requireService(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is not set and MCPEDGE_REQUIRE_SERVICES=1", env)
		}
		t.Skipf("%s is not set", env)
	}
	return v
}

// eventually polls cond every few milliseconds for up to 10s: long enough
// for a loaded machine, and the loop ends as soon as cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRevocationSecondServicePoll: a key, a session and a user revoked
// through one replica are refused by a second replica (its own store
// connection to the same database) after its poll, even though it had
// them cached (and its clock never moves, so the cache would not expire
// on its own).
func TestRevocationSecondServicePoll(t *testing.T) {
	t.Parallel()
	for _, be := range sharedBackends() {
		t.Run(be.name, func(t *testing.T) {
			stores := be.open(t, 2)
			e := newEnv(t, stores[0])
			b := e.service(onStore(stores[1]))
			tn := e.tenant("acme")
			secret, k := e.key(tn.ID, principal.RoleMember, 0)
			u := e.user(tn.ID, "alice", principal.RoleMember, goodPassword)
			login := func() *Tokens {
				tok, err := e.svc.Login(context.Background(), "acme", "alice", goodPassword, testIP)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			t1, t2 := login(), login()
			for _, c := range []string{secret, t1.AccessToken, t2.AccessToken} {
				mustAuth(t, b, c, testIP)
			}

			if err := e.svc.RevokeKey(context.Background(), tn.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			p, err := e.svc.Authenticate(context.Background(), t1.AccessToken, testIP)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Logout(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			mustAuth(t, b, secret, testIP) // not yet polled: the documented window
			mustAuth(t, b, t1.AccessToken, testIP)
			if err := b.pollRevocations(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err = b.Authenticate(context.Background(), secret, testIP)
			wantErr(t, err, ErrUnauthenticated, "API key revoked")
			_, err = b.Authenticate(context.Background(), t1.AccessToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
			mustAuth(t, b, t2.AccessToken, testIP)

			if err := e.svc.RevokeUser(context.Background(), tn.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			if err := b.pollRevocations(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err = b.Authenticate(context.Background(), t2.AccessToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
		})
	}
}

// TestRevocationPollLoop: the same through Start's background poll.
func TestRevocationPollLoop(t *testing.T) {
	t.Parallel()
	for _, be := range sharedBackends() {
		t.Run(be.name, func(t *testing.T) {
			stores := be.open(t, 2)
			e := newEnv(t, stores[0])
			b := e.service(onStore(stores[1]), func(o *Options) { o.Config.RevocationPoll = config.Duration(10 * time.Millisecond) })
			b.Start(t.Context())
			tn := e.tenant("acme")
			secret, k := e.key(tn.ID, principal.RoleMember, 0)
			mustAuth(t, b, secret, testIP)
			if err := e.svc.RevokeKey(context.Background(), tn.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the second service to refuse the revoked key", func() bool {
				_, err := b.Authenticate(context.Background(), secret, testIP)
				return err != nil
			})
			_, err := b.Authenticate(context.Background(), secret, testIP)
			wantErr(t, err, ErrUnauthenticated, "API key revoked")
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func testRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	u := requireService(t, "MCPEDGE_TEST_REDIS")
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v", opt.Addr, err)
	}
	return c
}

// TestRevocationRedis: with Redis, a second replica whose store poll is an
// hour away still refuses a revoked key, session and user at once.
func TestRevocationRedis(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	for _, be := range sharedBackends() {
		t.Run(be.name, func(t *testing.T) {
			stores := be.open(t, 2)
			e := newEnv(t, stores[0], func(o *Options) { o.Redis = rdb })
			b := e.service(onStore(stores[1]), func(o *Options) { o.Redis = rdb }) // RevocationPoll: 1h
			b.Start(t.Context())                                                   // subscribed when Start returns

			tn := e.tenant("acme")
			secret, k := e.key(tn.ID, principal.RoleMember, 0)
			u := e.user(tn.ID, "alice", principal.RoleMember, goodPassword)
			login := func() *Tokens {
				tok, err := e.svc.Login(context.Background(), "acme", "alice", goodPassword, testIP)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			t1, t2 := login(), login()
			for _, c := range []string{secret, t1.AccessToken, t2.AccessToken} {
				mustAuth(t, b, c, testIP)
			}
			refused := func(cred string) func() bool {
				return func() bool { _, err := b.Authenticate(context.Background(), cred, testIP); return err != nil }
			}

			if err := e.svc.RevokeKey(context.Background(), tn.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the key revocation to arrive through Redis", refused(secret))

			p, err := e.svc.Authenticate(context.Background(), t1.AccessToken, testIP)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Logout(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the logout to arrive through Redis", refused(t1.AccessToken))
			mustAuth(t, b, t2.AccessToken, testIP)

			if err := e.svc.RevokeUser(context.Background(), tn.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the user revocation to arrive through Redis", refused(t2.AccessToken))
			_, err = b.Authenticate(context.Background(), t2.AccessToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
			// Nothing of this came from the store poll.
			b.rev.mu.RLock()
			seq := b.rev.seq
			b.rev.mu.RUnlock()
			if seq != 0 {
				t.Fatalf("the second replica polled the store (seq %d)", seq)
			}
		})
	}
}

// TestRevocationMessagesIgnored: garbage and unknown kinds on the
// channel are ignored.
func TestRevocationMessagesIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	e.svc.applyRevocation(&store.Revocation{Kind: "everything", Subject: "x"})
	e.svc.applyRevocation(&store.Revocation{Kind: "key", Subject: ""})
	if len(e.svc.rev.m) != 0 {
		t.Fatalf("revocations %v", e.svc.rev.m)
	}
}

func TestRevocationPrune(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	now := e.clock.Now()
	e.svc.applyRevocation(&store.Revocation{Kind: "jti", Subject: "a", At: now, ExpiresAt: now.Add(time.Minute)})
	e.svc.applyRevocation(&store.Revocation{Kind: "key", Subject: "b", At: now})
	e.svc.applyRevocation(&store.Revocation{Kind: "token_family", Subject: "c", At: now})
	e.svc.applyRevocation(&store.Revocation{Kind: "user", Subject: "d", At: now})
	e.clock.Advance(2 * time.Minute)
	e.svc.rev.prune(e.clock.Now())
	if e.svc.rev.has("jti", "a") || !e.svc.rev.has("key", "b") || !e.svc.rev.has("token_family", "c") || !e.svc.rev.has("user", "d") {
		t.Fatalf("after 2m: %v", e.svc.rev.m)
	}
	// Session revocations are needed in memory only while access tokens
	// issued before them live (Refresh asks the store about sessions).
	e.clock.Advance(e.cfg.AccessTTL.D())
	e.svc.rev.prune(e.clock.Now())
	if !e.svc.rev.has("key", "b") || e.svc.rev.has("token_family", "c") || !e.svc.rev.has("user", "d") {
		t.Fatalf("after AccessTTL: %v", e.svc.rev.m)
	}
	// A user revocation ends the sessions started before it, which live
	// up to RefreshTTL (and their last access token AccessTTL more).
	e.clock.Advance(e.cfg.RefreshTTL.D() - 2*time.Minute)
	e.svc.rev.prune(e.clock.Now())
	if !e.svc.rev.has("user", "d") {
		t.Fatalf("before RefreshTTL+AccessTTL: %v", e.svc.rev.m)
	}
	e.clock.Advance(2*time.Minute + leeway + time.Minute)
	e.svc.rev.prune(e.clock.Now())
	if !e.svc.rev.has("key", "b") || e.svc.rev.has("user", "d") {
		t.Fatalf("after RefreshTTL+AccessTTL: %v", e.svc.rev.m)
	}
}
