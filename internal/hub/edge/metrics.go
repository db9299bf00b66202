package edge

import (
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// linkMetrics are the edge link's own metrics (docs/hub.md).
type linkMetrics struct {
	signIns *prometheus.CounterVec
	posts   *prometheus.CounterVec
	dropped prometheus.Counter
	bytes   prometheus.Counter
}

func newLinkMetrics(reg prometheus.Registerer, l *Link) *linkMetrics {
	m := &linkMetrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "hub", Name: "sign_ins_total",
			Help: "Sign-ins (and enrollments) of this edge with its hub, by outcome (ok, failed)."}, []string{"outcome"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "hub", Name: "telemetry_posts_total",
			Help: "Telemetry posts to the hub by outcome: ok, resync (the hub had another audit position), refused, unreachable."}, []string{"outcome"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "hub", Name: "telemetry_dropped_snapshots_total",
			Help: "Metric snapshots dropped, oldest first, because the buffer ([hub] telemetry_buffer) was full while the hub was unreachable."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "hub", Name: "telemetry_sent_bytes_total",
			Help: "Compressed (zstd) bytes of telemetry the hub accepted."}),
	}
	if reg != nil {
		reg.MustRegister(m.signIns, m.posts, m.dropped, m.bytes,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mcpedge", Subsystem: "hub", Name: "signed_in",
				Help: "1 while this edge holds a valid credential of its hub."}, func() float64 {
				if l.Status().SignedIn {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mcpedge", Subsystem: "hub", Name: "audit_acked_seq",
				Help: "The last of this edge's audit sequence numbers the hub has stored."}, func() float64 {
				return float64(l.Status().AuditAcked)
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mcpedge", Subsystem: "hub", Name: "telemetry_buffered_snapshots",
				Help: "Metric snapshots waiting to be sent to the hub."}, func() float64 {
				return float64(l.Status().Buffered)
			}),
		)
	}
	return m
}

func marshalPublic(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding the device's public key: %w", err)
	}
	return der, nil
}
