package tracing

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOffIsNoop(t *testing.T) {
	p, err := New(config.DefaultTracing(), Options{})
	if err != nil || p.Enabled() {
		t.Fatalf("default config: enabled %v, err %v", p.Enabled(), err)
	}
	_, span := p.Tracer().Start(context.Background(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("a span of the off provider records")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://c:4318":             "http://c:4318/v1/traces",
		"http://c:4318/":            "http://c:4318/v1/traces",
		"https://c/otlp":            "https://c/otlp/v1/traces",
		"https://c/otlp/v1/traces/": "https://c/otlp/v1/traces",
	} {
		if got := tracesURL(in); got != want {
			t.Errorf("tracesURL(%q) = %q, want %q", in, got, want)
		}
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestExportCountedAndFailuresObservable: spans a collector takes are
// counted, with the configured headers sent; spans an unreachable one
// does not take are counted as failed and logged, and never block.
func TestExportCountedAndFailuresObservable(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		if len(b) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	cfg := config.DefaultTracing()
	cfg.Endpoint = srv.URL
	cfg.Headers = map[string]string{"Authorization": "Bearer k"}
	reg := prometheus.NewRegistry()
	p, err := New(cfg, Options{Registry: reg, Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer().Start(context.Background(), "one")
	span.End()
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 1 || got[0] != "/v1/traces Bearer k application/x-protobuf" {
		t.Errorf("collector got %q", got)
	}
	mu.Unlock()
	if n := testutil.ToFloat64(p.exporter.exported); n != 1 {
		t.Errorf("exported %v, want 1", n)
	}
	_ = p.Shutdown(context.Background())

	// A collector that is not there.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg.Endpoint = "http://" + addr
	cfg.Timeout = config.Duration(time.Second)
	logs := &lockedBuf{}
	p, err = New(cfg, Options{Registry: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, span := p.Tracer().Start(context.Background(), "lost")
		span.End()
	}
	// Bounded by the export timeout: the flush returns.
	_ = p.ForceFlush(context.Background())
	if n := testutil.ToFloat64(p.exporter.failed); n != 3 {
		t.Errorf("failed %v, want 3", n)
	}
	if !strings.Contains(logs.String(), "exporting spans failed") {
		t.Errorf("no log line: %q", logs.String())
	}
	_ = p.Shutdown(context.Background())
}
