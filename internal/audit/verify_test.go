package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// fill appends n entries to st in batches (of 3 for short chains, so
// batches straddle pages) and returns the head.
func fill(t *testing.T, st store.Audit, n int) Head {
	t.Helper()
	ctx := t.Context()
	t0 := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	size := 3
	if n > 30 {
		size = 97
	}
	var batch []*store.AuditEntry
	for i := range n {
		e := entry(i)
		e.Time = t0.Add(time.Duration(i) * time.Millisecond)
		e.Detail = []byte(fmt.Sprintf(`{"i":%d}`, i))
		if i%2 == 1 {
			e.TenantID, e.Action = "t2", "auth.login"
		}
		batch = append(batch, e)
		if len(batch) == size || i == n-1 {
			if err := st.AppendAudit(ctx, batch, Seal); err != nil {
				t.Fatalf("AppendAudit: %v", err)
			}
			batch = nil
		}
	}
	seq, hash, err := st.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if seq != int64(n) {
		t.Fatalf("head %d after %d appends", seq, n)
	}
	return Head{Seq: seq, Hash: hash}
}

func TestVerifyIntact(t *testing.T) {
	st := &memAudit{}
	rep, err := Verify(t.Context(), st)
	if err != nil || !rep.OK || rep.Entries != 0 || rep.Head.Seq != 0 {
		t.Fatalf("empty log: %+v, %v", rep, err)
	}
	head := fill(t, st, 25)
	for _, page := range []int{1, 7, 25, 1000} {
		rep, err := VerifyWith(t.Context(), st, VerifyOptions{PageSize: page, ExpectHead: &head})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Entries != 25 || rep.Head.Seq != 25 || !bytes.Equal(rep.Head.Hash, head.Hash) || rep.FirstBad != 0 || rep.Problem != "" {
			t.Fatalf("page %d: %+v", page, rep)
		}
	}
	// An older head is fine: the chain grew since.
	old := Head{Seq: 10, Hash: st.all()[9].Hash}
	if rep, _ := VerifyWith(t.Context(), st, VerifyOptions{ExpectHead: &old}); !rep.OK {
		t.Fatalf("older head: %+v", rep)
	}
}

// tamperCase damages a 10-entry chain and says what Verify must report.
type tamperCase struct {
	name     string
	firstBad int64
	kind     string
	// expectHead: only detectable against the remembered head.
	expectHead bool
}

var tamperCases = []tamperCase{
	{"edit outcome", 4, ProblemHash, false},
	{"edit detail", 4, ProblemHash, false},
	{"edit and reseal", 5, ProblemLink, false},
	{"delete middle", 4, ProblemGap, false},
	{"delete first", 1, ProblemGap, false},
	{"swap contents", 4, ProblemLink, false},
	{"renumber after delete", 4, ProblemLink, false},
	{"truncate tail", 10, ProblemTruncate, false},
	{"reseal tail", 10, ProblemHead, false},
	{"truncate tail and head record", 10, ProblemTruncate, true},
	{"reseal tail and head record", 10, ProblemHead, true},
}

func TestVerifyTamperFake(t *testing.T) {
	for _, tc := range tamperCases {
		t.Run(tc.name, func(t *testing.T) {
			st := &memAudit{}
			head := fill(t, st, 10)
			st.tamper(func(es []store.AuditEntry, h *Head) []store.AuditEntry {
				return tamperFake(t, tc.name, es, h)
			})
			checkTampered(t, st, head, tc)
		})
	}
	t.Run("out of order", func(t *testing.T) {
		st := &memAudit{}
		fill(t, st, 10)
		st.tamper(func(es []store.AuditEntry, _ *Head) []store.AuditEntry {
			es[3], es[4] = es[4], es[3] // a store returning rows out of Seq order
			return es
		})
		rep, err := VerifyWith(t.Context(), st, VerifyOptions{PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		// Seq 5 arrives where 4 should: a gap, then 4 after 5.
		if rep.OK || rep.FirstBad != 4 || rep.Kind != ProblemGap {
			t.Fatalf("%+v", rep)
		}
		c := newChecker(VerifyOptions{})
		all := st.all()
		for _, e := range []store.AuditEntry{all[0], all[1], all[1]} {
			if !c.check(&e) {
				break
			}
		}
		if c.report.Kind != ProblemOrder || c.report.FirstBad != 2 {
			t.Fatalf("duplicate Seq: %+v", c.report)
		}
	})
}

// tamperFake applies a tamper case to entries as stored (index i holds Seq
// i+1) and the store's head record.
func tamperFake(t *testing.T, name string, es []store.AuditEntry, head *Head) []store.AuditEntry {
	switch name {
	case "edit outcome":
		es[3].Outcome = "denied"
	case "edit detail":
		es[3].Detail = []byte(`{"i":99}`)
	case "edit and reseal":
		es[3].Outcome = "denied"
		Seal(&es[3])
	case "delete middle":
		return append(es[:3], es[4:]...)
	case "delete first":
		return es[1:]
	case "swap contents":
		// Rows keep their Seq; everything else trades places.
		es[3], es[4] = es[4], es[3]
		es[3].Seq, es[4].Seq = 4, 5
	case "renumber after delete":
		// Remove entry 4 and renumber the rest to hide the gap.
		es = append(es[:3], es[4:]...)
		for i := 3; i < len(es); i++ {
			es[i].Seq--
		}
	case "truncate tail":
		return es[:7]
	case "reseal tail":
		es[9].Outcome = "denied"
		Seal(&es[9])
	case "truncate tail and head record":
		*head = Head{Seq: 7, Hash: es[6].Hash}
		return es[:7]
	case "reseal tail and head record":
		es[9].Outcome = "denied"
		Seal(&es[9])
		*head = Head{Seq: 10, Hash: es[9].Hash}
	default:
		t.Fatalf("unknown tamper case %q", name)
	}
	return es
}

// checkTampered checks Verify's report on a damaged chain.
func checkTampered(t *testing.T, st store.Audit, head Head, tc tamperCase) {
	t.Helper()
	rep, err := Verify(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	if tc.expectHead {
		if !rep.OK {
			t.Fatalf("without a remembered head the chain should look intact (the documented limit), got %+v", rep)
		}
		rep, err = VerifyWith(t.Context(), st, VerifyOptions{ExpectHead: &head, PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
	}
	if rep.OK || rep.FirstBad != tc.firstBad || rep.Kind != tc.kind {
		t.Fatalf("Verify = %+v, want first bad %d (%s)", rep, tc.firstBad, tc.kind)
	}
	if rep.Entries != tc.firstBad-1 && tc.kind != ProblemTruncate {
		t.Errorf("Entries = %d, want %d intact before the problem", rep.Entries, tc.firstBad-1)
	}
	if rep.Problem == "" || !strings.Contains(rep.Problem, fmt.Sprint(tc.firstBad)) {
		t.Errorf("Problem %q does not name entry %d", rep.Problem, tc.firstBad)
	}
	t.Logf("%s: %s", tc.name, rep.Problem)
}

// errAudit fails every read.
type errAudit struct{ memAudit }

func (*errAudit) ListAudit(context.Context, store.AuditFilter) ([]store.AuditEntry, error) {
	return nil, fmt.Errorf("disk on fire")
}

func TestVerifyStoreError(t *testing.T) {
	if _, err := Verify(t.Context(), &errAudit{}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Verify = %v", err)
	}
	if _, err := Export(t.Context(), &errAudit{}, store.AuditFilter{}, &bytes.Buffer{}); err == nil {
		t.Fatal("Export ignored a store error")
	}
}

func TestHeadText(t *testing.T) {
	h := Head{Seq: 42, Hash: bytes.Repeat([]byte{0xab}, 32)}
	s := h.String()
	if s != "42:"+strings.Repeat("ab", 32) {
		t.Fatalf("String = %s", s)
	}
	back, err := ParseHead(s)
	if err != nil || back.Seq != 42 || !bytes.Equal(back.Hash, h.Hash) {
		t.Fatalf("ParseHead(%s) = %v, %v", s, back, err)
	}
	if empty, err := ParseHead("0:"); err != nil || empty.Seq != 0 {
		t.Fatalf("empty head: %v, %v", empty, err)
	}
	for _, bad := range []string{"", "42", "x:ab", "-1:", "42:abc", "42:" + strings.Repeat("ab", 31)} {
		if _, err := ParseHead(bad); err == nil {
			t.Errorf("ParseHead(%q) accepted", bad)
		}
	}
	b, err := json.Marshal(Report{OK: true, Entries: 42, Head: h})
	if err != nil || !strings.Contains(string(b), `"head":{"seq":42,"hash":"abab`) {
		t.Fatalf("JSON %s, %v", b, err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil || !bytes.Equal(r.Head.Hash, h.Hash) {
		t.Fatalf("JSON round trip: %+v, %v", r, err)
	}
}
