package sessionstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/redis/go-redis/v9"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func testState() State {
	return State{ProtocolVersion: "2025-11-25", Initialize: []byte(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}`)}
}

// TestKeeper: a session is saved under its id's hash, loaded only by its
// id, bound to its owner, changed at the version read, and deleted.
func TestKeeper(t *testing.T) {
	st := openStore(t)
	k := New(st, Options{})
	ctx := t.Context()
	alice := Owner{UserID: "key:ta:k-alice", TenantID: "ta"}
	if err := k.Create(ctx, "sid-1", alice, testState()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetMCPSession(ctx, "sid-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session is stored under its id in the clear: %v", err)
	}
	rec, err := k.Load(ctx, "sid-1")
	if err != nil {
		t.Fatal(err)
	}
	if !rec.BoundTo(alice) {
		t.Error("not bound to its owner")
	}
	for _, o := range []Owner{
		{UserID: "key:ta:k-bob", TenantID: "ta"},
		{UserID: "key:ta:k-alice", TenantID: "tb"},
		{},
	} {
		if rec.BoundTo(o) {
			t.Errorf("bound to %+v as well", o)
		}
	}
	if _, err := k.Load(ctx, "sid-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of an unknown id: %v", err)
	}

	// Concurrent changes on several "replicas" are all kept.
	var wg sync.WaitGroup
	uris := []string{"a://1", "a://2", "a://3", "a://4", "a://5", "a://6"}
	for _, u := range uris {
		k2 := New(st, Options{}) // another replica's keeper
		wg.Go(func() {
			if _, err := k2.Update(ctx, "sid-1", func(s *State) { s.Subscribe(u) }); err != nil {
				t.Errorf("Update %s: %v", u, err)
			}
		})
	}
	wg.Wait()
	s, err := k.Update(ctx, "sid-1", func(s *State) { s.LogLevel = "debug"; s.Unsubscribe("a://3") })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Subscriptions, " ") != "a://1 a://2 a://4 a://5 a://6" || s.LogLevel != "debug" {
		t.Errorf("after concurrent updates: %+v", s)
	}
	rec, _ = k.Load(ctx, "sid-1")
	if strings.Join(rec.State.Subscriptions, " ") != "a://1 a://2 a://4 a://5 a://6" {
		t.Errorf("loaded after updates: %+v", rec.State)
	}
	// A change past the bounds is refused, and the session stays loadable.
	if _, err := k.Update(ctx, "sid-1", func(s *State) {
		for i := range MaxSubscriptions + 1 {
			s.Subscribe(fmt.Sprintf("b://%05d", i))
		}
	}); err == nil {
		t.Error("Update saved more than MaxSubscriptions subscriptions")
	}
	if _, err := k.Load(ctx, "sid-1"); err != nil {
		t.Errorf("Load after a refused update: %v", err)
	}
	if err := k.Delete(ctx, "sid-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Load(ctx, "sid-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Delete: %v", err)
	}
	if _, err := k.Update(ctx, "sid-1", func(s *State) { s.LogLevel = "info" }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update after Delete: %v", err)
	}
}

// TestKeeperExpiry: a session unused for its TTL is gone; one in use is
// kept alive by Touch.
func TestKeeperExpiry(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	// A keeper whose clock is an hour behind saves sessions that, by the
	// store's clock, expired 58 minutes ago unless touched.
	past := func() time.Time { return time.Now().Add(-time.Hour) }
	k := New(st, Options{TTL: 2 * time.Minute, TouchEvery: time.Nanosecond, Now: past})
	if err := k.Create(ctx, "idle", Owner{}, testState()); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Load(ctx, "idle"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a session past its TTL: %v", err)
	}
	now := New(st, Options{TTL: 2 * time.Minute, TouchEvery: time.Nanosecond})
	if err := now.Create(ctx, "busy", Owner{}, testState()); err != nil {
		t.Fatal(err)
	}
	m0, err := st.GetMCPSession(ctx, IDHash("busy"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // the touch must be later than the creation
	now.Touch("busy")
	// Touch writes in the background: wait for the expiry to move.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := st.GetMCPSession(ctx, IDHash("busy"))
		if err == nil && m.ExpiresAt.After(m0.ExpiresAt) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Touch did not move the expiry: %+v %v", m, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDecodeStateRefuses: what this package would not have saved is
// refused when loaded.
func TestDecodeStateRefuses(t *testing.T) {
	good := `{"protocol_version":"2025-11-25","initialize":{}}`
	if _, err := DecodeState([]byte(good)); err != nil {
		t.Fatalf("good state: %v", err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"initialize":{}}`, `{"protocol_version":"2025-11-25"}`,
		`{"protocol_version":"2025-11-25","initialize":[]}`,
		`{"protocol_version":"2025-11-25","initialize":{},"subscriptions":["b","a"]}`,
		`{"protocol_version":"2025-11-25","initialize":{},"subscriptions":["a","a"]}`,
		`{"protocol_version":"2025-11-25","initialize":{},"log_level":"` + strings.Repeat("x", 40) + `"}`,
		`{"protocol_version":"2025-11-25","initialize":{"x":"` + strings.Repeat("x", MaxStateBytes) + `"}}`,
	} {
		if _, err := DecodeState([]byte(bad)); err == nil {
			t.Errorf("DecodeState accepted %.80q", bad)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"protocol_version":"2025-11-25","initialize":{},"log_level":"debug","subscriptions":["a","b"]}`))
	f.Add([]byte(`{"face":"x","protocol_version":"1","initialize":{"a":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			return
		}
		again, err := encodeState(s)
		if err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		if _, err := DecodeState(again); err != nil {
			t.Fatalf("a state decoded and encoded again is refused: %v", err)
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"origin":"abc","id_hash":"` + IDHash("x") + `","deleted":true}`))
	f.Add([]byte(`{"origin":"","id_hash":"zz"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		origin, h, _, ok := ParseMessage(b)
		if ok && (origin == "" || len(h) != 64) {
			t.Fatalf("accepted %q as origin %q hash %q", b, origin, h)
		}
	})
}

// TestRedisChanges: an announcement reaches the other replicas, not its
// sender, over a real Redis.
func TestRedisChanges(t *testing.T) {
	u := os.Getenv("MCPEDGE_TEST_REDIS")
	if u == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("MCPEDGE_TEST_REDIS is not set and MCPEDGE_REQUIRE_SERVICES=1")
		}
		t.Skip("MCPEDGE_TEST_REDIS is not set")
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slogDiscard()
	a, b := NewRedisChanges(ctx, rdb, log), NewRedisChanges(ctx, rdb, log)
	type ev struct {
		h   string
		del bool
	}
	gotA, gotB := make(chan ev, 4), make(chan ev, 4)
	a.Subscribe(func(h string, del bool) { gotA <- ev{h, del} })
	b.Subscribe(func(h string, del bool) { gotB <- ev{h, del} })
	// A forged or foreign message is ignored.
	rdb.Publish(ctx, Channel, `{"origin":"x","id_hash":"not-hex"}`)
	a.Publish(ctx, IDHash("s1"), true)
	select {
	case e := <-gotB:
		if e.h != IDHash("s1") || !e.del {
			t.Fatalf("b got %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the announcement did not reach the other replica")
	}
	select {
	case e := <-gotA:
		t.Fatalf("the sender heard its own announcement: %+v", e)
	case <-time.After(200 * time.Millisecond):
	}

	// Publish returns once the other replicas have taken the announcement
	// in (their handlers have run), so that the client's next request
	// finds the change wherever it lands.
	c := NewRedisChanges(ctx, rdb, log)
	var took atomic.Bool
	c.Subscribe(func(h string, _ bool) {
		if h == IDHash("s2") {
			time.Sleep(50 * time.Millisecond) // a slow replica
			took.Store(true)
		}
	})
	a.Publish(ctx, IDHash("s2"), false)
	if !took.Load() {
		t.Error("Publish returned before a replica had taken the announcement in")
	}
	// A replica that never takes it in holds Publish up only so long.
	block := make(chan struct{})
	defer close(block)
	c.Subscribe(func(h string, _ bool) {
		if h == IDHash("s3") {
			<-block
		}
	})
	a.Publish(ctx, IDHash("s3"), false) // returns (after ackWait)
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(`{"origin":"abc","id_hash":"` + IDHash("x") + `","ask_id":"mcpedge-ask-a-1","body":{"jsonrpc":"2.0","id":"mcpedge-ask-a-1","result":{}}}`))
	f.Add([]byte(`{"origin":"abc","id_hash":"zz","ask_id":"","body":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		origin, h, ask, body, ok := ParseAnswer(b)
		if ok && (origin == "" || len(h) != 64 || ask == "" || len(body) == 0 || body[0] != '{') {
			t.Fatalf("accepted %q", b)
		}
	})
}

// TestRedisAnswers: an answer relayed by one replica reaches the others
// whole, over a real Redis.
func TestRedisAnswers(t *testing.T) {
	u := os.Getenv("MCPEDGE_TEST_REDIS")
	if u == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("MCPEDGE_TEST_REDIS is not set and MCPEDGE_REQUIRE_SERVICES=1")
		}
		t.Skip("MCPEDGE_TEST_REDIS is not set")
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, b := NewRedisChanges(ctx, rdb, slogDiscard()), NewRedisChanges(ctx, rdb, slogDiscard())
	got := make(chan string, 2)
	b.SubscribeAnswers(func(h, ask string, body []byte) { got <- h + " " + ask + " " + string(body) })
	a.SubscribeAnswers(func(h, ask string, body []byte) { got <- "self" })
	body := `{"jsonrpc":"2.0","id":"mcpedge-ask-x-1","result":{"content":{"type":"text","text":"hi"}}}`
	if err := a.PublishAnswer(ctx, IDHash("s"), "mcpedge-ask-x-1", []byte(body)); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != IDHash("s")+" mcpedge-ask-x-1 "+body {
			t.Fatalf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the answer did not arrive")
	}
	if err := a.PublishAnswer(ctx, IDHash("s"), "x", make([]byte, MaxAnswerBytes+1)); err == nil {
		t.Error("an oversized answer was published")
	}
}
