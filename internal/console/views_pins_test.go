package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

func TestOperatorReviewsAPinnedChangeAndAQuarantine(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	if err := e.st.CreatePin(e.ctx, &store.Pin{Upstream: "ev", Kind: "tool", Name: "echo", Hash: "h1", Definition: []byte(`{"name":"echo","description":"Echoes."}`)}); err != nil {
		t.Fatal(err)
	}
	changed := `{"name":"echo","description":"Echoes. ` + strings.ReplaceAll(xss, `"`, `\"`) + `"}`
	if _, err := e.st.OfferPin(e.ctx, "ev", "tool", "echo", "h2", []byte(changed), now); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.QuarantineItem(e.ctx, &store.GuardVerdict{Upstream: "ev", Kind: "tool", Name: "steal", Hash: "q1", Rules: []string{"exfil"}, RulesVersion: "v1", Text: "send ~/.ssh " + xss, SeenAt: now}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(e.rootK)
	p := b.get("/ui/pins?state=pending")
	if p.status != 200 || !strings.Contains(p.body, `data-pin="ev/tool/echo"`) || !strings.Contains(p.body, `data-verdict="ev/tool/steal"`) {
		t.Fatalf("pins page: %d\n%s", p.status, p.body)
	}
	if p := b.get("/ui/pins?state=nonsense"); p.status != http.StatusBadRequest {
		t.Fatalf("bad state: %d", p.status)
	}
	review := regexp.MustCompile(`href="(/ui/pins/view\?[^"]+)"`).FindStringSubmatch(p.body)
	if review == nil {
		t.Fatalf("no review link:\n%s", p.body)
	}
	v := b.get(strings.ReplaceAll(review[1], "&amp;", "&"))
	if v.status != 200 || !strings.Contains(v.body, `id="diff"`) || strings.Contains(v.body, "<script>alert") || !strings.Contains(v.body, "&lt;script&gt;") {
		t.Fatalf("pin review: %d\n%s", v.status, v.body)
	}
	if !strings.Contains(v.body, `name="hash" value="h2"`) {
		t.Fatalf("the decision does not carry the reviewed hash:\n%s", v.body)
	}
	// A decision on another change than the one reviewed is refused.
	if p := b.post("/ui/pins/approve", url.Values{"upstream": {"ev"}, "kind": {"tool"}, "name": {"echo"}, "hash": {"h-other"}}); p.status != http.StatusConflict {
		t.Fatalf("approving a stale change: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/pins/approve", url.Values{"upstream": {"ev"}, "kind": {"tool"}, "name": {"echo"}, "hash": {"h2"}}); p.status != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", p.status, p.body)
	}
	if pin, _ := e.st.GetPin(e.ctx, "ev", "tool", "echo"); pin.Hash != "h2" || pin.OfferedHash != "" {
		t.Fatalf("after approving: %+v", pin)
	}
	g := b.get("/ui/guard/view?" + itemQuery("ev", "tool", "steal"))
	if g.status != 200 || !strings.Contains(g.body, "send ~/.ssh &lt;script&gt;") || !strings.Contains(g.body, `name="hash" value="q1"`) {
		t.Fatalf("quarantine review: %d\n%s", g.status, g.body)
	}
	if p := b.post("/ui/guard/reject", url.Values{"upstream": {"ev"}, "kind": {"tool"}, "name": {"steal"}, "hash": {"q1"}}); p.status != http.StatusSeeOther {
		t.Fatalf("reject: %d %s", p.status, p.body)
	}
	if gv, _ := e.st.GetGuardVerdict(e.ctx, "ev", "tool", "steal"); gv.State != store.VerdictRejected {
		t.Fatalf("after rejecting: %+v", gv)
	}
	if p := b.get("/ui/pins"); !strings.Contains(p.body, "is kept withheld") {
		t.Fatalf("no message after the decision:\n%s", p.body)
	}
}
