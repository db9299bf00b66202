package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
)

// TestJWKSClientTLS: the key set is fetched over HTTPS from a provider
// with a private CA only when [auth.oidc.tls] ca_file names it, and with
// the configured client certificate when the provider requires one.
func TestJWKSClientTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "idp CA")
	clientCA := tlstest.NewCA(t, "gateway CA")
	sc, sk, _ := ca.Issue(t, tlstest.Leaf{CN: "idp", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	pair, err := tls.X509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, `{"keys":[],"client":"`+r.TLS.PeerCertificates[0].Subject.CommonName+`"}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: tlstest.Pool(clientCA)}
	srv.StartTLS()
	defer srv.Close()

	get := func(tc config.ClientTLS) (string, error) {
		hc, err := jwksClient(tc)
		if err != nil {
			return "", err
		}
		hc.Transport.(*http.Transport).Proxy = nil
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(srv.URL + "/jwks")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	var unknown x509.UnknownAuthorityError
	if _, err := get(config.ClientTLS{}); !errors.As(err, &unknown) {
		t.Fatalf("a provider with a private CA and no ca_file: %v, want an unknown authority", err)
	}
	caFile := tlstest.Write(t, dir, "idp-ca.pem", ca.PEM)
	if body, err := get(config.ClientTLS{CAFile: caFile}); err != nil || !strings.Contains(body, "no client certificate") {
		t.Fatalf("with ca_file: %q %v", body, err)
	}
	cc, ck, _ := clientCA.Issue(t, tlstest.Leaf{CN: "gateway-7", Client: true})
	tc := config.ClientTLS{CAFile: caFile, CertFile: tlstest.Write(t, dir, "c.pem", cc), KeyFile: tlstest.Write(t, dir, "k.pem", ck)}
	if body, err := get(tc); err != nil || !strings.Contains(body, `"client":"gateway-7"`) {
		t.Fatalf("with a client certificate: %q %v", body, err)
	}
	if _, err := jwksClient(config.ClientTLS{CAFile: dir + "/missing.pem"}); err == nil || !strings.Contains(err.Error(), "auth.oidc.tls.ca_file: "+dir+"/missing.pem does not exist") {
		t.Fatalf("a missing ca_file: %v", err)
	}
}
