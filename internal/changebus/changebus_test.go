package changebus

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestBus: an announcement reaches the other replicas' handlers of its
// topic, not the sender's, over a real Redis; a foreign message is ignored.
func TestBus(t *testing.T) {
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
	log := slog.New(slog.DiscardHandler)
	a, b := New(ctx, rdb, log), New(ctx, rdb, log)
	got := make(chan string, 4)
	b.On(TopicPolicy, func() { got <- "b policy" })
	b.On(TopicPins, func() { got <- "b pins" })
	a.On(TopicPolicy, func() { got <- "a policy" })
	rdb.Publish(ctx, Channel, `not json`)
	a.Announce(ctx, TopicPolicy)
	select {
	case s := <-got:
		if s != "b policy" {
			t.Fatalf("got %q, want b's policy handler", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the announcement did not arrive")
	}
	select {
	case s := <-got:
		t.Fatalf("also got %q", s)
	case <-time.After(200 * time.Millisecond):
	}
	// An announcer (the CLI) is heard by the replicas.
	NewAnnouncer(rdb, log).Announce(ctx, TopicPins)
	select {
	case s := <-got:
		if s != "b pins" {
			t.Fatalf("got %q, want b's pins handler", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the announcer's announcement did not arrive")
	}
	var nilBus *Bus
	nilBus.Announce(ctx, TopicPolicy) // no Redis: nothing, no panic
	nilBus.On(TopicPolicy, func() {})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"origin":"abc","topic":"policy"}`))
	f.Add([]byte(`{"origin":"","topic":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		origin, topic, ok := Parse(b)
		if ok && (origin == "" || topic == "") {
			t.Fatalf("accepted %q", b)
		}
	})
}
