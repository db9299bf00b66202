package config

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
)

// TLS versions accepted in server.tls.min_version.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// Client certificate modes of server.tls.client_auth.
const (
	ClientAuthNone     = "none"     // no client certificate is asked for
	ClientAuthOptional = "optional" // asked for, verified when sent
	ClientAuthRequired = "required" // every connection must present a valid one
)

// ACME challenge types of server.tls.acme.challenge.
const (
	ChallengeTLSALPN = "tls-alpn-01" // answered on the gateway's own TLS port
	ChallengeHTTP    = "http-01"     // answered on acme.http_listen (port 80)
)

// ACME defaults and bounds.
const (
	// MaxACMERenewBefore is the largest accepted renew_before (the ACME
	// client's own cap). Without renew_before a certificate is renewed
	// when a third of its lifetime is left, at most 30 days before it
	// expires (for Let's Encrypt's 90-day certificates: 30 days).
	MaxACMERenewBefore = Duration(30 * 24 * time.Hour)
	// MinACMERenewBefore is the smallest accepted renew_before.
	MinACMERenewBefore = Duration(time.Second)
	// DefaultACMEDirectory is Let's Encrypt's production directory.
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	// MaxClientCertMappings bounds [[server.tls.client_certs]].
	MaxClientCertMappings = 10000
)

// TLS is the gateway's TLS termination (toml [server.tls]). With neither
// cert_file nor [server.tls.acme] the gateway serves plain HTTP. See
// docs/deploy.md.
type TLS struct {
	// CertFile and KeyFile are PEM files: the certificate chain (leaf
	// first) and its private key (toml "cert_file", "key_file"). They are
	// re-read when they change, without a restart.
	CertFile string
	KeyFile  string
	// MinVersion is "1.3" (the default) or "1.2" (toml "min_version");
	// with 1.2 only forward-secret AEAD cipher suites are offered.
	MinVersion string
	// ClientCAFile is a PEM bundle of the CAs whose client certificates
	// are accepted (toml "client_ca_file"); it turns mTLS on.
	ClientCAFile string
	// ClientAuth is "none", "optional" (the default with client_ca_file:
	// a certificate is verified when sent, bearer credentials still work)
	// or "required" (toml "client_auth").
	ClientAuth string
	// ClientCerts map verified client certificates to a tenant and role
	// (toml [[server.tls.client_certs]]): such a certificate is then a
	// credential, as an API key is.
	ClientCerts []ClientCert
	// ACME obtains and renews the certificate from an ACME CA (toml
	// [server.tls.acme]), instead of cert_file and key_file.
	ACME ACME
}

// Enabled reports whether the gateway terminates TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.ACME.Enabled() }

// ClientCert maps client certificates to a principal. Exactly one of
// SubjectCN, SAN and Fingerprint is set.
type ClientCert struct {
	// SubjectCN matches the certificate's subject common name (toml
	// "subject_cn").
	SubjectCN string
	// SAN matches one of its subject alternative names: a DNS name, an
	// e-mail address, a URI (such as a SPIFFE ID) or an IP address (toml
	// "san").
	SAN string
	// Fingerprint matches the SHA-256 of the certificate (DER), as
	// "sha256:" and 64 hex digits, colons allowed (toml "fingerprint").
	// It is stored normalised: lower case, no colons, no prefix.
	Fingerprint string
	// Tenant is the tenant's name (toml "tenant"); Role one of viewer,
	// member, admin, owner (toml "role", default member); Scopes
	// optionally limit it as an API key's (toml "scopes").
	Tenant string
	Role   string
	Scopes []string
}

// Match says what the mapping matches, as "cn:NAME", "san:NAME" or
// "sha256:HEX": the principal's id in audit entries.
func (c ClientCert) Match() string {
	switch {
	case c.SubjectCN != "":
		return "cn:" + c.SubjectCN
	case c.SAN != "":
		return "san:" + c.SAN
	}
	return "sha256:" + c.Fingerprint
}

// ACME is [server.tls.acme].
type ACME struct {
	// Domains are the host names to obtain a certificate for (toml
	// "domains"); the gateway answers TLS only for them.
	Domains []string
	// Email is the account's contact address (toml "email", optional).
	Email string
	// DirectoryURL is the ACME server's directory (toml "directory_url",
	// default Let's Encrypt's production directory).
	DirectoryURL string
	// CAFile is a PEM bundle trusted for the ACME server's own HTTPS
	// (toml "ca_file"), for a private ACME CA; "" uses the system's roots.
	CAFile string
	// Challenge is "tls-alpn-01" (the default: answered on the gateway's
	// TLS port, which must be reachable as port 443 of each domain) or
	// "http-01" (answered on HTTPListen, reachable as port 80).
	Challenge string
	// HTTPListen is where HTTP-01 challenges are answered (toml
	// "http_listen", default ":80"); other requests there are redirected
	// to https. Only with challenge = "http-01".
	HTTPListen string
	// RenewBefore is how long before expiry a certificate is renewed
	// (toml "renew_before", at most 720h); 0, the default, means when a
	// third of its lifetime is left, at most 30 days before. A renewal is
	// spread over a tenth of it (at most an hour) after the due time.
	RenewBefore Duration
	// AcceptTerms must be true (toml "accept_terms"): it agrees to the
	// ACME CA's terms of service on the operator's behalf.
	AcceptTerms bool
}

// Enabled reports whether ACME is configured.
func (a ACME) Enabled() bool { return len(a.Domains) > 0 }

// ClientTLS is how the gateway verifies a server it connects to and which
// certificate it presents (toml "tls" in [[upstreams]], [hub] and
// [auth.oidc]). Certificates are always verified; CAFile adds private CAs.
type ClientTLS struct {
	// CAFile is a PEM bundle of CAs trusted for this server in addition
	// to the system's roots (toml "ca_file").
	CAFile string
	// CertFile and KeyFile are the client certificate presented when the
	// server asks for one (toml "cert_file", "key_file"); they are
	// re-read when they change.
	CertFile string
	KeyFile  string
	// ServerName overrides the name the server's certificate must carry
	// (toml "server_name"), e.g. when it is reached by address.
	ServerName string
}

// Set reports whether any setting is given.
func (c ClientTLS) Set() bool { return c != ClientTLS{} }

var (
	tlsKeys        = []string{"cert_file", "key_file", "min_version", "client_ca_file", "client_auth", "client_certs", "acme"}
	clientCertKeys = []string{"subject_cn", "san", "fingerprint", "tenant", "role", "scopes"}
	acmeKeys       = []string{"domains", "email", "directory_url", "ca_file", "challenge", "http_listen", "renew_before", "accept_terms"}
	clientTLSKeys  = []string{"ca_file", "cert_file", "key_file", "server_name"}
)

// tlsMeta locates [server.tls] for validation.
type tlsMeta struct {
	t, acme *table
	certs   []*table
}

// decodeTLS reads [server.tls] into s.
func (d *decoder) decodeTLS(server *table, s *TLS) tlsMeta {
	var m tlsMeta
	t := d.subTable(server, "tls")
	if t == nil {
		return m
	}
	m.t = t
	d.path(t, "cert_file", &s.CertFile)
	d.path(t, "key_file", &s.KeyFile)
	t.str("min_version", &s.MinVersion)
	d.path(t, "client_ca_file", &s.ClientCAFile)
	t.str("client_auth", &s.ClientAuth)
	if v := t.get("client_certs"); v != nil {
		l := t.loc("client_certs")
		if v.kind != kArray {
			d.add(l.pos, l.field, "expected an array of tables ([[server.tls.client_certs]]), got %s", d.kindName(v.kind))
		} else {
			for i, e := range v.arr {
				f := indexField(l.field, i)
				if e.kind != kTable {
					d.add(e.pos, f, "expected table, got %s", d.kindName(e.kind))
					continue
				}
				ct := d.table(e, f)
				var c ClientCert
				ct.str("subject_cn", &c.SubjectCN)
				ct.str("san", &c.SAN)
				ct.str("fingerprint", &c.Fingerprint)
				ct.str("tenant", &c.Tenant)
				ct.str("role", &c.Role)
				ct.strList("scopes", &c.Scopes)
				ct.unknown(clientCertKeys)
				s.ClientCerts = append(s.ClientCerts, c)
				m.certs = append(m.certs, ct)
			}
		}
	}
	if a := d.subTable(t, "acme"); a != nil {
		m.acme = a
		ac := &s.ACME
		a.strList("domains", &ac.Domains)
		a.str("email", &ac.Email)
		if a.str("directory_url", &ac.DirectoryURL) {
			l := a.loc("directory_url")
			ac.DirectoryURL, _ = d.expand(ac.DirectoryURL, l.pos, l.field, false)
		}
		d.path(a, "ca_file", &ac.CAFile)
		a.str("challenge", &ac.Challenge)
		a.str("http_listen", &ac.HTTPListen)
		a.duration("renew_before", &ac.RenewBefore)
		a.boolean("accept_terms", &ac.AcceptTerms)
		a.unknown(acmeKeys)
	}
	t.unknown(tlsKeys)
	return m
}

// path reads a file path with ${VAR} references expanded.
func (d *decoder) path(t *table, key string, dst *string) {
	if t.str(key, dst) {
		l := t.loc(key)
		*dst, _ = d.expand(*dst, l.pos, l.field, false)
	}
}

// decodeClientTLS reads the "tls" sub-table of t (an upstream, [hub],
// [auth.oidc]) into c and returns it, nil when absent.
func (d *decoder) decodeClientTLS(t *table, c *ClientTLS) *table {
	ct := d.subTable(t, "tls")
	if ct == nil {
		return nil
	}
	d.path(ct, "ca_file", &c.CAFile)
	d.path(ct, "cert_file", &c.CertFile)
	d.path(ct, "key_file", &c.KeyFile)
	ct.str("server_name", &c.ServerName)
	ct.unknown(clientTLSKeys)
	return ct
}

// validateClientTLS checks a client TLS table: a certificate comes with
// its key, and the server name is a host name.
func (d *decoder) validateClientTLS(c *ClientTLS, t *table, field string) {
	bad := func(key, format string, args ...any) {
		l := metaLoc(t, field, key)
		d.add(l.pos, l.field, format, args...)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			bad("cert_file", "is required with key_file: a client certificate needs both")
		} else {
			bad("key_file", "is required with cert_file: a client certificate needs both")
		}
	}
	if c.ServerName != "" && strings.ContainsAny(c.ServerName, ":/@?# \t") {
		bad("server_name", "%q is not a host name", truncate(c.ServerName, 64))
	}
}

// validateTLS checks [server.tls]. Files are not read here: `mcpedge
// config check` and `mcpedge serve` load them (internal/tlsconf), which
// reports a missing file, a key that does not match, an expired
// certificate.
func (d *decoder) validateTLS(s *TLS, m tlsMeta) {
	bad := func(t *table, field, key, format string, args ...any) {
		l := metaLoc(t, field, key)
		d.add(l.pos, l.field, format, args...)
	}
	const f = "server.tls"
	if m.t == nil {
		return
	}
	switch s.MinVersion {
	case "":
		s.MinVersion = TLSVersion13
	case TLSVersion12, TLSVersion13:
	default:
		bad(m.t, f, "min_version", "must be %q (the default) or %q, got %q", TLSVersion13, TLSVersion12, truncate(s.MinVersion, 16))
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		if s.CertFile == "" {
			bad(m.t, f, "cert_file", "is required with key_file")
		} else {
			bad(m.t, f, "key_file", "is required with cert_file")
		}
	}
	if s.CertFile != "" && s.ACME.Enabled() {
		bad(m.t, f, "cert_file", "cannot be used with [server.tls.acme]: the certificate comes either from files or from the ACME CA")
	}
	if !s.Enabled() {
		bad(m.t, f, "cert_file", "[server.tls] needs cert_file and key_file, or [server.tls.acme] with domains")
	}
	switch s.ClientAuth {
	case "":
		if s.ClientCAFile != "" {
			s.ClientAuth = ClientAuthOptional
		} else {
			s.ClientAuth = ClientAuthNone
		}
	case ClientAuthNone:
	case ClientAuthOptional, ClientAuthRequired:
		if s.ClientCAFile == "" {
			bad(m.t, f, "client_auth", "%q needs client_ca_file: the CAs whose client certificates are accepted", s.ClientAuth)
		}
	default:
		bad(m.t, f, "client_auth", "must be one of none, optional, required, got %q", truncate(s.ClientAuth, 16))
	}
	if len(s.ClientCerts) > 0 && s.ClientCAFile == "" {
		bad(m.t, f, "client_certs", "need client_ca_file: only certificates verified against it are mapped")
	}
	if len(s.ClientCerts) > MaxClientCertMappings {
		bad(m.t, f, "client_certs", "at most %d entries, got %d", MaxClientCertMappings, len(s.ClientCerts))
	}
	seen := map[string]int{}
	for i := range s.ClientCerts {
		c := &s.ClientCerts[i]
		ct := m.certs[i]
		cf := fmt.Sprintf("%s.client_certs[%d]", f, i)
		n := 0
		for _, v := range []string{c.SubjectCN, c.SAN, c.Fingerprint} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			bad(ct, cf, "subject_cn", "set exactly one of subject_cn, san and fingerprint")
			continue
		}
		if c.Fingerprint != "" {
			fp, ok := normalizeFingerprint(c.Fingerprint)
			if !ok {
				bad(ct, cf, "fingerprint", "must be \"sha256:\" and 64 hex digits (colons allowed), e.g. the output of `openssl x509 -noout -fingerprint -sha256`")
				continue
			}
			c.Fingerprint = fp
		}
		if j, dup := seen[c.Match()]; dup {
			bad(ct, cf, "subject_cn", "matches the same certificates as client_certs[%d]", j)
		}
		seen[c.Match()] = i
		if c.Tenant == "" {
			bad(ct, cf, "tenant", "is required: the tenant the certificate acts for")
		}
		if c.Role == "" {
			c.Role = principal.RoleMember
		} else if !principal.ValidRole(c.Role) {
			bad(ct, cf, "role", "must be one of viewer, member, admin, owner, got %q", truncate(c.Role, 16))
		}
		for _, sc := range c.Scopes {
			if sc == "" || len(sc) > 64 {
				bad(ct, cf, "scopes", "scopes must be 1 to 64 bytes")
				break
			}
		}
	}
	a := &s.ACME
	if m.acme == nil {
		return
	}
	const af = "server.tls.acme"
	if len(a.Domains) == 0 {
		bad(m.acme, af, "domains", "must name at least one host name to obtain a certificate for")
	}
	for i, dom := range a.Domains {
		dom = strings.ToLower(strings.TrimSuffix(dom, "."))
		if dom == "" || strings.ContainsAny(dom, ":/@?# \t*") || !strings.Contains(dom, ".") {
			l := metaLoc(m.acme, af, "domains")
			d.add(l.pos, indexField(l.field, i), "%q is not a fully qualified host name (no wildcards, ports or schemes)", truncate(dom, 64))
			continue
		}
		a.Domains[i] = dom
	}
	if a.DirectoryURL == "" {
		a.DirectoryURL = DefaultACMEDirectory
	} else if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		bad(m.acme, af, "directory_url", "must be an https:// URL of the ACME server's directory")
	}
	switch a.Challenge {
	case "":
		a.Challenge = ChallengeTLSALPN
	case ChallengeTLSALPN:
	case ChallengeHTTP:
		if a.HTTPListen == "" {
			a.HTTPListen = ":80"
		}
	default:
		bad(m.acme, af, "challenge", "must be %q or %q, got %q", ChallengeTLSALPN, ChallengeHTTP, truncate(a.Challenge, 16))
	}
	if a.HTTPListen != "" {
		if a.Challenge != ChallengeHTTP {
			bad(m.acme, af, "http_listen", "is only used with challenge = %q", ChallengeHTTP)
		} else if err := checkListen(a.HTTPListen); err != "" {
			bad(m.acme, af, "http_listen", "%s", err)
		}
	}
	if a.RenewBefore != 0 && (a.RenewBefore < MinACMERenewBefore || a.RenewBefore > MaxACMERenewBefore) {
		bad(m.acme, af, "renew_before", "must be between %s and %s, got %s", MinACMERenewBefore, MaxACMERenewBefore, a.RenewBefore)
	}
	if !a.AcceptTerms {
		bad(m.acme, af, "accept_terms", "must be true: the ACME CA issues certificates only to accounts that agree to its terms of service; read them and set accept_terms = true")
	}
}

// normalizeFingerprint turns "sha256:AB:CD…" into 64 lower-case hex digits.
func normalizeFingerprint(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	s, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return "", false
	}
	s = strings.ReplaceAll(s, ":", "")
	if len(s) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", false
	}
	return s, true
}

// resolveTLSPaths makes the TLS file paths relative to the config file's
// directory, like upstream dirs.
func resolveTLSPaths(c *Config, base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	t := &c.Server.TLS
	for _, p := range []*string{&t.CertFile, &t.KeyFile, &t.ClientCAFile, &t.ACME.CAFile} {
		abs(p)
	}
	client := func(ct *ClientTLS) {
		abs(&ct.CAFile)
		abs(&ct.CertFile)
		abs(&ct.KeyFile)
	}
	client(&c.Hub.TLS)
	client(&c.Auth.OIDC.TLS)
	for i := range c.Upstreams {
		client(&c.Upstreams[i].TLS)
		for j := range c.Upstreams[i].Targets {
			client(&c.Upstreams[i].Targets[j].TLS)
		}
	}
}
