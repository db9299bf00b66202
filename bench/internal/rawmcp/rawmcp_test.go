package rawmcp_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
)

func TestAlternate(t *testing.T) {
	srv := httptest.NewServer(fixture.MinEcho())
	defer srv.Close()
	hc := rawmcp.NewHTTPClient(3)
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	var sess []*rawmcp.Session
	for range 3 {
		s, err := rawmcp.Open(ctx, hc, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		s.Prepare("echo", "hello")
		sess = append(sess, s)
	}
	lat, err := rawmcp.Alternate(ctx, sess, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 3 {
		t.Fatalf("got %d latency lists, want 3", len(lat))
	}
	for i, l := range lat {
		if len(l) != 7 {
			t.Errorf("session %d: %d latencies, want 7", i, len(l))
		}
	}

	// A failing session stops it with an error naming the session.
	sess[1].Prepare("nope", "hello")
	if _, err := rawmcp.Alternate(ctx, sess, 2); err == nil {
		t.Fatal("Alternate with a failing session: no error")
	}
}

func TestExpectMinBytes(t *testing.T) {
	srv := httptest.NewServer(fixture.MinEcho())
	defer srv.Close()
	hc := rawmcp.NewHTTPClient(1)
	defer hc.CloseIdleConnections()
	s, err := rawmcp.Open(context.Background(), hc, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.Prepare("echo", "hello")
	s.ExpectMinBytes(1 << 20)
	if err := s.Call(context.Background()); err == nil {
		t.Fatal("a short answer passed ExpectMinBytes(1 MiB)")
	}
	s.ExpectMinBytes(10)
	if err := s.Call(context.Background()); err != nil {
		t.Fatal(err)
	}
}
