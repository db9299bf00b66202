package console

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/store"
)

// maxExport bounds how many entries one export holds; past it the export
// says where it stopped (JSON: "truncated" and "next_after"; CSV: a last
// row whose action is "export.truncated"), to be continued with after=.
const maxExport = 50_000

// exportPage is how many entries an export reads from the store at once.
const exportPage = admin.MaxAuditLimit

// auditExport downloads the filtered audit log as CSV or JSON, read with
// the signed-in person's rights (a tenant admin gets their tenant only).
// It is a GET that changes nothing; the SameSite=Strict session cookie
// keeps other sites from starting it.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	f := filterFrom(q, c.o.Now())
	format := q.Get("format")
	if format != "csv" && format != "json" {
		c.render(w, r, http.StatusBadRequest, "audit", v, pageData{Title: "Audit log", Filter: f, Error: "Export as csv or json."})
		return
	}
	aq, bad := f.query(exportPage)
	if bad != "" {
		c.render(w, r, http.StatusBadRequest, "audit", v, pageData{Title: "Audit log", Filter: f, Error: bad})
		return
	}
	// The first page is read before anything is sent, so that a refusal
	// (another tenant, too weak a role) is a page, not a broken download.
	es, err := c.o.Ops.ListAudit(v.ctx, aq)
	if err != nil {
		c.failed(w, r, v, "audit", pageData{Title: "Audit log", Filter: f}, err)
		return
	}
	name := "mcpedge-audit-" + c.o.Now().UTC().Format("20060102T150405Z") + "." + format
	h := w.Header()
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	var out exportWriter
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		out = newCSVExport(w)
	} else {
		h.Set("Content-Type", "application/json")
		out = newJSONExport(w)
	}
	n := 0
	var last int64
	for {
		for i := range es {
			last = es[i].Seq
			if f.Outcome != "" && es[i].Outcome != f.Outcome {
				continue
			}
			if n == maxExport {
				out.end(true, last-1)
				return
			}
			if err := out.entry(&es[i]); err != nil {
				return // the browser went away
			}
			n++
		}
		if len(es) < exportPage {
			break
		}
		aq.After = last
		es, err = c.o.Ops.ListAudit(v.ctx, aq)
		if err != nil {
			// Headers are sent: end the file where it is, saying so.
			c.o.Log.Warn("console: an audit export stopped", "err", err)
			out.end(true, last)
			return
		}
	}
	out.end(false, 0)
}

type exportWriter interface {
	entry(e *store.AuditEntry) error
	// end closes the file; truncated says entries after seq next were left out.
	end(truncated bool, next int64)
}

// exportEntry is an entry as exported: the store's fields, the detail as
// JSON and the hashes as base64, so the file can be checked offline.
type exportEntry struct {
	store.AuditEntry
	Detail json.RawMessage `json:"detail,omitempty"`
}

type jsonExport struct {
	w     http.ResponseWriter
	first bool
}

func newJSONExport(w http.ResponseWriter) *jsonExport {
	_, _ = w.Write([]byte("{\"entries\":[\n"))
	return &jsonExport{w: w, first: true}
}

func (j *jsonExport) entry(e *store.AuditEntry) error {
	x := exportEntry{AuditEntry: *e}
	if json.Valid(e.Detail) {
		x.Detail = e.Detail
	} else if len(e.Detail) > 0 {
		b, _ := json.Marshal(string(e.Detail))
		x.Detail = b
	}
	var b bytes.Buffer
	if !j.first {
		b.WriteString(",\n")
	}
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // verbatim: the file is not HTML
	if err := enc.Encode(x); err != nil {
		return err
	}
	j.first = false
	_, err := j.w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return err
}

func (j *jsonExport) end(truncated bool, next int64) {
	tail := "\n],\"truncated\":false}\n"
	if truncated {
		tail = "\n],\"truncated\":true,\"next_after\":" + strconv.FormatInt(next, 10) + "}\n"
	}
	_, _ = j.w.Write([]byte(tail))
}

// csvColumns are the CSV export's columns.
func csvColumns() []string {
	return []string{"seq", "time", "tenant_id", "actor_kind", "actor", "action", "target", "outcome", "latency_us", "client_ip", "detail", "prev_hash", "hash"}
}

type csvExport struct {
	cw *csv.Writer
}

func newCSVExport(w http.ResponseWriter) *csvExport {
	cw := csv.NewWriter(w)
	_ = cw.Write(csvColumns())
	return &csvExport{cw: cw}
}

func (c *csvExport) entry(e *store.AuditEntry) error {
	rec := []string{
		strconv.FormatInt(e.Seq, 10), e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), e.TenantID,
		e.ActorKind, e.Actor, e.Action, e.Target, e.Outcome, strconv.FormatInt(e.LatencyUS, 10), e.ClientIP,
		string(e.Detail), base64.StdEncoding.EncodeToString(e.PrevHash), base64.StdEncoding.EncodeToString(e.Hash),
	}
	for i := range rec {
		rec[i] = inertCell(rec[i])
	}
	if err := c.cw.Write(rec); err != nil {
		return err
	}
	c.cw.Flush()
	return c.cw.Error()
}

func (c *csvExport) end(truncated bool, next int64) {
	if truncated {
		n := strconv.FormatInt(next, 10)
		_ = c.cw.Write([]string{"", "", "", "", "", "export.truncated", "", "", "", "", "more entries after seq " + n + ": export again with after=" + n, "", ""})
	}
	c.cw.Flush()
}

// inertCell keeps a spreadsheet from reading a cell that comes from
// outside (an actor, a target, a detail) as a formula: one that starts
// with = + - @ or a tab or carriage return gets a leading apostrophe.
// The JSON export is verbatim.
func inertCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
