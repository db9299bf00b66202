package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// openTestQueue opens a real queue database with a key in a temp dir.
func openTestQueue(t *testing.T) *queue.Queue {
	t.Helper()
	dir := t.TempDir()
	box, err := sealbox.New(t.Context(), sealbox.FileKey(filepath.Join(dir, "queue.key")), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(t.Context(), filepath.Join(dir, "queue.db"), box, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// TestQueueREST: GET /api/queue and /api/queue/{id} answer about the
// caller's tenant only (another tenant's id is 404 like a missing one),
// show the result once done and never the arguments, page, filter, and
// refuse bad ids, bad parameters and callers without read rights. Every
// answer is checked against the OpenAPI document by e.do.
func TestQueueREST(t *testing.T) {
	e := newEnv(t, nil)
	q := openTestQueue(t)
	e.h.queue = q
	cli := CLIContext(e.ctx)
	acme, err := e.ops.CreateTenant(cli, TenantSpec{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.ops.CreateTenant(cli, TenantSpec{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	viewer := e.key("acme", KeySpec{Name: "v", Role: principal.RoleViewer})
	scoped := e.key("acme", KeySpec{Name: "s", Role: principal.RoleAdmin, Scopes: []string{principal.ScopeAdminRead}})
	otherKey := e.key("other", KeySpec{Name: "o", Role: principal.RoleMember})

	enq := func(tenant, target string, n int) string {
		id, err := q.Enqueue(e.ctx, queue.Entry{Tenant: tenant, Target: target, Tool: "echo", Arguments: json.RawMessage(fmt.Sprintf(`{"secret":"arg-%d"}`, n))})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a1 := enq(acme.ID, "ev", 1)
	a2 := enq(acme.ID, "ev", 2)
	a3 := enq(acme.ID, "search", 3)
	o1 := enq(other.ID, "ev", 4)
	// Deliver a1 so it is done with a result.
	en, err := q.Next(e.ctx, "ev")
	if err != nil || en.ID != a1 {
		t.Fatalf("next: %+v, %v", en, err)
	}
	if err := q.Complete(e.ctx, a1, json.RawMessage(`{"content":[{"type":"text","text":"done-`+a1+`"}]}`)); err != nil {
		t.Fatal(err)
	}
	done, err := q.Get(e.ctx, acme.ID, a1)
	if err != nil || done.State != queue.Done {
		t.Fatalf("a1 after delivery: %+v, %v", done, err)
	}

	r := e.do(viewer, "GET", "/api/queue/"+a1, nil)
	want(t, "own done entry", r, http.StatusOK)
	if r.body["state"] != "done" || r.body["uri"] != "mcpedge://queue/"+a1 || r.body["target"] != "ev" || r.body["tool"] != "echo" {
		t.Errorf("own entry: %s", r.raw)
	}
	if !strings.Contains(string(r.raw), "done-"+a1) {
		t.Errorf("result missing: %s", r.raw)
	}
	if strings.Contains(string(r.raw), "arg-1") {
		t.Errorf("arguments shown: %s", r.raw)
	}
	// Another tenant's id, and a missing one: the same 404.
	rOther := e.do(viewer, "GET", "/api/queue/"+o1, nil)
	want(t, "other tenant's entry", rOther, http.StatusNotFound, CodeNotFound)
	rMissing := e.do(viewer, "GET", "/api/queue/q2222222222222222222222222", nil)
	want(t, "missing entry", rMissing, http.StatusNotFound, CodeNotFound)
	if strings.ReplaceAll(string(rOther.raw), o1, "X") != strings.ReplaceAll(string(rMissing.raw), "q2222222222222222222222222", "X") {
		t.Errorf("other tenant's and missing differ: %s vs %s", rOther.raw, rMissing.raw)
	}
	// The other tenant sees its own and not acme's.
	want(t, "other reads own", e.do(otherKey, "GET", "/api/queue/"+o1, nil), http.StatusOK)
	want(t, "other reads acme's", e.do(otherKey, "GET", "/api/queue/"+a2, nil), http.StatusNotFound, CodeNotFound)
	// An operator owner reads only its own tenant's calls here.
	want(t, "operator reads acme's", e.do(e.root, "GET", "/api/queue/"+a2, nil), http.StatusNotFound, CodeNotFound)

	// Bad ids are refused before the queue is asked.
	for _, id := range []string{"a%2Fb", "q%00", strings.Repeat("q", 65), "%C3%A9t%C3%A9", "q..", "q%20x"} {
		want(t, "bad id "+id, e.do(viewer, "GET", "/api/queue/"+id, nil), http.StatusBadRequest, CodeInvalidArgument)
	}
	want(t, "query on get", e.do(viewer, "GET", "/api/queue/"+a1+"?x=1", nil), http.StatusBadRequest, CodeInvalidArgument)

	// Listing: own tenant only, oldest first, no results or arguments.
	r = e.do(viewer, "GET", "/api/queue", nil)
	want(t, "list", r, http.StatusOK)
	ids := listedIDs(r)
	if fmt.Sprint(ids) != fmt.Sprint([]string{a1, a2, a3}) {
		t.Errorf("list = %v, want %v", ids, []string{a1, a2, a3})
	}
	if strings.Contains(string(r.raw), "done-") || strings.Contains(string(r.raw), "arg-") {
		t.Errorf("list shows results or arguments: %s", r.raw)
	}
	r = e.do(viewer, "GET", "/api/queue?state=pending&target=ev", nil)
	want(t, "filtered list", r, http.StatusOK)
	if ids := listedIDs(r); fmt.Sprint(ids) != fmt.Sprint([]string{a2}) {
		t.Errorf("pending ev = %v, want [%s]", ids, a2)
	}
	r = e.do(viewer, "GET", "/api/queue?limit=2", nil)
	want(t, "page 1", r, http.StatusOK)
	if ids := listedIDs(r); len(ids) != 2 || r.body["next_after"] != a2 {
		t.Fatalf("page 1: %s", r.raw)
	}
	r = e.do(viewer, "GET", "/api/queue?limit=2&after="+a2, nil)
	if ids := listedIDs(r); fmt.Sprint(ids) != fmt.Sprint([]string{a3}) {
		t.Errorf("page 2: %s", r.raw)
	}
	r = e.do(otherKey, "GET", "/api/queue", nil)
	if ids := listedIDs(r); fmt.Sprint(ids) != fmt.Sprint([]string{o1}) {
		t.Errorf("other's list: %s", r.raw)
	}
	r = e.do(e.root, "GET", "/api/queue", nil)
	if ids := listedIDs(r); len(ids) != 0 || r.body["next_after"] != "" {
		t.Errorf("operator's own (empty) list: %s", r.raw)
	}
	for _, qs := range []string{"state=waiting", "tenant=" + other.ID, "after=a/b", "limit=-1", "limit=x", "state=done&state=failed", "target=" + strings.Repeat("t", 300)} {
		want(t, "bad list query "+qs, e.do(viewer, "GET", "/api/queue?"+qs, nil), http.StatusBadRequest, CodeInvalidArgument)
	}

	// Rights: a credential limited to admin:read may not read calls;
	// no principal is 401; another method is 405.
	want(t, "admin:read scope", e.do(scoped, "GET", "/api/queue", nil), http.StatusForbidden, CodeForbidden)
	want(t, "admin:read scope get", e.do(scoped, "GET", "/api/queue/"+a1, nil), http.StatusForbidden, CodeForbidden)
	want(t, "no principal", e.do(nil, "GET", "/api/queue", nil), http.StatusUnauthorized, CodeUnauthenticated)
	want(t, "PUT", e.do(viewer, "PUT", "/api/queue/"+a1, nil), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	want(t, "viewer purges", e.do(viewer, "DELETE", "/api/queue/"+a1, nil), http.StatusForbidden, CodeForbidden)

	// Without a queue: 503 saying so.
	e.h.queue = nil
	r = e.do(viewer, "GET", "/api/queue", nil)
	want(t, "no queue", r, http.StatusServiceUnavailable, CodeUnavailable)
	if !strings.Contains(string(r.raw), "offline queue is not open") {
		t.Errorf("no queue: %s", r.raw)
	}
}

// Single-user mode: the anonymous principal (which names the bootstrap
// tenant, as `mcpedge serve` with auth off makes it) reads tenant "", the
// tenant its calls are queued under on /mcp, and not those of named
// tenants that share the file.
func TestQueueRESTSingleUser(t *testing.T) {
	e := newEnv(t, nil)
	q := openTestQueue(t)
	e.h.queue = q
	mine, err := q.Enqueue(e.ctx, queue.Entry{Tenant: "", Target: "ev", Tool: "echo", Arguments: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := q.Enqueue(e.ctx, queue.Entry{Tenant: "t1", Target: "ev", Tool: "echo", Arguments: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	anon := &principal.Principal{Kind: principal.KindAnonymous, ID: "local", TenantID: "t1", TenantName: "default", Role: principal.RoleOwner}
	want(t, "own", e.do(anon, "GET", "/api/queue/"+mine, nil), http.StatusOK)
	want(t, "named tenant's", e.do(anon, "GET", "/api/queue/"+theirs, nil), http.StatusNotFound, CodeNotFound)
	r := e.do(anon, "GET", "/api/queue", nil)
	if ids := listedIDs(r); fmt.Sprint(ids) != fmt.Sprint([]string{mine}) {
		t.Errorf("anonymous list: %s", r.raw)
	}
}

func listedIDs(r response) []string {
	var ids []string
	es, _ := r.body["entries"].([]any)
	for _, x := range es {
		m, _ := x.(map[string]any)
		id, _ := m["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

func FuzzValidQueueID(f *testing.F) {
	for _, s := range []string{"q2al3b4c5d6e7f2g3h4i5j6k7l", "", "a/b", "q\x00", strings.Repeat("q", 64), strings.Repeat("q", 65), "é", "q-_Z9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidQueueID(s) {
			return
		}
		if len(s) == 0 || len(s) > maxQueueIDLen || strings.ContainsAny(s, "/?#%. \x00") {
			t.Fatalf("accepted %q", s)
		}
	})
}

// TestQueueRetryAndPurgeREST: an admin of the tenant retries a failed
// call (back to pending, attempts reset) and purges one; a done call is
// not retried (409); another tenant's id is 404 like a missing one;
// viewers and admin:read credentials are refused; each change is audited.
func TestQueueRetryAndPurgeREST(t *testing.T) {
	e := newEnv(t, nil)
	q := openTestQueue(t)
	e.h.queue = q
	cli := CLIContext(e.ctx)
	acme, err := e.ops.CreateTenant(cli, TenantSpec{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.ops.CreateTenant(cli, TenantSpec{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	adminKey := e.key("acme", KeySpec{Name: "a", Role: principal.RoleAdmin})
	viewer := e.key("acme", KeySpec{Name: "v", Role: principal.RoleViewer})
	readOnly := e.key("acme", KeySpec{Name: "r", Role: principal.RoleAdmin, Scopes: []string{principal.ScopeAdminRead, principal.ScopeList}})
	enq := func(tenant string) string {
		id, err := q.Enqueue(e.ctx, queue.Entry{Tenant: tenant, Target: "ev", Tool: "echo", Arguments: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	failed, doneID, purge, theirs := enq(acme.ID), enq(acme.ID), enq(acme.ID), enq(other.ID)
	en, err := q.Next(e.ctx, "ev")
	if err != nil || en.ID != failed {
		t.Fatalf("next: %+v %v", en, err)
	}
	if err := q.Fail(e.ctx, failed, queue.Permanent(fmt.Errorf("upstream gone")), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if en, err = q.Next(e.ctx, "ev"); err != nil || en.ID != doneID {
		t.Fatalf("next: %+v %v", en, err)
	}
	if err := q.Complete(e.ctx, doneID, json.RawMessage(`{"content":[]}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(e.ctx, acme.ID, failed); got.State != queue.Failed {
		t.Fatalf("setup: %+v", got)
	}

	want(t, "viewer retries", e.do(viewer, "POST", "/api/queue/"+failed+"/retry", nil), http.StatusForbidden, CodeForbidden)
	want(t, "admin:read retries", e.do(readOnly, "POST", "/api/queue/"+failed+"/retry", nil), http.StatusForbidden, CodeForbidden)
	r := e.do(adminKey, "POST", "/api/queue/"+failed+"/retry", nil)
	want(t, "retry", r, http.StatusOK)
	if r.body["state"] != "pending" || r.body["attempts"] != float64(0) {
		t.Errorf("after retry: %s", r.raw)
	}
	want(t, "retry a done call", e.do(adminKey, "POST", "/api/queue/"+doneID+"/retry", nil), http.StatusConflict, CodeConflict)
	want(t, "retry another tenant's", e.do(adminKey, "POST", "/api/queue/"+theirs+"/retry", nil), http.StatusNotFound, CodeNotFound)
	want(t, "purge another tenant's", e.do(adminKey, "DELETE", "/api/queue/"+theirs, nil), http.StatusNotFound, CodeNotFound)
	want(t, "bad id", e.do(adminKey, "DELETE", "/api/queue/a%2Fb", nil), http.StatusBadRequest, CodeInvalidArgument)
	want(t, "purge", e.do(adminKey, "DELETE", "/api/queue/"+purge, nil), http.StatusNoContent)
	if _, err := q.Get(e.ctx, acme.ID, purge); err == nil {
		t.Fatal("the purged call is still there")
	}
	if _, err := q.Get(e.ctx, other.ID, theirs); err != nil {
		t.Fatalf("the other tenant's call: %v", err)
	}
	es, err := e.ops.ListAudit(cli, AuditQuery{Action: "queue."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range es {
		got = append(got, a.Action+":"+a.Outcome+":"+a.Target)
	}
	wantAudit := []string{"queue.retry:ok:queue:" + failed, "queue.retry:error:queue:" + doneID, "queue.purge:ok:queue:" + purge}
	if fmt.Sprint(got) != fmt.Sprint(wantAudit) {
		t.Errorf("audit = %v, want %v", got, wantAudit)
	}
}
