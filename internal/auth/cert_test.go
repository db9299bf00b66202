package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/url"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
)

// TestAuthenticateCertificate maps client certificates the test makes to
// tenants by subject CN, by each kind of SAN and by fingerprint, and
// refuses unmapped certificates and disabled, unknown or IP-restricted
// tenants, with an audit entry for each refusal.
func TestAuthenticateCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "agents CA")
	issue := func(l tlstest.Leaf) *x509.Certificate {
		l.Client = true
		_, _, c := ca.Issue(t, l)
		return c
	}
	spiffe, _ := url.Parse("spiffe://example.org/agent/42")
	byCN := issue(tlstest.Leaf{CN: "agent-cn"})
	byDNS := issue(tlstest.Leaf{CN: "x", DNS: []string{"agent.example.org"}})
	byEmail := issue(tlstest.Leaf{CN: "y", Emails: []string{"bot@example.org"}})
	byURI := issue(tlstest.Leaf{CN: "z", URIs: []*url.URL{spiffe}})
	byIP := issue(tlstest.Leaf{CN: "w", IPs: []net.IP{net.ParseIP("10.1.2.3")}})
	byFP := issue(tlstest.Leaf{CN: "agent-cn"}) // same CN as byCN: the fingerprint wins
	unmapped := issue(tlstest.Leaf{CN: "stranger"})
	blocked := issue(tlstest.Leaf{CN: "blocked"})
	ghost := issue(tlstest.Leaf{CN: "ghost"})
	fp := sha256.Sum256(byFP.Raw)

	e := newEnv(t, newTestStore(t), func(o *Options) {
		o.ClientCerts = []config.ClientCert{
			{SubjectCN: "agent-cn", Tenant: "acme", Role: principal.RoleMember},
			{SAN: "agent.example.org", Tenant: "acme", Role: principal.RoleViewer},
			{SAN: "bot@example.org", Tenant: "acme", Role: principal.RoleMember, Scopes: []string{principal.ScopeCall}},
			{SAN: spiffe.String(), Tenant: "acme", Role: principal.RoleAdmin},
			{SAN: "10.1.2.3", Tenant: "acme", Role: principal.RoleMember},
			{Fingerprint: hex.EncodeToString(fp[:]), Tenant: "beta", Role: principal.RoleOwner},
			{SubjectCN: "blocked", Tenant: "closed", Role: principal.RoleMember},
			{SubjectCN: "ghost", Tenant: "nobody", Role: principal.RoleMember},
		}
	})
	acme := e.tenant("acme")
	beta := e.tenant("beta", func(t *store.Tenant) { t.IPAllowlist = []string{"192.0.2.0/24"} })
	e.tenant("closed", func(t *store.Tenant) { t.Disabled = true })
	ctx := context.Background()

	for _, c := range []struct {
		name     string
		cert     *x509.Certificate
		tenant   string
		role, id string
		scopes   int
	}{
		{"subject CN", byCN, acme.ID, principal.RoleMember, "cert:cn:agent-cn", 0},
		{"DNS SAN", byDNS, acme.ID, principal.RoleViewer, "cert:san:agent.example.org", 0},
		{"e-mail SAN", byEmail, acme.ID, principal.RoleMember, "cert:san:bot@example.org", 1},
		{"URI SAN", byURI, acme.ID, principal.RoleAdmin, "cert:san:" + spiffe.String(), 0},
		{"IP SAN", byIP, acme.ID, principal.RoleMember, "cert:san:10.1.2.3", 0},
		{"fingerprint", byFP, beta.ID, principal.RoleOwner, "cert:sha256:" + hex.EncodeToString(fp[:]), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := e.svc.AuthenticateCertificate(ctx, c.cert, "192.0.2.7")
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != principal.KindCertificate || p.TenantID != c.tenant || p.Role != c.role || p.ID != c.id || len(p.Scopes) != c.scopes {
				t.Fatalf("principal %+v, want tenant %s role %s id %s", p, c.tenant, c.role, c.id)
			}
			if !p.ExpiresAt.Equal(c.cert.NotAfter) {
				t.Fatalf("ExpiresAt %s, want the certificate's NotAfter %s", p.ExpiresAt, c.cert.NotAfter)
			}
		})
	}

	_, err := e.svc.AuthenticateCertificate(ctx, unmapped, "192.0.2.7")
	wantErr(t, err, ErrUnauthenticated, "client certificate not mapped to a tenant")
	if a := e.audit.last(); a.Action != "auth.reject" || a.ActorKind != principal.KindCertificate {
		t.Fatalf("refusal audited as %+v", a)
	}
	_, err = e.svc.AuthenticateCertificate(ctx, blocked, "192.0.2.7")
	wantErr(t, err, ErrForbidden, "tenant disabled")
	_, err = e.svc.AuthenticateCertificate(ctx, ghost, "192.0.2.7")
	wantErr(t, err, ErrForbidden, "unknown tenant")
	_, err = e.svc.AuthenticateCertificate(ctx, byFP, "198.51.100.1")
	wantErr(t, err, ErrForbidden, "client address not allowed for this tenant")
	_, err = e.svc.AuthenticateCertificate(ctx, nil, "192.0.2.7")
	wantErr(t, err, ErrUnauthenticated, "missing credential")

	// A reload replaces the mapping.
	e.svc.SetClientCerts([]config.ClientCert{{SubjectCN: "stranger", Tenant: "acme", Role: principal.RoleViewer}})
	if p, err := e.svc.AuthenticateCertificate(ctx, unmapped, "192.0.2.7"); err != nil || p.Role != principal.RoleViewer {
		t.Fatalf("after the reload: %+v %v", p, err)
	}
	_, err = e.svc.AuthenticateCertificate(ctx, byCN, "192.0.2.7")
	wantErr(t, err, ErrUnauthenticated, "client certificate not mapped to a tenant")
}
