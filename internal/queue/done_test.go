package queue

import (
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestCompleteAndFailLeaveDoneEntryAlone: once an entry is done, a second
// Complete (a delivery that raced with another consumer) and a late Fail
// change nothing: not the result, not the state, not the size or the
// tenant's usage, and OnDone is not told again.
func TestCompleteAndFailLeaveDoneEntryAlone(t *testing.T) {
	ctx := t.Context()
	var onDone atomic.Int32
	opts := fastOpts()
	opts.OnDone = func(Entry) { onDone.Add(1) }
	q := openQueue(t, t.TempDir(), opts)
	id := mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	if err := q.Complete(ctx, id, json.RawMessage(`{"first":true}`)); err != nil {
		t.Fatal(err)
	}
	before, err := q.Get(ctx, "t", id)
	if err != nil {
		t.Fatal(err)
	}
	if before.State != Done || string(before.Result) != `{"first":true}` {
		t.Fatalf("after Complete: %+v", before)
	}
	usage, _, err := q.Usage(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}

	if err := q.Complete(ctx, id, json.RawMessage(`{"second":"a longer result than the first"}`)); err != nil {
		t.Fatalf("second Complete: %v (want nil: it is a no-op)", err)
	}
	if err := q.Fail(ctx, id, errors.New("late failure"), time.Time{}); !errors.Is(err, ErrState) {
		t.Errorf("Fail of a done entry: %v, want ErrState", err)
	}
	if err := q.Fail(ctx, id, Permanent(errors.New("late permanent failure")), time.Time{}); !errors.Is(err, ErrState) {
		t.Errorf("permanent Fail of a done entry: %v, want ErrState", err)
	}

	after, err := q.Get(ctx, "t", id)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != Done || string(after.Result) != `{"first":true}` || after.LastError != "" ||
		after.Size != before.Size || !after.DoneAt.Equal(before.DoneAt) || after.Attempts != before.Attempts {
		t.Errorf("a done entry changed:\nbefore %+v\nafter  %+v", before, after)
	}
	usageAfter, _, err := q.Usage(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if usageAfter != usage {
		t.Errorf("tenant usage changed from %+v to %+v", usage, usageAfter)
	}
	if n := onDone.Load(); n != 1 {
		t.Errorf("OnDone called %d times, want 1", n)
	}
}
