package tlsconf

import (
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports when the certificates the gateway presents expire.
// A nil *Metrics records nothing.
type Metrics struct {
	expiry *prometheus.GaugeVec
}

// NewMetrics registers mcpedge_tls_certificate_expiry_timestamp_seconds on
// reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mcpedge_tls_certificate_expiry_timestamp_seconds",
		Help: "When a certificate the gateway presents stops being valid (its NotAfter, Unix seconds). " +
			"use is server (the listener's, from files or ACME) or client (presented to an upstream or the hub); " +
			"name is the certificate's first DNS name or common name, or the peer it is presented to.",
	}, []string{"use", "name"})}
	if reg != nil {
		reg.MustRegister(m.expiry)
	}
	return m
}

// server records the listener's certificate(s); replace drops the series
// of certificates no longer served (a file certificate changed its name).
func (m *Metrics) server(replace bool, certs ...*x509.Certificate) {
	if m == nil {
		return
	}
	if replace {
		m.expiry.DeletePartialMatch(prometheus.Labels{"use": "server"})
	}
	for _, c := range certs {
		if c != nil {
			m.expiry.WithLabelValues("server", certName(c)).Set(float64(c.NotAfter.Unix()))
		}
	}
}

// client records the client certificate presented to peer.
func (m *Metrics) client(peer string, c *x509.Certificate) {
	if m == nil || c == nil {
		return
	}
	m.expiry.WithLabelValues("client", peer).Set(float64(c.NotAfter.Unix()))
}
