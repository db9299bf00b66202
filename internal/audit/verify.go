package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/store"
)

// DefaultPageSize is how many entries Verify and Export read per query.
const DefaultPageSize = 1000

// Problem kinds of a Report.
const (
	ProblemGap      = "gap"       // a Seq is missing: entries were removed
	ProblemOrder    = "order"     // Seq did not increase: entries were reordered or duplicated
	ProblemLink     = "link"      // PrevHash is not the previous entry's Hash: removed, inserted, reordered or rewritten
	ProblemHash     = "hash"      // Hash is not Seal of the entry: the entry was edited
	ProblemTruncate = "truncated" // the chain ends before the store's head record or the expected head: entries were cut off its end
	ProblemHead     = "head"      // the entry at that head's Seq has another Hash: the chain was rewritten
)

// A Head identifies the end of a chain at some moment: the last entry's Seq
// and Hash. Remembering a head outside the database lets a later Verify
// notice that entries were cut off the end or rewritten.
//
// A Head is written for people as "<seq>:<hash in lower-case hex>" (String,
// ParseHead), and in JSON as {"seq":<seq>,"hash":"<hex>"}: hex, unlike the
// base64 of exported entries, because heads are copied by hand and
// compared with sha256sum-style output.
type Head struct {
	Seq  int64
	Hash []byte
}

// String returns "<seq>:<hex hash>", the form ParseHead reads.
func (h Head) String() string { return fmt.Sprintf("%d:%s", h.Seq, hex.EncodeToString(h.Hash)) }

// ParseHead reads a head written by Head.String.
func ParseHead(s string) (Head, error) {
	seqText, hashText, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok || err != nil || seq < 0 {
		return Head{}, fmt.Errorf("audit: head %q: want <seq>:<hex hash>", s)
	}
	hash, err := hex.DecodeString(hashText)
	if err != nil || (seq > 0 && len(hash) != 32) {
		return Head{}, fmt.Errorf("audit: head %q: the hash must be 64 hex digits", s)
	}
	return Head{Seq: seq, Hash: hash}, nil
}

type headJSON struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// MarshalJSON writes {"seq":…,"hash":"<hex>"}.
func (h Head) MarshalJSON() ([]byte, error) {
	return json.Marshal(headJSON{h.Seq, hex.EncodeToString(h.Hash)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *Head) UnmarshalJSON(b []byte) error {
	var j headJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	hash, err := hex.DecodeString(j.Hash)
	if err != nil {
		return fmt.Errorf("audit: head hash: %w", err)
	}
	*h = Head{Seq: j.Seq, Hash: hash}
	return nil
}

// VerifyOptions adjust Verify.
type VerifyOptions struct {
	// ExpectHead, if not nil, is a head remembered earlier: the chain must
	// reach ExpectHead.Seq and its entry there must have ExpectHead.Hash.
	// Entries appended after it are fine.
	ExpectHead *Head
	// PageSize is how many entries are read per query. If zero,
	// DefaultPageSize.
	PageSize int
}

// A Report is the outcome of a verification.
type Report struct {
	// Entries is the number of entries found intact, in chain order,
	// before the first problem (all of them when OK).
	Entries int64 `json:"entries"`
	OK      bool  `json:"ok"`
	// FirstBad is the Seq of the first entry that is not intact: the
	// first missing Seq for a gap, the entry itself otherwise; for
	// ProblemTruncate it is the Seq of the head the chain did not reach.
	// 0 when OK.
	FirstBad int64 `json:"first_bad,omitempty"`
	// Kind is one of the Problem* constants; Problem explains it.
	Kind    string `json:"kind,omitempty"`
	Problem string `json:"problem,omitempty"`
	// Head is the last intact entry: the chain's head when OK, to be
	// remembered for a later VerifyOptions.ExpectHead.
	Head Head `json:"head"`
}

// Verify walks the whole audit chain from Seq 1, a page at a time, and
// reports the first problem it finds (see [VerifyWith]).
func Verify(ctx context.Context, st store.Audit) (Report, error) {
	return VerifyWith(ctx, st, VerifyOptions{})
}

// VerifyWith walks the whole audit chain from Seq 1, a page at a time, and
// reports the first problem it finds, in this order for each entry:
//
//   - ProblemOrder: its Seq is not greater than the previous one's;
//   - ProblemGap: its Seq is not the previous one's plus one (the first
//     entry's must be 1), so entries were removed;
//   - ProblemLink: its PrevHash is not the previous entry's Hash (empty for
//     Seq 1), so entries were removed, inserted or reordered, or the
//     previous entry was edited and its Hash recomputed;
//   - ProblemHash: its Hash is not what [Seal] computes from its fields, so
//     it was edited; or it is marked erased in a way erasure does not
//     leave (see checker.checkContents and docs/design/erasure.md).
//
// The chain must also reach the head the store records separately
// ([store.Audit.AuditHead], read before the walk) and opts.ExpectHead, if
// given, with the same hash there (ProblemTruncate, ProblemHead).
//
// What a chain alone can not show: removing entries from the end leaves a
// valid shorter chain, and so does deleting every entry. The store's head
// record catches that only if whoever removed them did not also change
// the record; and since the hash has no key, someone who can write the
// database can also rewrite entries and recompute every later hash and the
// head record. Those are caught only against a head remembered outside the
// database (opts.ExpectHead).
//
// The error is for failures to read the store; a damaged chain is a Report
// with OK false. Entries appended while Verify runs are verified too if
// they arrive before it reads the last page.
func VerifyWith(ctx context.Context, st store.Audit, opts VerifyOptions) (Report, error) {
	page := orDefault(opts.PageSize, DefaultPageSize)
	c := newChecker(opts)
	// The store keeps its own record of the head (read before the walk,
	// so entries appended meanwhile only extend the chain past it).
	seq, hash, err := st.AuditHead(ctx)
	if err != nil {
		return c.report, fmt.Errorf("audit: verify: %w", err)
	}
	c.heads = append(c.heads, expectedHead{Head: Head{Seq: seq, Hash: hash}, source: "the store's head record"})
	after := int64(0)
	for {
		entries, err := st.ListAudit(ctx, store.AuditFilter{AfterSeq: after, Limit: page})
		if err != nil {
			return c.report, fmt.Errorf("audit: verify: reading entries after %d: %w", after, err)
		}
		if len(entries) == 0 {
			break
		}
		for i := range entries {
			if !c.check(&entries[i]) {
				return c.report, nil
			}
		}
		// Resume after the highest Seq seen, whatever the order was.
		after = c.prev.Seq
	}
	return c.finish(), nil
}

// VerifyLines verifies a chain read from r as written by [Export] with an
// empty filter: one JSON entry per line, in Seq order, from Seq 1. An
// auditor can verify an archived export this way without the database.
// There is no store head record here: only opts.ExpectHead shows that lines
// were cut off the end.
// The error is for unreadable input; a damaged chain is a Report with OK
// false.
func VerifyLines(r io.Reader, opts VerifyOptions) (Report, error) {
	c := newChecker(opts)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var e store.AuditEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return c.report, fmt.Errorf("audit: verify: line %d: %w", line, err)
		}
		if !c.check(&e) {
			return c.report, nil
		}
	}
	if err := sc.Err(); err != nil {
		return c.report, fmt.Errorf("audit: verify: line %d: %w", line+1, err)
	}
	return c.finish(), nil
}

// checker verifies a chain one entry at a time.
type checker struct {
	heads  []expectedHead
	prev   Head // the last intact entry
	report Report
	// erasedV1 holds, by tenant, the first erased v1 entry whose erasure
	// the chain has not recorded yet (see checkContents).
	erasedV1 map[string]erasedEntry
}

// erasedEntry is an erased v1 entry and the intact chain before it.
type erasedEntry struct {
	seq    int64
	before Head
}

// ActionTenantErase is the action of the entry that records a tenant's
// erasure (store.TenantData.EraseTenant appends it in the erasing
// transaction).
const ActionTenantErase = "tenant.erase"

// checkContents checks that e's hash covers its contents; false means it
// recorded a problem.
//
//   - An erasable (v2) entry: its personal fields must match its digest
//     (unless erased, when they must be empty and the digest stands for
//     them), and the hash must cover the digest.
//   - A v1 entry not erased: the hash must cover its fields.
//   - A v1 entry erased (written before entries were erasable, then its
//     tenant was erased): its hash covered the fields now gone, so it
//     can not be recomputed; the link from the next entry still pins
//     the hash. Such an entry is accepted only if the chain records the
//     erasure of its tenant (an ActionTenantErase entry of the tenant)
//     after it; see finish.
func (c *checker) checkContents(e *store.AuditEntry) bool {
	if e.Erased && (e.Actor != "" || e.Target != "" || e.ClientIP != "" || len(e.Detail) > 0 || len(e.PIISalt) > 0) {
		return c.fail(e.Seq, ProblemHash, fmt.Sprintf("entry %d is marked erased but still has personal fields: the entry was edited", e.Seq))
	}
	switch {
	case len(e.PIISalt) > 0:
		if len(e.PIIDigest) == 0 {
			return c.fail(e.Seq, ProblemHash, fmt.Sprintf("entry %d has a salt but no digest of its personal fields: the entry was edited", e.Seq))
		}
		if d := PIIDigest(e); !bytes.Equal(d, e.PIIDigest) {
			return c.fail(e.Seq, ProblemHash, fmt.Sprintf("entry %d has personal fields that hash to %s but its digest is %s: the entry was edited", e.Seq, short(d), short(e.PIIDigest)))
		}
	case len(e.PIIDigest) > 0 && !e.Erased:
		return c.fail(e.Seq, ProblemHash, fmt.Sprintf("entry %d has a digest of its personal fields but neither their salt nor the erased mark: the entry was edited", e.Seq))
	case len(e.PIIDigest) == 0 && e.Erased:
		// v1, erased: see above.
		if c.erasedV1 == nil {
			c.erasedV1 = map[string]erasedEntry{}
		}
		if _, seen := c.erasedV1[e.TenantID]; !seen {
			c.erasedV1[e.TenantID] = erasedEntry{seq: e.Seq, before: c.prev}
		}
		return true
	}
	if want := sealed(e); !bytes.Equal(e.Hash, want) {
		return c.fail(e.Seq, ProblemHash, fmt.Sprintf("entry %d has hash %s but its contents hash to %s: the entry was edited", e.Seq, short(e.Hash), short(want)))
	}
	return true
}

// expectedHead is a head the chain must reach, and where it comes from.
type expectedHead struct {
	Head
	source string
	seen   bool // the chain reached it with the same hash
}

func newChecker(opts VerifyOptions) *checker {
	c := &checker{}
	if opts.ExpectHead != nil {
		c.heads = append(c.heads, expectedHead{Head: *opts.ExpectHead, source: "the expected head"})
	}
	return c
}

// check verifies e against the chain so far; false means it recorded a
// problem in c.report and the walk stops.
func (c *checker) check(e *store.AuditEntry) bool {
	switch {
	case e.Seq <= c.prev.Seq:
		return c.fail(e.Seq, ProblemOrder, fmt.Sprintf("entry %d comes after entry %d: entries were reordered or duplicated", e.Seq, c.prev.Seq))
	case e.Seq != c.prev.Seq+1:
		missing := fmt.Sprintf("entries %d to %d are", c.prev.Seq+1, e.Seq-1)
		if e.Seq-1 == c.prev.Seq+1 {
			missing = fmt.Sprintf("entry %d is", c.prev.Seq+1)
		}
		return c.fail(c.prev.Seq+1, ProblemGap, missing+" missing: entries were removed")
	case !bytes.Equal(e.PrevHash, c.prev.Hash):
		if c.prev.Seq == 0 {
			return c.fail(e.Seq, ProblemLink, fmt.Sprintf("entry 1 has prev_hash %s, want none: entries before it were removed or it was altered", short(e.PrevHash)))
		}
		return c.fail(e.Seq, ProblemLink, fmt.Sprintf("entry %d has prev_hash %s but entry %d has hash %s: entries were removed, inserted or reordered, or entry %d was rewritten",
			e.Seq, short(e.PrevHash), c.prev.Seq, short(c.prev.Hash), c.prev.Seq))
	}
	if !c.checkContents(e) {
		return false
	}
	if e.Action == ActionTenantErase && e.Outcome == "ok" {
		delete(c.erasedV1, e.TenantID)
	}
	for i := range c.heads {
		h := &c.heads[i]
		if e.Seq != h.Seq {
			continue
		}
		if !bytes.Equal(e.Hash, h.Hash) {
			return c.fail(e.Seq, ProblemHead, fmt.Sprintf("entry %d has hash %s but %s has %s: the chain (or that record) was rewritten", e.Seq, short(e.Hash), h.source, short(h.Hash)))
		}
		h.seen = true
	}
	c.prev = Head{Seq: e.Seq, Hash: e.Hash}
	c.report.Entries++
	c.report.Head = c.prev
	return true
}

func (c *checker) fail(seq int64, kind, problem string) bool {
	c.report.FirstBad, c.report.Kind, c.report.Problem = seq, kind, problem
	return false
}

// finish checks that every erased v1 entry's erasure is on record and
// that the chain reached every expected head.
func (c *checker) finish() Report {
	var first erasedEntry
	tenant := ""
	for t, e := range c.erasedV1 {
		if first.seq == 0 || e.seq < first.seq {
			first, tenant = e, t
		}
	}
	if first.seq > 0 {
		c.report.Entries, c.report.Head = first.before.Seq, first.before
		c.fail(first.seq, ProblemHash, fmt.Sprintf("entry %d is marked erased, but its hash (written before entries were erasable) can not be checked and no erasure of tenant %q is recorded after it: the entry was edited", first.seq, tenant))
		return c.report
	}
	for _, h := range c.heads {
		if h.Seq > 0 && !h.seen {
			c.fail(h.Seq, ProblemTruncate, fmt.Sprintf("the chain ends at entry %d but %s is entry %d: entries were removed from the end", c.prev.Seq, h.source, h.Seq))
			return c.report
		}
	}
	c.report.OK = true
	return c.report
}

// short abbreviates a hash for messages.
func short(h []byte) string {
	if len(h) == 0 {
		return "(none)"
	}
	s := hex.EncodeToString(h)
	if len(s) > 16 {
		s = s[:16] + "…"
	}
	return s
}
