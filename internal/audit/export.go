package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Export writes the entries matching f to w as JSON lines, in Seq order,
// and returns how many it wrote. It reads the store a page at a time, so
// the log is never held in memory. f.AfterSeq is where it starts; f.Limit,
// if not zero, caps the total number exported (not a page size).
//
// Each line is one [store.AuditEntry] as encoding/json writes it, and
// json.Unmarshal of a line into a store.AuditEntry gives back the entry
// exactly:
//
//	{"seq":1,"time":"2026-11-03T10:15:00.123456Z","tenant_id":"…","actor":"…",
//	 "actor_kind":"key","action":"tool.call","target":"…","outcome":"ok",
//	 "latency_us":1234,"client_ip":"…","detail":{"args_sha256":"…"},"prev_hash":null,"hash":"q83v…"}
//
// time is RFC 3339 in UTC; detail is the entry's JSON object exactly as
// sealed (store.AuditEntry.MarshalJSON; older exports have it as base64,
// which is still read); prev_hash and hash are standard base64 with
// padding (RFC 4648 section 4); fields marked omitempty in store.AuditEntry are
// left out when empty, and prev_hash is null for entry 1. An export with an
// empty filter is a whole chain that [VerifyLines] checks; a filtered
// export is not a chain (entries between are missing) but each entry's
// hash can still be checked with [Seal].
func Export(ctx context.Context, st store.Audit, f store.AuditFilter, w io.Writer) (int, error) {
	total := f.Limit
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	for total <= 0 || n < total {
		page := f
		page.Limit = DefaultPageSize
		if total > 0 {
			page.Limit = min(page.Limit, total-n)
		}
		entries, err := st.ListAudit(ctx, page)
		if err != nil {
			bw.Flush()
			return n, fmt.Errorf("audit: export: reading entries after %d: %w", f.AfterSeq, err)
		}
		if len(entries) == 0 {
			break
		}
		for i := range entries {
			if err := enc.Encode(&entries[i]); err != nil {
				return n, fmt.Errorf("audit: export: %w", err)
			}
			n++
			f.AfterSeq = max(f.AfterSeq, entries[i].Seq)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("audit: export: %w", err)
	}
	return n, nil
}
