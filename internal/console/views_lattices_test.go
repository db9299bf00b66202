package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestLatticesCreatePathAndDelete(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	if p := b.post("/ui/lattices", url.Values{"name": {"floor"}, "dims": {"20, 15"}, "boundary": {"open"}, "density": {"0.1"}, "seed": {"3"}}); p.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", p.status, p.body)
	}
	list := b.get("/ui/lattices")
	if list.status != 200 || !strings.Contains(list.body, `data-lattice="floor"`) || !strings.Contains(list.body, "20 × 15") {
		t.Fatalf("lattices:\n%s", list.body)
	}
	id := regexp.MustCompile(`/ui/lattices/view\?id=([^"&]+)`).FindStringSubmatch(list.body)
	if id == nil {
		t.Fatalf("no link to the lattice:\n%s", list.body)
	}
	view := b.get("/ui/lattices/view?id=" + id[1])
	if view.status != 200 || !strings.Contains(view.body, `value="0, 0"`) || !strings.Contains(view.body, `value="19, 14"`) {
		t.Fatalf("lattice view:\n%s", view.body)
	}
	res := b.post("/ui/lattices/path", url.Values{"id": {id[1]}, "from": {"0, 0"}, "to": {"5, 0"}})
	if res.status != 200 || !strings.Contains(res.body, `id="memory"`) || !strings.Contains(res.body, "Clean memory") {
		t.Fatalf("path:\n%s", res.body)
	}
	if strings.Contains(res.body, "Reachable in") && !strings.Contains(res.body, `<polyline class="path" points="`) {
		t.Fatalf("a reachable path is not drawn:\n%s", res.body)
	}
	if p := b.post("/ui/lattices/path", url.Values{"id": {id[1]}, "from": {"0"}, "to": {"a, b"}}); p.status != http.StatusBadRequest {
		t.Fatalf("bad coordinates: %d", p.status)
	}
	if p := b.post("/ui/lattices/path", url.Values{"id": {id[1]}, "from": {"0, 0"}, "to": {"99, 99"}}); p.status != http.StatusBadRequest {
		t.Fatalf("a point outside, the API's refusal: %d\n%s", p.status, p.body)
	}
	if p := b.post("/ui/lattices", url.Values{"dims": {"lots"}}); p.status != http.StatusBadRequest {
		t.Fatalf("bad size: %d", p.status)
	}
	// Another tenant does not see it: the API's 404.
	op := e.browser()
	op.signIn(e.rootK)
	if p := op.get("/ui/lattices"); strings.Contains(p.body, `data-lattice="floor"`) {
		t.Fatal("another tenant sees the lattice")
	}
	if p := op.get("/ui/lattices/view?id=" + id[1]); p.status != http.StatusNotFound {
		t.Fatalf("another tenant opens the lattice: %d", p.status)
	}
	if p := b.post("/ui/lattices/delete", url.Values{"id": {id[1]}}); p.status != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/lattices"); strings.Contains(p.body, `data-lattice="floor"`) {
		t.Fatal("the lattice is still listed")
	}
}

func TestThreeDimensionalPathIsDrawn(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	if p := b.post("/ui/lattices", url.Values{"name": {"cube"}, "dims": {"3 3 3"}, "boundary": {"open"}}); p.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", p.status, p.body)
	}
	id := regexp.MustCompile(`/ui/lattices/view\?id=([^"&]+)`).FindStringSubmatch(b.get("/ui/lattices").body)
	res := b.post("/ui/lattices/path", url.Values{"id": {id[1]}, "from": {"0,0,0"}, "to": {"2,2,2"}})
	if !strings.Contains(res.body, "Reachable in 6 steps") || strings.Count(res.body, "<circle") != 2 {
		t.Fatalf("3-D path:\n%s", res.body)
	}
	// The form keeps what was asked, catalytic included. (A catalytic
	// search itself is the lattice package's to test: it borrows a 16 MiB
	// region, slow under the race detector.)
	bad := b.post("/ui/lattices/path", url.Values{"id": {id[1]}, "from": {"0,0,0"}, "to": {"x"}, "catalytic": {"yes"}})
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, `name="catalytic" value="yes" checked`) || !strings.Contains(bad.body, `value="x"`) {
		t.Fatalf("the form after a bad query: %d\n%s", bad.status, bad.body)
	}
}
