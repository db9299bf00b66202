package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/egress"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeManager obtains and renews the listener's certificate from an ACME
// CA with autocert: the account key and certificates are cached in
// <data_dir>/acme, certificates are renewed renew_before their expiry (by
// autocert's own timer), TLS-ALPN-01 challenges are answered on the
// listener and HTTP-01 ones on acme.http_listen.
type acmeManager struct {
	cfg config.ACME
	o   Options
	m   *autocert.Manager
	// challengeConfig answers TLS-ALPN-01 validation handshakes.
	challengeConfig *tls.Config
	httpServer      *http.Server
	// obtained holds the domains whose certificate is there (string →
	// true), for observe.
	obtained sync.Map
}

func newACME(cfg config.ACME, o Options) (*acmeManager, error) {
	if o.DataDir == "" {
		return nil, errors.New("server.tls.acme needs server.data_dir: the ACME account key and the certificates are kept in <data_dir>/acme")
	}
	dir := filepath.Join(o.DataDir, "acme")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("server.tls.acme: creating the certificate cache: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pool, _, err := LoadCAs("server.tls.acme.ca_file", cfg.CAFile, true)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	// The ACME CA is named by the operator: private addresses are fine
	// (a private CA), metadata and reserved addresses never are.
	p := &egress.Policy{Who: "acme directory_url", Trusted: true}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         p.Dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
	a := &acmeManager{cfg: cfg, o: o}
	a.m = &autocert.Manager{
		Prompt:      autocert.AcceptTOS, // accept_terms = true, checked by config
		Cache:       autocert.DirCache(dir),
		HostPolicy:  hostPolicy(cfg.Domains),
		RenewBefore: cfg.RenewBefore.D(),
		Email:       cfg.Email,
		Client:      &acme.Client{DirectoryURL: cfg.DirectoryURL, HTTPClient: client, UserAgent: "mcpedge"},
	}
	a.challengeConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{acme.ALPNProto},
		GetCertificate: a.m.GetCertificate,
	}
	return a, nil
}

// getCertificate serves a handshake's certificate and records its expiry.
func (a *acmeManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := a.m.GetCertificate(hello)
	if err == nil && c.Leaf != nil {
		a.o.Metrics.server(false, c.Leaf)
	}
	return c, err
}

// hello is the handshake the gateway plays to itself to get the
// certificate of domain without waiting for a client (ECDSA).
func hello(domain string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        domain,
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:   []tls.CurveID{tls.CurveP256},
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

// start serves HTTP-01 challenges (challenge = "http-01") and obtains each
// domain's certificate in the background, retrying with backoff: the
// listener serves as soon as it is up, and a handshake for a domain whose
// certificate is not there yet waits for it.
func (a *acmeManager) start(ctx context.Context) error {
	if a.cfg.Challenge == config.ChallengeHTTP {
		ln, err := net.Listen("tcp", a.cfg.HTTPListen)
		if err != nil {
			return fmt.Errorf("server.tls.acme.http_listen: %w", err)
		}
		a.httpServer = &http.Server{
			// Challenges are answered; every other request is redirected
			// to https.
			Handler:           a.m.HTTPHandler(nil),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       30 * time.Second,
			MaxHeaderBytes:    16 << 10,
		}
		go func() { _ = a.httpServer.Serve(ln) }()
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = a.httpServer.Shutdown(sctx)
		}()
	}
	for _, d := range a.cfg.Domains {
		go a.obtain(ctx, d)
	}
	return nil
}

// obtain gets domain's certificate (from the cache, or from the CA),
// retrying after 1 minute, then doubling up to an hour: a CA counts
// failed validations against its rate limits.
func (a *acmeManager) obtain(ctx context.Context, domain string) {
	wait := time.Minute
	for {
		c, err := a.getCertificate(hello(domain))
		if err == nil {
			a.obtained.Store(domain, true)
			a.o.Log.Info("ACME certificate ready", "domain", domain, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
			return
		}
		a.o.Log.Error("ACME certificate not obtained; retrying", "domain", domain, "retry_in", wait.String(), "err", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Hour)
	}
}

// observe records the expiry of the certificates served now (autocert
// renews them on its own timer and keeps them in memory): only domains
// already obtained, so that it never starts an issuance (obtain does).
func (a *acmeManager) observe() {
	a.obtained.Range(func(d, _ any) bool {
		_, _ = a.getCertificate(hello(d.(string)))
		return true
	})
}

// hostPolicy allows the configured domains only. Unlike
// autocert.HostWhitelist it ignores a port in the name: an HTTP-01
// request's Host carries one when http_listen is reached on a port other
// than 80 (a test CA, or a port forwarded under another number).
func hostPolicy(domains []string) autocert.HostPolicy {
	allowed := make(map[string]bool, len(domains))
	for _, d := range domains {
		allowed[strings.ToLower(strings.TrimSuffix(d, "."))] = true
	}
	return func(_ context.Context, host string) error {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !allowed[strings.ToLower(strings.TrimSuffix(host, "."))] {
			return fmt.Errorf("%q is not one of server.tls.acme.domains", host)
		}
		return nil
	}
}
