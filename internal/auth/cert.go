package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
)

// certMap finds the [[server.tls.client_certs]] entry of a client
// certificate. It is immutable once built.
type certMap struct {
	byFP, bySAN, byCN map[string]config.ClientCert
}

func newCertMap(list []config.ClientCert) *certMap {
	m := &certMap{byFP: map[string]config.ClientCert{}, bySAN: map[string]config.ClientCert{}, byCN: map[string]config.ClientCert{}}
	for _, c := range list {
		switch {
		case c.Fingerprint != "":
			m.byFP[c.Fingerprint] = c
		case c.SAN != "":
			m.bySAN[c.SAN] = c
		case c.SubjectCN != "":
			m.byCN[c.SubjectCN] = c
		}
	}
	return m
}

// find returns the entry for c: by fingerprint first (the most specific),
// then by a subject alternative name, then by the subject's common name.
func (m *certMap) find(c *x509.Certificate) (config.ClientCert, bool) {
	sum := sha256.Sum256(c.Raw)
	if e, ok := m.byFP[hex.EncodeToString(sum[:])]; ok {
		return e, true
	}
	if len(m.bySAN) > 0 {
		for _, n := range c.DNSNames {
			if e, ok := m.bySAN[n]; ok {
				return e, true
			}
		}
		for _, n := range c.EmailAddresses {
			if e, ok := m.bySAN[n]; ok {
				return e, true
			}
		}
		for _, u := range c.URIs {
			if e, ok := m.bySAN[u.String()]; ok {
				return e, true
			}
		}
		for _, ip := range c.IPAddresses {
			if e, ok := m.bySAN[ip.String()]; ok {
				return e, true
			}
		}
	}
	if c.Subject.CommonName != "" {
		if e, ok := m.byCN[c.Subject.CommonName]; ok {
			return e, true
		}
	}
	return config.ClientCert{}, false
}

// SetClientCerts replaces the mapping of client certificates to tenants
// ([[server.tls.client_certs]]), at start and at a configuration reload.
func (s *Service) SetClientCerts(list []config.ClientCert) {
	s.certs.Store(newCertMap(list))
}

// AuthenticateCertificate resolves a client certificate that the TLS
// layer has verified against server.tls.client_ca_file to a principal,
// through [[server.tls.client_certs]]: the certificate is then a
// credential like an API key, of kind "certificate", with the entry's
// tenant, role and scopes, valid until the certificate expires. A verified
// certificate that no entry maps is refused (and audited), as is one for
// a disabled or unknown tenant or from an address outside the tenant's
// allowlist.
func (s *Service) AuthenticateCertificate(ctx context.Context, c *x509.Certificate, clientIP string) (*principal.Principal, error) {
	if c == nil {
		return nil, unauth("missing credential")
	}
	m := s.certs.Load()
	var e config.ClientCert
	ok := false
	if m != nil {
		e, ok = m.find(c)
	}
	if !ok {
		sum := sha256.Sum256(c.Raw)
		return nil, s.reject(ctx, who{kind: principal.KindCertificate}, clientIP, unauth("client certificate not mapped to a tenant"),
			map[string]any{"subject": truncate(c.Subject.String(), 256), "fingerprint": "sha256:" + hex.EncodeToString(sum[:])})
	}
	w := who{id: "cert:" + e.Match(), kind: principal.KindCertificate}
	te, err := s.tenantByName(ctx, e.Tenant)
	if err != nil {
		if f := storeErr(err, ""); errors.Is(f, ErrUnauthenticated) {
			return nil, s.reject(ctx, w, clientIP, forbidden("unknown tenant"), map[string]any{"tenant": truncate(e.Tenant, maxNameLen)})
		}
		return nil, err
	}
	w.tenant = te.t.ID
	if err := checkTenant(te, clientIP); err != nil {
		return nil, s.reject(ctx, w, clientIP, err, nil)
	}
	return &principal.Principal{
		Kind:        principal.KindCertificate,
		ID:          w.id,
		TenantID:    te.t.ID,
		TenantName:  te.t.Name,
		Plan:        te.t.Plan,
		Operator:    te.t.Operator,
		Role:        e.Role,
		Scopes:      e.Scopes,
		IPAllowlist: te.t.IPAllowlist,
		ExpiresAt:   c.NotAfter,
	}, nil
}
