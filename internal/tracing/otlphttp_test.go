package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func someSpans(names ...string) []*tracepb.ResourceSpans {
	var out []*tracepb.ResourceSpans
	for _, n := range names {
		out = append(out, &tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: n, TraceId: make([]byte, 16), SpanId: make([]byte, 8)}}}}})
	}
	return out
}

// TestOTLPHTTPSendsAnExportRequest: the body is an
// ExportTraceServiceRequest the collector's own type decodes, with the
// configured headers and the protobuf content type.
func TestOTLPHTTPSendsAnExportRequest(t *testing.T) {
	got := make(chan *coltracepb.ExportTraceServiceRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("Authorization") != "Bearer k" || r.URL.Path != "/v1/traces" {
			t.Errorf("request %s %v", r.URL.Path, r.Header)
		}
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("not an ExportTraceServiceRequest: %v", err)
		}
		got <- &req
	}))
	defer srv.Close()
	c := newOTLPHTTP(srv.URL+"/v1/traces", srv.Client(), map[string]string{"Authorization": "Bearer k"}, 5*time.Second)
	if err := c.UploadTraces(context.Background(), someSpans("a", "b")); err != nil {
		t.Fatal(err)
	}
	req := <-got
	if len(req.ResourceSpans) != 2 || req.ResourceSpans[1].ScopeSpans[0].Spans[0].Name != "b" {
		t.Fatalf("collector got %v", req)
	}
}

// TestOTLPHTTPRetries: 503 and 429 (with Retry-After) are retried until
// the collector takes the batch; 400 is not; a collector that never takes
// it is given up on within the timeout.
func TestOTLPHTTPRetries(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	c := newOTLPHTTP(srv.URL, srv.Client(), nil, 20*time.Second)
	if err := c.UploadTraces(context.Background(), someSpans("a")); err != nil || n.Load() != 3 {
		t.Fatalf("after %d posts: %v, want success on the third", n.Load(), err)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "bad spans", http.StatusBadRequest)
	}))
	defer bad.Close()
	n.Store(0)
	c = newOTLPHTTP(bad.URL, bad.Client(), nil, 20*time.Second)
	if err := c.UploadTraces(context.Background(), someSpans("a")); err == nil || !strings.Contains(err.Error(), "HTTP 400: bad spans") || n.Load() != 1 {
		t.Fatalf("400: %v after %d posts, want one post and its error", err, n.Load())
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer down.Close()
	c = newOTLPHTTP(down.URL, down.Client(), nil, 1500*time.Millisecond)
	start := time.Now()
	if err := c.UploadTraces(context.Background(), someSpans("a")); err == nil || !strings.Contains(err.Error(), "HTTP 502") {
		t.Fatalf("a collector that never takes the batch: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("gave up after %v, past the 1.5 s timeout", time.Since(start))
	}
	_ = c.Stop(context.Background())
}
