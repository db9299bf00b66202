package tlsconf

import (
	"errors"
	"fmt"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
)

// Check reads every TLS file cfg names — [server.tls]'s certificate, key
// and client CA bundle, the ACME CA bundle, and the "tls" tables of
// upstreams, [hub] and [auth.oidc] — as `mcpedge serve` would, for
// `mcpedge config check`. It returns the problems that stop the gateway
// from starting (a missing file, a key that does not match its
// certificate, a bundle without certificates) joined in one error, and
// warnings that do not (a certificate expired, not yet valid, or expiring
// within ExpiryWarning).
func Check(cfg *config.Config, now time.Time) (warnings []string, err error) {
	var errs []error
	pair := func(field, certFile, keyFile string) {
		c, err := LoadKeyPair(field+".cert_file", certFile, field+".key_file", keyFile)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if p := ExpiryProblem(c.Leaf, now); p != "" {
			warnings = append(warnings, field+".cert_file: "+p)
		}
	}
	cas := func(key, file string) {
		_, certs, err := LoadCAs(key, file, false)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, c := range certs {
			if now.After(c.NotAfter) {
				warnings = append(warnings, fmt.Sprintf("%s: %s", key, ExpiryProblem(c, now)))
			}
		}
	}
	t := cfg.Server.TLS
	if t.CertFile != "" {
		pair("server.tls", t.CertFile, t.KeyFile)
	}
	if t.ClientCAFile != "" {
		cas("server.tls.client_ca_file", t.ClientCAFile)
	}
	if t.ACME.Enabled() {
		if cfg.Server.DataDir == "" {
			errs = append(errs, errors.New("server.tls.acme needs server.data_dir: the ACME account key and the certificates are kept in <data_dir>/acme"))
		}
		if t.ACME.CAFile != "" {
			cas("server.tls.acme.ca_file", t.ACME.CAFile)
		}
	}
	client := func(field string, c config.ClientTLS) {
		if c.CAFile != "" {
			cas(field+".ca_file", c.CAFile)
		}
		if c.CertFile != "" {
			pair(field, c.CertFile, c.KeyFile)
		}
	}
	for i, u := range cfg.Upstreams {
		if !u.Disabled {
			client(fmt.Sprintf("upstreams[%d].tls", i), u.TLS)
		}
	}
	if cfg.Hub.Enabled() {
		client("hub.tls", cfg.Hub.TLS)
	}
	if cfg.Auth.OIDC.JWKSURL != "" {
		client("auth.oidc.tls", cfg.Auth.OIDC.TLS)
	}
	return warnings, errors.Join(errs...)
}
