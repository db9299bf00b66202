package sessionstore

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
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
	return rdb
}

// TestRedisMailbox: a request reaches the replica it names and its reply
// comes back to the sender, over a real Redis; a name no replica serves
// is told at once, a forged request is ignored, and a replica that stops
// serving is no longer reached.
func TestRedisMailbox(t *testing.T) {
	rdb := testRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	actx, stopA := context.WithCancel(ctx)
	a, b := NewRedisChanges(actx, rdb, slogDiscard()), NewRedisChanges(ctx, rdb, slogDiscard())
	name := "mbx-" + strings.ToLower(a.origin[:8])
	got := make(chan string, 4)
	a.Serve(name, func(ctx context.Context, body []byte) []byte {
		got <- string(body)
		if _, ok := ctx.Deadline(); !ok {
			return []byte(`{"deadline":false}`)
		}
		return []byte(`{"echo":` + string(body) + `}`)
	})
	// A forged request (no sender to reply to) never reaches the handler.
	rdb.Publish(ctx, mailChannel+name, `{"id":1,"body":{"x":1},"deadline_ms":1}`)
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	out, err := b.Send(sctx, name, []byte(`{"q":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"echo":{"q":1}}` {
		t.Fatalf("reply %s", out)
	}
	if s := <-got; s != `{"q":1}` {
		t.Fatalf("the handler got %s", s)
	}
	if _, err := b.Send(sctx, "nobody-"+strings.ToLower(b.origin[:6]), []byte(`{}`)); !errors.Is(err, ErrNoReplica) {
		t.Errorf("a name nobody serves: %v, want ErrNoReplica", err)
	}
	if _, err := b.Send(sctx, "bad name", []byte(`{}`)); err == nil {
		t.Error("an invalid name was accepted")
	}
	if _, err := b.Send(sctx, name, make([]byte, MaxMailBytes+1)); err == nil {
		t.Error("an oversized request was sent")
	}
	// The replica stops: its name is no longer served.
	stopA()
	deadline := time.Now().Add(5 * time.Second)
	for {
		actx, acancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := b.Send(actx, name, []byte(`{"q":2}`))
		acancel()
		if errors.Is(err, ErrNoReplica) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stopped replica is still reached: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func FuzzParseMail(f *testing.F) {
	f.Add([]byte(`{"from":"abc","id":3,"deadline_ms":1700000000000,"body":{"state":"x"}}`))
	f.Add([]byte(`{"from":"abc","id":3,"reply":true,"err":"busy"}`))
	f.Add([]byte(`{"from":"a b","id":0,"body":[1]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseMail(b)
		if !ok {
			return
		}
		if !validName(m.From) || m.ID == 0 || (len(m.Body) > 0 && m.Body[0] != '{') || (!m.Reply && (len(m.Body) == 0 || m.Deadline <= 0)) {
			t.Fatalf("accepted %q", b)
		}
	})
}
