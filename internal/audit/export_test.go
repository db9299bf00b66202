package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// testExport exports st (holding fill(t, st, n)) whole and filtered, and
// parses every line back.
func testExport(t *testing.T, st store.Audit, n int) {
	ctx := t.Context()
	want, err := st.ListAudit(ctx, store.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != n {
		t.Fatalf("%d entries stored, want %d", len(want), n)
	}

	var buf bytes.Buffer
	got, err := Export(ctx, st, store.AuditFilter{}, &buf)
	if err != nil || got != n {
		t.Fatalf("Export = %d, %v; want %d", got, err, n)
	}
	lines := parseLines(t, buf.Bytes())
	if !reflect.DeepEqual(normalize(lines), normalize(want)) {
		t.Fatalf("exported entries differ from the stored ones")
	}
	for _, e := range lines {
		if h := sealed(&e); !bytes.Equal(h, e.Hash) {
			t.Fatalf("entry %d does not re-seal from its exported form", e.Seq)
		}
	}
	rep, err := VerifyLines(bytes.NewReader(buf.Bytes()), VerifyOptions{})
	if err != nil || !rep.OK || rep.Entries != int64(n) {
		t.Fatalf("VerifyLines = %+v, %v", rep, err)
	}
	// A damaged line is caught offline too.
	bad := strings.Replace(buf.String(), `"outcome":"ok"`, `"outcome":"denied"`, 1)
	if rep, err := VerifyLines(strings.NewReader(bad), VerifyOptions{}); err != nil || rep.OK || rep.FirstBad != 1 || rep.Kind != ProblemHash {
		t.Fatalf("VerifyLines on an edited export = %+v, %v", rep, err)
	}

	filters := []struct {
		name string
		f    store.AuditFilter
		keep func(e *store.AuditEntry) bool
	}{
		{"tenant", store.AuditFilter{TenantID: "t2"}, func(e *store.AuditEntry) bool { return e.TenantID == "t2" }},
		{"action prefix", store.AuditFilter{Action: "auth."}, func(e *store.AuditEntry) bool { return strings.HasPrefix(e.Action, "auth.") }},
		{"action exact", store.AuditFilter{Action: "tool.call"}, func(e *store.AuditEntry) bool { return e.Action == "tool.call" }},
		{"tenant and after", store.AuditFilter{TenantID: "t1", AfterSeq: 1000}, func(e *store.AuditEntry) bool { return e.TenantID == "t1" && e.Seq > 1000 }},
		{"limit", store.AuditFilter{Action: "auth.", Limit: 1500}, nil},
	}
	for _, tt := range filters {
		t.Run(tt.name, func(t *testing.T) {
			var match []store.AuditEntry
			for i := range want {
				if tt.keep == nil || tt.keep(&want[i]) {
					match = append(match, want[i])
				}
			}
			if tt.keep == nil { // the limit case: the first 1500 auth entries
				match = nil
				for i := range want {
					if strings.HasPrefix(want[i].Action, "auth.") && len(match) < tt.f.Limit {
						match = append(match, want[i])
					}
				}
			}
			var buf bytes.Buffer
			got, err := Export(ctx, st, tt.f, &buf)
			if err != nil || got != len(match) {
				t.Fatalf("Export = %d, %v; want %d", got, err, len(match))
			}
			if lines := parseLines(t, buf.Bytes()); !reflect.DeepEqual(normalize(lines), normalize(match)) {
				t.Fatalf("exported entries differ from the matching stored ones")
			}
		})
	}
}

// parseLines decodes JSON lines, failing on anything else.
func parseLines(t *testing.T, b []byte) []store.AuditEntry {
	t.Helper()
	var out []store.AuditEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e store.AuditEntry
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %d: %v: %s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, e)
	}
	if !bytes.HasSuffix(b, []byte("\n")) && len(b) > 0 {
		t.Fatal("export does not end with a newline")
	}
	return out
}

// normalize makes entries comparable with DeepEqual: empty and nil byte
// slices are the same, and times compare by instant.
func normalize(es []store.AuditEntry) []store.AuditEntry {
	out := make([]store.AuditEntry, len(es))
	for i, e := range es {
		for _, b := range []*[]byte{&e.Detail, &e.PrevHash, &e.Hash} {
			if len(*b) == 0 {
				*b = nil
			}
		}
		e.Time = e.Time.UTC()
		out[i] = e
	}
	return out
}

func TestExportFake(t *testing.T) {
	st := &memAudit{}
	fill(t, st, 2500) // more than two pages
	testExport(t, st, 2500)
}

func TestExportLineFormat(t *testing.T) {
	st := &memAudit{}
	fill(t, st, 2)
	var buf bytes.Buffer
	if _, err := Export(t.Context(), st, store.AuditFilter{}, &buf); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	for _, want := range []string{`"seq":1,`, `"time":"2026-11-03T10:00:00Z"`, `"detail":{"i":0},"prev_hash":null`, `"hash":"`} {
		if !strings.Contains(first, want) {
			t.Errorf("line %s lacks %s", first, want)
		}
	}
}

// TestExportDetailForms: detail is written as the JSON object it holds,
// byte for byte (HTML characters too), and read back from that form and
// from the base64 string of older exports; a detail that is not compact
// JSON stays base64, so no byte of a sealed entry changes.
func TestExportDetailForms(t *testing.T) {
	for _, tc := range []struct{ detail, want string }{
		{`{"s":"<a>&\u2028é","n":[1,2]}`, `"detail":{"s":"<a>&\u2028é","n":[1,2]}`},
		{`{"a": 1}`, `"detail":"eyJhIjogMX0="`},
		{`not json`, `"detail":"bm90IGpzb24="`},
	} {
		st := &memAudit{}
		e := &store.AuditEntry{Time: time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC), Actor: "a", ActorKind: "key", Action: "x", Outcome: "ok", Detail: []byte(tc.detail)}
		if err := st.AppendAudit(t.Context(), []*store.AuditEntry{e}, Seal); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := Export(t.Context(), st, store.AuditFilter{}, &buf); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("detail %s exported as %s, want %s", tc.detail, buf.String(), tc.want)
		}
		var back store.AuditEntry
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil || string(back.Detail) != tc.detail {
			t.Errorf("detail %s read back as %q, %v", tc.detail, back.Detail, err)
		}
		if rep, err := VerifyLines(&buf, VerifyOptions{}); err != nil || !rep.OK {
			t.Errorf("export of detail %s does not verify: %+v %v", tc.detail, rep, err)
		}
	}
	// An older export's base64 detail reads back the same.
	var old store.AuditEntry
	if err := json.Unmarshal([]byte(`{"seq":1,"time":"2026-11-03T10:00:00Z","actor":"a","actor_kind":"key","action":"x","outcome":"ok","detail":"eyJpIjowfQ==","prev_hash":null,"hash":null}`), &old); err != nil || string(old.Detail) != `{"i":0}` {
		t.Errorf("base64 detail read as %q, %v", old.Detail, err)
	}
}
