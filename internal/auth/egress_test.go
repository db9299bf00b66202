package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/egress"
)

// TestJWKSClientEgress: the default key-set client reaches a provider on
// a private or loopback address, and refuses a metadata address before
// anything is sent.
func TestJWKSClientEgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer srv.Close()
	hc, err := jwksClient(config.ClientTLS{})
	if err != nil {
		t.Fatal(err)
	}
	// A proxy from the test's environment would be dialled instead of
	// the address under test.
	hc.Transport.(*http.Transport).Proxy = nil
	var resp *http.Response
	resp, err = hc.Get(srv.URL + "/jwks")
	if err != nil {
		t.Fatalf("provider on loopback: %v", err)
	}
	resp.Body.Close()

	_, err = hc.Get("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
	var re *egress.RefusedError
	if !errors.As(err, &re) || re.Class != egress.Metadata {
		t.Fatalf("metadata address: %v, want refused", err)
	}
}
