package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// fuzzChain returns an export of a sealed n-entry chain (as Export writes
// it) and its head.
func fuzzChain(f *testing.F, n int) ([]byte, Head) {
	f.Helper()
	st := &memAudit{}
	t0 := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)
	var batch []*store.AuditEntry
	for i := range n {
		e := entry(i)
		e.Time = t0.Add(time.Duration(i) * time.Millisecond)
		switch i % 3 {
		case 0:
			e.Detail = []byte(fmt.Sprintf(`{"i":%d,"s":"é\u2028<>&"}`, i))
		case 1:
			e.TenantID, e.Action, e.Outcome, e.ClientIP, e.LatencyUS = "", "auth.reject", "denied", "2001:db8::1", 1234
		}
		batch = append(batch, e)
	}
	if n > 0 {
		if err := st.AppendAudit(f.Context(), batch, Seal); err != nil {
			f.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := Export(f.Context(), st, store.AuditFilter{}, &buf); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes(), st.head
}

// FuzzVerifyLines verifies arbitrary bytes as an exported chain, with an
// arbitrary expected head. It must not panic; a damaged chain is a
// Report with a Kind and a Problem; and when it says OK, an independent
// walk of the same lines agrees (Seq 1, 2, …, each linked to the one
// before and re-sealing to its hash, the expected head reached), and the
// entries encoded again verify to the same head.
func FuzzVerifyLines(f *testing.F) {
	chain, head := fuzzChain(f, 5)
	one, oneHead := fuzzChain(f, 1)
	lines := strings.SplitAfter(string(chain), "\n")
	mid := Head{Seq: 3, Hash: nil}
	{
		var e store.AuditEntry
		if err := json.Unmarshal([]byte(lines[2]), &e); err != nil {
			f.Fatal(err)
		}
		mid.Hash = e.Hash
	}
	for _, s := range []struct{ in, head string }{
		{string(chain), ""},
		{string(chain), head.String()},
		{string(chain), mid.String()},
		{string(chain), "6:" + strings.Repeat("00", 32)},
		{string(chain), "0:"},
		{string(one), oneHead.String()},
		{string(one), head.String()},
		{"", ""},
		{"", head.String()},
		{"\n\n  \r\n\t\n", ""},
		{strings.ReplaceAll(string(chain), "\n", "\r\n"), ""},
		{strings.Join(lines[1:], ""), ""},                       // first entry removed
		{lines[0] + strings.Join(lines[2:], ""), ""},            // gap
		{lines[1] + lines[0] + strings.Join(lines[2:], ""), ""}, // reordered
		{lines[0] + lines[0] + strings.Join(lines[1:], ""), ""}, // duplicated
		{strings.Replace(string(chain), `"outcome":"ok"`, `"outcome":"denied"`, 1), ""}, // edited
		{strings.Replace(string(chain), `"seq":2,`, `"seq":2,"SEQ":7,`, 1), ""},
		{strings.Replace(string(chain), `"prev_hash":null`, `"prev_hash":""`, 1), ""},
		{strings.Replace(string(chain), `"seq":1,`, `"seq":-1,`, 1), ""},
		{strings.Replace(string(chain), `"seq":1,`, `"seq":9223372036854775807,`, 1), ""},
		{strings.Replace(string(chain), `"seq":1,`, `"seq":1e400,`, 1), ""},
		{strings.Replace(string(chain), `.123456789Z`, `.123456Z`, 1), ""},
		{strings.Replace(string(chain), `Z"`, `+14:00"`, 1), ""},
		{lines[0][:len(lines[0])/2], ""},
		{"null\n", ""},
		{"[]\n", ""},
		{"{}\n", ""},
		{`{"seq":1,"hash":"!!"}` + "\n", ""},
		{`{"seq":1,"time":"10000-01-01T00:00:00Z"}` + "\n", ""},
		{"\xff\xfe\x00\n", ""},
		{strings.Repeat("x", 70000), ""},
	} {
		f.Add([]byte(s.in), s.head)
	}
	// Erasable entries, erased ones, and old (v1) entries erased with and
	// without the erasure's record.
	for _, v2 := range []bool{true, false} {
		c := sealChain(mk("a", "u1", "tool.call", v2), mk("b", "u2", "tool.call", v2), mk("a", "u1", "key.create", v2),
			store.AuditEntry{TenantID: "a", Actor: "cli", ActorKind: "cli", Action: ActionTenantErase, Outcome: "ok", PIISalt: bytes.Repeat([]byte{1}, PIISaltSize)})
		erase(&c[0])
		erase(&c[2])
		var buf bytes.Buffer
		for i := range c {
			b, _ := c[i].MarshalJSON()
			buf.Write(append(b, '\n'))
		}
		f.Add(buf.Bytes(), "")
		f.Add(bytes.Join(bytes.SplitAfter(buf.Bytes(), []byte("\n"))[:3], nil), "")
	}
	if rep, err := VerifyLines(bytes.NewReader(chain), VerifyOptions{ExpectHead: &head}); err != nil || !rep.OK || rep.Entries != 5 {
		f.Fatalf("the sealed chain does not verify: %+v, %v", rep, err)
	}
	kinds := map[string]bool{ProblemGap: true, ProblemOrder: true, ProblemLink: true, ProblemHash: true, ProblemTruncate: true, ProblemHead: true}

	f.Fuzz(func(t *testing.T, in []byte, headText string) {
		var opts VerifyOptions
		if h, err := ParseHead(headText); err == nil {
			opts.ExpectHead = &h
		}
		rep, err := VerifyLines(bytes.NewReader(in), opts)
		if err != nil {
			if err.Error() == "" || rep.OK {
				t.Fatalf("VerifyLines: report %+v with error %q", rep, err)
			}
			return
		}
		if !rep.OK {
			if !kinds[rep.Kind] || rep.Problem == "" {
				t.Fatalf("VerifyLines: damaged chain without a known kind and a problem: %+v", rep)
			}
			if rep.Head.Seq != rep.Entries {
				t.Fatalf("VerifyLines: %d intact entries but head %d", rep.Entries, rep.Head.Seq)
			}
			return
		}
		if rep.Kind != "" || rep.Problem != "" || rep.FirstBad != 0 {
			t.Fatalf("VerifyLines: OK report with a problem: %+v", rep)
		}

		// Walk the chain again, independently.
		var entries []store.AuditEntry
		sc := bufio.NewScanner(bytes.NewReader(in))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			var e store.AuditEntry
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("VerifyLines accepted a line json.Unmarshal refuses: %v", err)
			}
			entries = append(entries, e)
		}
		var prev []byte
		reached := opts.ExpectHead == nil || opts.ExpectHead.Seq == 0
		for i := range entries {
			e := &entries[i]
			// An old entry erased with its tenant has only its link;
			// its tenant's erasure must be recorded after it.
			oldErased := e.Erased && len(e.PIIDigest) == 0
			if e.Seq != int64(i+1) || !bytes.Equal(e.PrevHash, prev) || (!oldErased && !bytes.Equal(sealed(e), e.Hash)) {
				t.Fatalf("VerifyLines said OK, but entry %d (seq %d) is not intact", i+1, e.Seq)
			}
			if len(e.PIISalt) > 0 && !bytes.Equal(PIIDigest(e), e.PIIDigest) {
				t.Fatalf("VerifyLines said OK, but entry %d's personal fields do not match their digest", e.Seq)
			}
			if e.Erased && (e.Actor != "" || e.Target != "" || e.ClientIP != "" || len(e.Detail) > 0 || len(e.PIISalt) > 0) {
				t.Fatalf("VerifyLines said OK, but erased entry %d has personal fields", e.Seq)
			}
			if oldErased && !slices.ContainsFunc(entries[i+1:], func(x store.AuditEntry) bool {
				return x.Action == ActionTenantErase && x.Outcome == "ok" && x.TenantID == e.TenantID
			}) {
				t.Fatalf("VerifyLines said OK, but erased entry %d has no erasure recorded after it", e.Seq)
			}
			if opts.ExpectHead != nil && e.Seq == opts.ExpectHead.Seq {
				if !bytes.Equal(e.Hash, opts.ExpectHead.Hash) {
					t.Fatalf("VerifyLines said OK, but entry %d differs from the expected head", e.Seq)
				}
				reached = true
			}
			prev = e.Hash
		}
		if !reached {
			t.Fatalf("VerifyLines said OK, but the chain of %d entries does not reach the expected head %v", len(entries), opts.ExpectHead)
		}
		if rep.Entries != int64(len(entries)) || rep.Head.Seq != int64(len(entries)) || !bytes.Equal(rep.Head.Hash, prev) {
			t.Fatalf("VerifyLines report %+v for %d entries", rep, len(entries))
		}

		// What was accepted survives being written out again.
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false)
		for i := range entries {
			if err := enc.Encode(&entries[i]); err != nil {
				t.Fatalf("encoding accepted entry %d: %v", i+1, err)
			}
		}
		again, err := VerifyLines(&out, opts)
		if err != nil || !again.OK || again.Entries != rep.Entries || !bytes.Equal(again.Head.Hash, rep.Head.Hash) {
			t.Fatalf("re-encoded chain: %+v, %v; want %+v", again, err, rep)
		}
	})
}

// FuzzParseHead reads arbitrary heads: an accepted one has Seq ≥ 0 and,
// unless Seq is 0, a 32-byte hash, and it round-trips through String,
// MarshalJSON and UnmarshalJSON.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"0:", "1:" + strings.Repeat("ab", 32), " 42:" + strings.Repeat("AB", 32) + "\n", "1:" + strings.Repeat("ab", 31),
		"-1:", "+1:" + strings.Repeat("00", 32), "9223372036854775807:" + strings.Repeat("ff", 32), "9223372036854775808:",
		":", "", "1", "0:00", "1:" + strings.Repeat("zz", 32), "1:" + strings.Repeat("ab", 32) + ":", "0x1:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHead(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if h.Seq < 0 || (h.Seq > 0 && len(h.Hash) != 32) {
			t.Fatalf("ParseHead(%q) = %+v", s, h)
		}
		back, err := ParseHead(h.String())
		if err != nil || back.Seq != h.Seq || !bytes.Equal(back.Hash, h.Hash) {
			t.Fatalf("ParseHead(%q).String() = %q reads back as %+v, %v", s, h.String(), back, err)
		}
		j, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON Head
		if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON.Seq != h.Seq || !bytes.Equal(fromJSON.Hash, h.Hash) {
			t.Fatalf("Head %+v: JSON %s reads back as %+v, %v", h, j, fromJSON, err)
		}
	})
}
