package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/egress"
)

// Hub defaults and bounds (the [hub] table).
const (
	DefaultHubTelemetryInterval = Duration(15 * time.Second)
	DefaultHubTelemetryBatch    = 500
	DefaultHubTelemetryBuffer   = 240
	DefaultHubTimeout           = Duration(30 * time.Second)

	// MinHubTelemetryInterval and MaxHubTelemetryInterval bound
	// hub.telemetry_interval: more often than every second is load for
	// nothing, less often than hourly is no longer "last contact".
	MinHubTelemetryInterval = Duration(time.Second)
	MaxHubTelemetryInterval = Duration(time.Hour)
	// MaxHubTelemetryBatch bounds hub.telemetry_batch, the audit entries
	// of one telemetry post: the hub refuses larger posts.
	MaxHubTelemetryBatch = 5000
	// MaxHubTelemetryBuffer bounds hub.telemetry_buffer, the metric
	// snapshots kept in memory while the hub is unreachable.
	MaxHubTelemetryBuffer = 10000
	// MaxHubLabels bounds hub.labels.
	MaxHubLabels = 32
)

// Hub makes this gateway an edge of a hub gateway (toml [hub]): it
// enrolls there with its device key, offers the hub's tools to its own
// clients (local tools first), queues deferrable calls to them while the
// hub is unreachable, and sends the hub its metrics and audit entries.
// Without URL the gateway is not an edge (it can still be a hub for
// others). These settings are read once at start; a change needs a
// restart. See docs/hub.md.
type Hub struct {
	// URL is the hub gateway's base URL, e.g. "https://hub.example.com"
	// (toml "url"): its /mcp and /api/hub/… are used. ${VAR} references
	// are expanded.
	URL string
	// EnrollToken is the enrollment token an operator created on the hub
	// (toml "enroll_token", usually "${MCPEDGE_ENROLL_TOKEN}"). It is used
	// only for the first enrollment; an unset variable is not an error,
	// so it can be removed once the device is enrolled.
	EnrollToken string
	// Name is how the hub lists this device (toml "name"); "" means the
	// host name.
	Name string
	// Labels are free-form "key=value" strings shown on the hub (toml
	// "labels").
	Labels []string
	// Deferrable lists the hub's tool names (as the hub's /mcp offers
	// them) whose calls are queued while the hub is unreachable (toml
	// "deferrable"); ["*"] means every hub tool.
	Deferrable []string
	// Timeout bounds one call forwarded to the hub (toml "timeout").
	Timeout Duration
	// TelemetryInterval is how often metrics and audit entries are sent
	// (toml "telemetry_interval").
	TelemetryInterval Duration
	// TelemetryBatch bounds the audit entries of one post (toml
	// "telemetry_batch"); a backlog is sent in several posts.
	TelemetryBatch int
	// TelemetryBuffer bounds the metric snapshots kept while the hub is
	// unreachable (toml "telemetry_buffer"); the oldest are dropped first
	// and counted.
	TelemetryBuffer int
	// TLS verifies the hub's certificate against extra CAs and presents a
	// client certificate to it (toml [hub.tls]).
	TLS ClientTLS
}

// Enabled reports whether this gateway is an edge of a hub.
func (h Hub) Enabled() bool { return h.URL != "" }

// DefaultHub returns the [hub] defaults.
func DefaultHub() Hub {
	return Hub{
		Timeout:           DefaultHubTimeout,
		TelemetryInterval: DefaultHubTelemetryInterval,
		TelemetryBatch:    DefaultHubTelemetryBatch,
		TelemetryBuffer:   DefaultHubTelemetryBuffer,
	}
}

var hubKeys = []string{"url", "enroll_token", "name", "labels", "deferrable", "timeout", "telemetry_interval", "telemetry_batch", "telemetry_buffer", "tls"}

// decodeHub reads the [hub] table, if any, into c.Hub and returns it (nil
// when absent) for validateHub's positions.
func (d *decoder) decodeHub(top *table, c *Config) *table {
	t := d.subTable(top, "hub")
	if t == nil {
		return nil
	}
	h := &c.Hub
	if t.str("url", &h.URL) {
		l := t.loc("url")
		h.URL, _ = d.expand(h.URL, l.pos, l.field, false)
	}
	if t.str("enroll_token", &h.EnrollToken) {
		l := t.loc("enroll_token")
		h.EnrollToken, _ = d.expand(h.EnrollToken, l.pos, l.field, true)
	}
	t.str("name", &h.Name)
	t.strList("labels", &h.Labels)
	t.strList("deferrable", &h.Deferrable)
	t.duration("timeout", &h.Timeout)
	t.duration("telemetry_interval", &h.TelemetryInterval)
	var n int64
	if t.integer("telemetry_batch", &n) {
		h.TelemetryBatch = clampInt(n)
	}
	if t.integer("telemetry_buffer", &n) {
		h.TelemetryBuffer = clampInt(n)
	}
	if ct := d.decodeClientTLS(t, &h.TLS); ct != nil {
		d.validateClientTLS(&h.TLS, ct, "hub.tls")
		if h.URL == "" {
			l := t.loc("tls")
			d.add(l.pos, l.field, "is only used with [hub] url")
		}
	}
	t.unknown(hubKeys)
	return t
}

// validateHub checks c.Hub: an http(s) URL without credentials, query or
// fragment (the device authenticates itself; a secret in the URL would
// end up in logs), and bounded telemetry settings.
func (d *decoder) validateHub(c *Config, t *table) {
	h := &c.Hub
	bad := func(key, format string, args ...any) {
		l := metaLoc(t, "hub", key)
		d.add(l.pos, l.field, format, args...)
	}
	if h.URL != "" {
		if problem := hubURLProblem(h.URL); problem != "" {
			bad("url", "%s", problem)
		} else {
			h.URL = strings.TrimRight(h.URL, "/")
		}
	} else if t != nil && (h.EnrollToken != "" || len(h.Deferrable) > 0) {
		bad("url", "is required when [hub] sets enroll_token or deferrable: it names the hub to enroll with")
	}
	if len(h.Name) > 64 {
		bad("name", "must be at most 64 bytes, got %d", len(h.Name))
	}
	if len(h.Labels) > MaxHubLabels {
		bad("labels", "must have at most %d entries, got %d", MaxHubLabels, len(h.Labels))
	}
	for _, l := range h.Labels {
		if l == "" || len(l) > 128 {
			bad("labels", "each label must be 1 to 128 bytes, got %q", l)
			break
		}
	}
	for _, n := range h.Deferrable {
		if n == "" {
			bad("deferrable", "tool names must not be empty")
			break
		}
	}
	if h.Timeout <= 0 || h.Timeout > MaxHubTelemetryInterval {
		bad("timeout", "must be greater than 0 and at most %s, got %s", MaxHubTelemetryInterval, h.Timeout)
	}
	if h.TelemetryInterval < MinHubTelemetryInterval || h.TelemetryInterval > MaxHubTelemetryInterval {
		bad("telemetry_interval", "must be between %s and %s, got %s", MinHubTelemetryInterval, MaxHubTelemetryInterval, h.TelemetryInterval)
	}
	if h.TelemetryBatch < 1 || h.TelemetryBatch > MaxHubTelemetryBatch {
		bad("telemetry_batch", "must be between 1 and %d, got %d", MaxHubTelemetryBatch, h.TelemetryBatch)
	}
	if h.TelemetryBuffer < 1 || h.TelemetryBuffer > MaxHubTelemetryBuffer {
		bad("telemetry_buffer", "must be between 1 and %d, got %d", MaxHubTelemetryBuffer, h.TelemetryBuffer)
	}
}

// hubURLProblem says what is wrong with a hub URL, "" if nothing.
func hubURLProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL: " + err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http:// or https:// URL, got scheme " + strconv.Quote(u.Scheme)
	case u.Host == "":
		return "must name a host, e.g. https://hub.example.com"
	case u.User != nil:
		return "must not carry credentials: the device authenticates with its device key"
	case u.RawQuery != "" || u.Fragment != "":
		return "must not have a query or fragment"
	case strings.TrimRight(u.Path, "/") != "":
		return "must be the hub's base URL without a path (its /mcp and /api/hub are used), got path " + strconv.Quote(u.Path)
	}
	return trustedHostProblem(u.Hostname())
}

// trustedHostProblem says what is wrong with the host of a URL the
// operator trusts (the hub, an OIDC key set), "" if nothing: a form
// resolvers read differently, or an address the egress policy never dials
// for it (metadata, unspecified, multicast, reserved). Private addresses
// are fine there.
func trustedHostProblem(host string) string {
	if err := egress.CheckHost(host); err != nil {
		return err.Error()
	}
	if a, err := netip.ParseAddr(host); err == nil {
		p := egress.Policy{Trusted: true}
		if c, ok := p.Allowed(a); !ok {
			return fmt.Sprintf("points at %s (%s), which the gateway never connects to for it", egress.Normalize(a), c.Describe())
		}
	}
	return ""
}
