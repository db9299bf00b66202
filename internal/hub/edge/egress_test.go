package edge

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpedge/mcpedge/internal/egress"
)

// TestLinkEgress: the link dials the hub through the hub's egress policy —
// a metadata address is refused before anything is sent (no network is
// needed to see it) — and does not follow a redirect to another origin,
// which would carry the device's sign-in elsewhere. The loopback hub of
// the other tests shows private addresses are allowed.
func TestLinkEgress(t *testing.T) {
	h := newTestHub(t)
	meta := newLink(t, h, newFileKey(t), edgeAudit(t, 0), 3, func(o *Options) { o.Hub.URL = "http://169.254.169.254" })
	err := meta.postJSON(t.Context(), "/api/hub/enroll", struct{}{}, &struct{}{})
	var re *egress.RefusedError
	if !errors.As(err, &re) || re.Class != egress.Metadata || re.Who != "hub" {
		t.Fatalf("hub on the metadata address: %v, want refused", err)
	}

	var otherHits int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits++ }))
	defer other.Close()
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer moved.Close()
	l := newLink(t, h, newFileKey(t), edgeAudit(t, 0), 3, func(o *Options) { o.Hub.URL = moved.URL })
	err = l.postJSON(t.Context(), "/api/hub/enroll", struct{}{}, &struct{}{})
	var rd *egress.RedirectError
	if !errors.As(err, &rd) {
		t.Fatalf("hub redirecting elsewhere: %v, want a *egress.RedirectError", err)
	}
	if otherHits != 0 {
		t.Fatalf("the other server got %d requests", otherHits)
	}
}
