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
