package tracing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// otlpHTTP is the OTLP/HTTP transport of the exporter: an otlptrace.Client
// that POSTs each batch as an ExportTraceServiceRequest in protobuf to the
// traces URL, retrying what the OTLP specification says to retry (429,
// 502, 503, 504, a connection that failed) with backoff until the export
// timeout.
//
// It stands in for otlptracehttp, whose configuration package links the
// whole gRPC module and, through it, an HTML template executor
// (golang.org/x/net/trace): the Go linker then keeps every exported method
// of the binary, about 12 MB (docs/design/tracing.md). The conversion of
// spans to protobuf stays the OpenTelemetry SDK's (otlptrace).
type otlpHTTP struct {
	url     string
	hc      *http.Client
	headers map[string]string
	timeout time.Duration

	stopOnce sync.Once
	stopped  chan struct{}
}

func newOTLPHTTP(url string, hc *http.Client, headers map[string]string, timeout time.Duration) *otlpHTTP {
	return &otlpHTTP{url: url, hc: hc, headers: headers, timeout: timeout, stopped: make(chan struct{})}
}

func (c *otlpHTTP) Start(context.Context) error { return nil }

func (c *otlpHTTP) Stop(context.Context) error {
	c.stopOnce.Do(func() { close(c.stopped) })
	c.hc.CloseIdleConnections()
	return nil
}

// exportRequest encodes rs as an ExportTraceServiceRequest: its only
// field, resource_spans (1), repeated.
func exportRequest(rs []*tracepb.ResourceSpans) ([]byte, error) {
	var b []byte
	for _, r := range rs {
		m, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b, nil
}

// retryable reports whether an answer with status code is to be retried.
func retryable(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (c *otlpHTTP) UploadTraces(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	if len(rs) == 0 {
		return nil
	}
	body, err := exportRequest(rs)
	if err != nil {
		return fmt.Errorf("encoding the spans: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	wait := time.Second
	for {
		retry, after, err := c.post(ctx, body)
		if err == nil || !retry {
			return err
		}
		if after <= 0 {
			after = wait/2 + rand.N(wait/2+1) // jitter
			wait = min(2*wait, 5*time.Second)
		}
		t := time.NewTimer(after)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up retrying: %w)", err, ctx.Err())
		case <-c.stopped:
			t.Stop()
			return err
		}
	}
}

// post sends one export; retry says whether a failure is worth another
// try, after (if positive) how long the collector asked to wait.
func (c *otlpHTTP) post(ctx context.Context, body []byte) (retry bool, after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return ctx.Err() == nil, 0, fmt.Errorf("exporting spans to %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return false, 0, nil
	}
	err = fmt.Errorf("exporting spans to %s: HTTP %d: %s", c.url, resp.StatusCode, bytes.TrimSpace(snippet))
	if !retryable(resp.StatusCode) {
		return false, 0, err
	}
	if s, convErr := strconv.Atoi(resp.Header.Get("Retry-After")); convErr == nil && s > 0 {
		after = min(time.Duration(s)*time.Second, c.timeout)
	}
	return true, after, err
}
