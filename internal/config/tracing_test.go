package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTracingParse(t *testing.T) {
	src := `[telemetry.tracing]
endpoint = "https://${COLLECTOR}"
sampling = 0.25
parent_based = false
service_name = "edge-gw"
headers = { authorization = "Bearer ${OTLP_TOKEN}" }
timeout = "3s"

[telemetry.tracing.tls]
ca_file = "/etc/ca.pem"
`
	c, ps := parseT(t, src, map[string]string{"COLLECTOR": "otel.example.com:4318", "OTLP_TOKEN": "s3cret"})
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	tr := c.Telemetry.Tracing
	if !tr.Enabled() || tr.Endpoint != "https://otel.example.com:4318" || tr.Sampling != 0.25 || tr.ParentBased || tr.ServiceName != "edge-gw" ||
		tr.Headers["authorization"] != "Bearer s3cret" || tr.Timeout.D() != 3*time.Second || tr.TLS.CAFile != "/etc/ca.pem" || tr.Protocol != TracingHTTP {
		t.Errorf("tracing: %+v", tr)
	}
	c, ps = parseT(t, "[telemetry.tracing]\nendpoint = \"http://127.0.0.1:4318\"\nsampling = 1\n", nil)
	if ps != nil || c.Telemetry.Tracing.Sampling != 1 || !c.Telemetry.Tracing.ParentBased {
		t.Errorf("integer sampling: %q %+v", ps, c.Telemetry.Tracing)
	}
	c, ps = parseT(t, "[telemetry.tracing]\nendpoint = \"http://127.0.0.1:4317\"\nprotocol = \"grpc\"\n", nil)
	if ps != nil || c.Telemetry.Tracing.Protocol != TracingGRPC {
		t.Errorf("grpc: %q %+v", ps, c.Telemetry.Tracing)
	}
	c, _ = parseT(t, "", nil)
	if c.Telemetry.Tracing.Enabled() || !reflect.DeepEqual(c.Telemetry.Tracing, DefaultTracing()) {
		t.Errorf("default: %+v", c.Telemetry.Tracing)
	}
}

func TestTracingProblems(t *testing.T) {
	tests := []struct{ src, want string }{
		{"[telemetry.tracing]\nendpoint = \"ftp://x\"\n", "telemetry.tracing.endpoint: must be an http:// or https:// URL"},
		{"[telemetry.tracing]\nendpoint = \"http://\"\n", "telemetry.tracing.endpoint: must name a host"},
		{"[telemetry.tracing]\nendpoint = \"http://u:p@h\"\n", "telemetry.tracing.endpoint: must not carry credentials"},
		{"[telemetry.tracing]\nendpoint = \"http://h?x=1\"\n", "telemetry.tracing.endpoint: must not have a query"},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\nprotocol = \"thrift\"\n", "telemetry.tracing.protocol: must be \"http/protobuf\" (OTLP over HTTP) or \"grpc\""},
		{"[telemetry.tracing]\nendpoint = \"http://h:4317/v1/traces\"\nprotocol = \"grpc\"\n", "telemetry.tracing.endpoint: must have no path with protocol = \"grpc\""},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\nsampling = 1.5\n", "telemetry.tracing.sampling: must be between 0 and 1"},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\nsampling = -0.1\n", "telemetry.tracing.sampling: must be between 0 and 1"},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\nsampling = \"all\"\n", "telemetry.tracing.sampling"},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\nservice_name = \"\"\n", "telemetry.tracing.service_name: must be 1 to 128 bytes"},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\ntimeout = \"0s\"\n", "telemetry.tracing.timeout: must be greater than 0"},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\nheaders = { \"a b\" = \"x\" }\n", "telemetry.tracing.headers: \"a b\" is not a valid HTTP header"},
		{"[telemetry.tracing]\nheaders = { a = \"x\" }\n", "telemetry.tracing.endpoint: is required when [telemetry.tracing] sets headers or tls"},
		{"[telemetry.tracing]\nendpoint = \"http://h\"\nexporter = \"x\"\n", "telemetry.tracing"},
		{"[telemetry]\nmetrics = true\n", "telemetry"},
		{"[telemetry.tracing.tls]\ncert_file = \"/c.pem\"\n", "key_file: is required with cert_file"},
	}
	for _, tc := range tests {
		_, ps := parseT(t, tc.src, nil)
		if got := strings.Join(ps, "\n"); !strings.Contains(got, tc.want) {
			t.Errorf("%q: problems %q, want one containing %q", tc.src, got, tc.want)
		}
	}
}
