package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func decodeLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if s == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestLoggerDurations(t *testing.T) {
	var b bytes.Buffer
	log := NewLoggerTo(&b, "info")
	log.Info("x", "retry_in", 200*time.Millisecond, "any", any(90*time.Second), "n", 3)
	log.WithGroup("g").Info("y", "grace", 10*time.Second)
	log.Debug("not at info")
	l := decodeLines(t, &b)
	if len(l) != 2 {
		t.Fatalf("%d lines: %s", len(l), b.String())
	}
	if l[0]["retry_in"] != "200ms" || l[0]["any"] != "1m30s" || l[0]["n"] != float64(3) {
		t.Errorf("line: %v", l[0])
	}
	if g, _ := l[1]["g"].(map[string]any); g["grace"] != "10s" {
		t.Errorf("in a group: %v", l[1])
	}
}

func TestSDKLoggerDemotesSessionEvents(t *testing.T) {
	for _, level := range []string{"info", "debug"} {
		var b bytes.Buffer
		log := SDKLogger(NewLoggerTo(&b, level))
		log.Info("server session connected", "session_id", "S")
		log.Warn("calling notifications/tools/list_changed: rejected by transport: undelivered message: stream not connected or already closed")
		log.Warn("keepalive ping failed; tolerating below threshold")
		log.Error("jsonrpc2 internal error")
		lines := decodeLines(t, &b)
		var got []string
		for _, l := range lines {
			if l["component"] != "mcp-sdk" {
				t.Errorf("%s: not tagged: %v", level, l)
			}
			got = append(got, l["level"].(string))
		}
		want := "WARN,ERROR"
		if level == "debug" {
			want = "DEBUG,DEBUG,WARN,ERROR"
		}
		if strings.Join(got, ",") != want {
			t.Errorf("at %s: levels %v, want %s", level, got, want)
		}
	}
}
