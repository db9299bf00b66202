package config

import (
	"strings"
	"testing"
	"time"
)

func TestHubParse(t *testing.T) {
	src := `[hub]
url = "http://${HUB_HOST}/"
enroll_token = "${MCPEDGE_ENROLL_TOKEN}"
name = "pi-17"
labels = ["site=berlin", "line=3"]
deferrable = ["everything__echo"]
timeout = "5s"
telemetry_interval = "2s"
telemetry_batch = 50
telemetry_buffer = 10
`
	c, ps := parseT(t, src, map[string]string{"HUB_HOST": "127.0.0.1:9000", "MCPEDGE_ENROLL_TOKEN": "mcpe_enroll_x"})
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	h := c.Hub
	if !h.Enabled() || h.URL != "http://127.0.0.1:9000" || h.EnrollToken != "mcpe_enroll_x" || h.Name != "pi-17" || len(h.Labels) != 2 ||
		len(h.Deferrable) != 1 || h.Timeout.D() != 5*time.Second || h.TelemetryInterval.D() != 2*time.Second || h.TelemetryBatch != 50 || h.TelemetryBuffer != 10 {
		t.Errorf("hub: %+v", h)
	}
	// The enrollment token is needed only once: an unset variable is fine.
	c, ps = parseT(t, "[hub]\nurl = \"https://hub.example.com\"\nenroll_token = \"${MCPEDGE_ENROLL_TOKEN}\"\n", nil)
	if ps != nil || c.Hub.EnrollToken != "" {
		t.Errorf("unset token: %q %q", ps, c.Hub.EnrollToken)
	}
	c, _ = parseT(t, "", nil)
	if c.Hub.Enabled() || c.Hub.TelemetryInterval != DefaultHubTelemetryInterval {
		t.Errorf("default hub: %+v", c.Hub)
	}
}

func TestHubProblems(t *testing.T) {
	tests := []struct{ src, want string }{
		{"[hub]\nurl = \"ftp://x\"\n", "hub.url: must be an http:// or https:// URL"},
		{"[hub]\nurl = \"http://\"\n", "hub.url: must name a host"},
		{"[hub]\nurl = \"http://u:p@h\"\n", "hub.url: must not carry credentials"},
		{"[hub]\nurl = \"http://h/mcp\"\n", "hub.url: must be the hub's base URL without a path"},
		{"[hub]\nurl = \"http://h/?k=1\"\n", "hub.url: must not have a query"},
		{"[hub]\nurl = \"http://169.254.169.254\"\n", "hub.url: points at 169.254.169.254 (link-local/metadata address"},
		{"[hub]\nurl = \"http://[::ffff:169.254.169.254]:80\"\n", "hub.url: points at 169.254.169.254 (link-local/metadata"},
		{"[hub]\nurl = \"http://0x0a000001\"\n", "hub.url: host \"0x0a000001\" is the IPv4 address 10.0.0.1 written in a non-standard form"},
		{"[hub]\nurl = \"${NOPE}\"\n", "hub.url: environment variable NOPE is not set"},
		{"[hub]\nenroll_token = \"t\"\n", "hub.url: is required when [hub] sets enroll_token"},
		{"[hub]\nurl = \"http://h\"\ntelemetry_interval = \"10ms\"\n", "hub.telemetry_interval: must be between 1s and 1h0m0s"},
		{"[hub]\nurl = \"http://h\"\ntelemetry_batch = 0\n", "hub.telemetry_batch: must be between 1 and 5000"},
		{"[hub]\nurl = \"http://h\"\ntelemetry_buffer = 100000\n", "hub.telemetry_buffer: must be between 1 and 10000"},
		{"[hub]\nurl = \"http://h\"\ntimeout = \"0s\"\n", "hub.timeout: must be greater than 0"},
		{"[hub]\nurl = \"http://h\"\ndeferrable = [\"\"]\n", "hub.deferrable: tool names must not be empty"},
		{"[hub]\nurl = \"http://h\"\nlabels = [\"\"]\n", "hub.labels: each label must be 1 to 128 bytes"},
		{"[hub]\nurl = \"http://h\"\nsecret = 1\n", "hub.secret: unknown"},
		{"hub = 3\n", "hub"},
		{"[[upstreams]]\nname = \"hub\"\nurl = \"http://127.0.0.1:1/mcp\"\n", "reserved"},
	}
	for _, tt := range tests {
		_, ps := parseT(t, tt.src, nil)
		if !strings.Contains(strings.Join(ps, "\n"), tt.want) {
			t.Errorf("%q: problems %q, want one containing %q", tt.src, ps, tt.want)
		}
	}
}
