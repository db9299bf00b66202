package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestQueueShowsTheTenantsCallsThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	p := b.get("/ui/queue")
	if p.status != 200 || !strings.Contains(p.body, `data-queued="q-acme"`) || !strings.Contains(p.body, "refused &lt;script&gt;") || strings.Contains(p.body, "<script>alert") {
		t.Fatalf("queue page: %d\n%s", p.status, p.body)
	}
	if p := b.do(http.MethodPost, "/ui/queue/retry", url.Values{"id": {"q-acme"}}, nil); p.status != http.StatusForbidden {
		t.Fatalf("retry without a token: %d", p.status)
	}
	if p := b.post("/ui/queue/retry", url.Values{"id": {"q-acme"}}); p.status != http.StatusSeeOther {
		t.Fatalf("retry: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/queue"); !strings.Contains(p.body, "is due again now") {
		t.Fatalf("no message after retrying:\n%s", p.body)
	}
	if p := b.post("/ui/queue/purge", url.Values{"id": {"q-acme"}}); p.status != http.StatusSeeOther {
		t.Fatalf("purge: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/queue/purge", url.Values{"id": {"q-other"}}); p.status != http.StatusNotFound {
		t.Fatalf("purge another's: %d", p.status)
	}
	if p := b.post("/ui/queue/purge", url.Values{"id": {"../devices/dev1"}}); p.status != http.StatusBadRequest {
		t.Fatalf("a path in the id: %d", p.status)
	}
	e.mu.Lock()
	calls := strings.Join(e.queueCalls, ",")
	e.mu.Unlock()
	if want := "POST /api/queue/q-acme/retry,DELETE /api/queue/q-acme,DELETE /api/queue/q-other"; calls != want {
		t.Fatalf("the gateway was asked %q, want %q", calls, want)
	}
	if p := b.get("/ui/queue?state=bogus"); p.status != http.StatusBadRequest || !strings.Contains(p.body, "state must be pending") || strings.Contains(p.body, "<b>") {
		t.Fatalf("the API's refusal: %d\n%s", p.status, p.body)
	}
}

func TestDevicesListAndActions(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.rootK)
	p := b.get("/ui/devices")
	if p.status != 200 || !strings.Contains(p.body, `data-device="press-7"`) || !strings.Contains(p.body, "<td>4</td>") ||
		!strings.Contains(p.body, "PCR 7 changed &lt;script&gt;") || !strings.Contains(p.body, "Re-approve") {
		t.Fatalf("devices page: %d\n%s", p.status, p.body)
	}
	if p := b.do(http.MethodPost, "/ui/devices/revoke", url.Values{"id": {"dev1"}}, nil); p.status != http.StatusForbidden {
		t.Fatalf("remove without a token: %d", p.status)
	}
	if p := b.post("/ui/devices/reapprove", url.Values{"id": {"dev1"}}); p.status != http.StatusSeeOther {
		t.Fatalf("re-approve: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/devices/revoke", url.Values{"id": {"dev1"}}); p.status != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/devices/revoke", url.Values{"id": {"other"}}); p.status != http.StatusNotFound {
		t.Fatalf("remove an unknown device: %d", p.status)
	}
	if p := b.post("/ui/devices/revoke", url.Values{"id": {"../../keys"}}); p.status != http.StatusBadRequest {
		t.Fatalf("a path in the id: %d", p.status)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	want := []string{"POST /api/devices/dev1/reapprove", "DELETE /api/devices/dev1", "DELETE /api/devices/other"}
	if strings.Join(e.deviceCalls, ",") != strings.Join(want, ",") {
		t.Fatalf("the gateway was asked %q, want %q", e.deviceCalls, want)
	}
}
