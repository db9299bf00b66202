package tlsconf

import (
	"crypto/tls"
	"sync"

	"github.com/mcpedge/mcpedge/internal/config"
)

// Client returns the *tls.Config for connections to a server configured
// with c (an upstream's, [hub]'s or [auth.oidc]'s "tls" table); key is the
// table's configuration key ("upstreams[2].tls") for errors, peer the
// metric label of the client certificate ("upstream/search", "hub").
//
// The server's certificate is always verified: against the system's roots
// and, with ca_file, the CAs it holds. The client certificate, if any, is
// read again when its files change, at the next handshake. A nil c.Set()
// gives nil: the transport's default verification.
func Client(c config.ClientTLS, key, peer string, m *Metrics) (*tls.Config, error) {
	if !c.Set() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, _, err := LoadCAs(key+".ca_file", c.CAFile, true)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		kp := &clientPair{key: key, certFile: c.CertFile, keyFile: c.KeyFile, peer: peer, m: m}
		if _, err := kp.get(); err != nil {
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return tc, nil
}

// clientPair is a client certificate read again when its files change.
type clientPair struct {
	key, certFile, keyFile, peer string
	m                            *Metrics

	mu    sync.Mutex
	stamp string
	cert  *tls.Certificate
}

// get returns the current certificate: the files' if they load, else the
// last one that did (a rotation caught half-way is retried at the next
// handshake).
func (p *clientPair) get() (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := stamp(p.certFile, p.keyFile)
	if p.cert != nil && st == p.stamp {
		return p.cert, nil
	}
	c, err := LoadKeyPair(p.key+".cert_file", p.certFile, p.key+".key_file", p.keyFile)
	if err != nil {
		if p.cert != nil {
			return p.cert, nil
		}
		return nil, err
	}
	p.cert, p.stamp = c, st
	p.m.client(p.peer, c.Leaf)
	return c, nil
}
