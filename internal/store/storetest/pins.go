package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

// testPins checks tool pinning's table: the first pin of an item wins,
// offers are recorded, kept, replaced and cleared by the rules of OfferPin,
// approval and rejection check the reviewed hash, and listings are ordered
// and scoped by upstream.
func testPins(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := &store.Pin{Upstream: "fs", Kind: store.PinTool, Name: "read", Hash: "h1", Definition: []byte(`{"name":"read"}`),
		OfferedHash: "ignored", Rejected: true}
	ok(t, s.CreatePin(ctx, p), "CreatePin")
	if p.PinnedAt.IsZero() || p.OfferedHash != "" || p.Rejected {
		t.Fatalf("CreatePin left %+v", p)
	}
	is(t, s.CreatePin(ctx, &store.Pin{Upstream: "fs", Kind: store.PinTool, Name: "read", Hash: "other", Definition: []byte(`{}`)}), store.ErrConflict, "CreatePin twice")
	got, err := s.GetPin(ctx, "fs", store.PinTool, "read")
	ok(t, err, "GetPin")
	if got.Hash != "h1" || string(got.Definition) != `{"name":"read"}` || !got.PinnedAt.Equal(p.PinnedAt) || got.Pending() {
		t.Fatalf("GetPin = %+v (the first pin must stay)", got)
	}
	_, err = s.GetPin(ctx, "fs", store.PinPrompt, "read")
	is(t, err, store.ErrNotFound, "GetPin of another kind")
	for _, bad := range []*store.Pin{
		{Upstream: "", Kind: store.PinTool, Name: "x", Hash: "h", Definition: []byte("{}")},
		{Upstream: "fs", Kind: "resource", Name: "x", Hash: "h", Definition: []byte("{}")},
		{Upstream: "fs", Kind: store.PinTool, Name: "", Hash: "h", Definition: []byte("{}")},
		{Upstream: "fs", Kind: store.PinTool, Name: "x", Hash: "", Definition: []byte("{}")},
		{Upstream: "fs", Kind: store.PinTool, Name: "x", Hash: "h"},
	} {
		if err := s.CreatePin(ctx, bad); err == nil {
			t.Errorf("CreatePin accepted %+v", bad)
		}
	}

	// Offers.
	_, err = s.OfferPin(ctx, "fs", store.PinTool, "nope", "h2", []byte(`{}`), at(1))
	is(t, err, store.ErrNotFound, "OfferPin of an unpinned item")
	o, err := s.OfferPin(ctx, "fs", store.PinTool, "read", "h1", []byte(`{"name":"read"}`), at(1))
	ok(t, err, "OfferPin of the pinned definition")
	if o.Pending() || o.OfferedHash != "" {
		t.Fatalf("offering the pinned definition made %+v", o)
	}
	o, err = s.OfferPin(ctx, "fs", store.PinTool, "read", "h2", []byte(`{"name":"read","description":"x"}`), at(2))
	ok(t, err, "OfferPin")
	if !o.Pending() || o.OfferedHash != "h2" || !o.OfferedAt.Equal(at(2)) || o.Hash != "h1" {
		t.Fatalf("OfferPin = %+v", o)
	}
	o, err = s.OfferPin(ctx, "fs", store.PinTool, "read", "h2", []byte(`{"name":"read","description":"x"}`), at(3))
	ok(t, err, "OfferPin again")
	if !o.OfferedAt.Equal(at(2)) {
		t.Errorf("offering the same change again moved OfferedAt to %v", o.OfferedAt)
	}
	got, _ = s.GetPin(ctx, "fs", store.PinTool, "read")
	if got.OfferedHash != "h2" || string(got.OfferedDefinition) != `{"name":"read","description":"x"}` || !got.OfferedAt.Equal(at(2)) || got.Hash != "h1" {
		t.Fatalf("after OfferPin: %+v", got)
	}

	// Reject: the reviewed hash must match.
	_, err = s.RejectPin(ctx, "fs", store.PinTool, "read", "h9")
	is(t, err, store.ErrConflict, "RejectPin of another hash")
	r, err := s.RejectPin(ctx, "fs", store.PinTool, "read", "h2")
	ok(t, err, "RejectPin")
	if !r.Rejected || r.Pending() {
		t.Fatalf("RejectPin = %+v", r)
	}
	o, err = s.OfferPin(ctx, "fs", store.PinTool, "read", "h2", []byte(`{"name":"read","description":"x"}`), at(4))
	ok(t, err, "OfferPin of the rejected change")
	if !o.Rejected {
		t.Error("offering a rejected change again made it pending")
	}
	o, err = s.OfferPin(ctx, "fs", store.PinTool, "read", "h3", []byte(`{"name":"read","description":"y"}`), at(5))
	ok(t, err, "OfferPin of a new change")
	if o.Rejected || !o.Pending() || o.OfferedHash != "h3" || !o.OfferedAt.Equal(at(5)) {
		t.Fatalf("a new change after a rejection: %+v", o)
	}
	// Back to the pinned definition: the offer goes.
	o, err = s.OfferPin(ctx, "fs", store.PinTool, "read", "h1", []byte(`{"name":"read"}`), at(6))
	ok(t, err, "OfferPin back")
	got, _ = s.GetPin(ctx, "fs", store.PinTool, "read")
	if o.Pending() || got.OfferedHash != "" || got.OfferedDefinition != nil || !got.OfferedAt.IsZero() || got.Rejected {
		t.Fatalf("after the upstream went back: %+v", got)
	}
	_, err = s.ApprovePin(ctx, "fs", store.PinTool, "read", "", at(7))
	is(t, err, store.ErrNotFound, "ApprovePin without an offer")
	_, err = s.RejectPin(ctx, "fs", store.PinTool, "read", "")
	is(t, err, store.ErrNotFound, "RejectPin without an offer")
	_, err = s.ApprovePin(ctx, "fs", store.PinTool, "nope", "", at(7))
	is(t, err, store.ErrNotFound, "ApprovePin of an unpinned item")

	// Approve.
	_, err = s.OfferPin(ctx, "fs", store.PinTool, "read", "h4", []byte(`{"name":"read","description":"z"}`), at(8))
	ok(t, err, "OfferPin h4")
	_, err = s.ApprovePin(ctx, "fs", store.PinTool, "read", "h3", at(9))
	is(t, err, store.ErrConflict, "ApprovePin of a hash no longer offered")
	a, err := s.ApprovePin(ctx, "fs", store.PinTool, "read", "h4", at(9))
	ok(t, err, "ApprovePin")
	got, _ = s.GetPin(ctx, "fs", store.PinTool, "read")
	diff(t, a, got, "ApprovePin's result and GetPin")
	if got.Hash != "h4" || string(got.Definition) != `{"name":"read","description":"z"}` || !got.PinnedAt.Equal(at(9)) || got.OfferedHash != "" || got.Rejected {
		t.Fatalf("after ApprovePin: %+v", got)
	}

	// Listing: by upstream, kind, name; scoped.
	for _, q := range []store.Pin{
		{Upstream: "fs", Kind: store.PinPrompt, Name: "greet", Hash: "p", Definition: []byte("{}")},
		{Upstream: "fs", Kind: store.PinTemplate, Name: "file:///{path}", Hash: "t", Definition: []byte("{}")},
		{Upstream: "db", Kind: store.PinTool, Name: "query", Hash: "q", Definition: []byte("{}")},
		{Upstream: "fs", Kind: store.PinTool, Name: "list", Hash: "l", Definition: []byte("{}")},
	} {
		ok(t, s.CreatePin(ctx, &q), "CreatePin "+q.Name)
	}
	key := func(ps []store.Pin) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Upstream+"/"+p.Kind+"/"+p.Name)
		}
		return out
	}
	all, err := s.ListPins(ctx, "")
	ok(t, err, "ListPins")
	diff(t, []string{"db/tool/query", "fs/prompt/greet", "fs/template/file:///{path}", "fs/tool/list", "fs/tool/read"}, key(all), "ListPins(\"\")")
	fs, err := s.ListPins(ctx, "fs")
	ok(t, err, "ListPins fs")
	diff(t, []string{"fs/prompt/greet", "fs/template/file:///{path}", "fs/tool/list", "fs/tool/read"}, key(fs), "ListPins(fs)")
	none, err := s.ListPins(ctx, "nope")
	ok(t, err, "ListPins of an unknown upstream")
	if len(none) != 0 {
		t.Errorf("ListPins(nope) = %v", none)
	}
}

// testPinsConcurrent checks that of several replicas pinning the same item
// at once exactly one wins.
func testPinsConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range 8 {
		wg.Go(func() {
			err := s.CreatePin(ctx, &store.Pin{Upstream: "u", Kind: store.PinTool, Name: "t", Hash: string(rune('a' + i)), Definition: []byte("{}")})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errorsIsConflict(err):
				conflicts++
			default:
				t.Errorf("CreatePin: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || conflicts != 7 {
		t.Errorf("%d replicas won and %d got ErrConflict; want 1 and 7", wins, conflicts)
	}
}

func errorsIsConflict(err error) bool { return errors.Is(err, store.ErrConflict) }
