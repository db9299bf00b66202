package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// contentServer is a go-sdk upstream whose tools return every content type
// the spec defines, structured output, an isError result and a JSON-RPC
// error with data.
func contentServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "content", Version: "1.2.3"}, &mcp.ServerOptions{Instructions: "content fixtures"})
	s.AddTool(&mcp.Tool{Name: "all", InputSchema: json.RawMessage(`{"type":"object"}`), OutputSchema: json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}}}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{
				Meta: mcp.Meta{"vendor/trace": "t-1"},
				Content: []mcp.Content{
					&mcp.TextContent{Text: "héllo ✓", Annotations: &mcp.Annotations{Audience: []mcp.Role{"user"}, Priority: 0.5}},
					&mcp.ImageContent{Data: []byte{0x89, 'P', 'N', 'G'}, MIMEType: "image/png"},
					&mcp.AudioContent{Data: []byte{'R', 'I', 'F', 'F'}, MIMEType: "audio/wav"},
					&mcp.ResourceLink{URI: "file:///tmp/x.txt", Name: "x", MIMEType: "text/plain"},
					&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "mem://blob", MIMEType: "application/octet-stream", Blob: []byte{0, 1, 2, 255}}},
				},
				StructuredContent: map[string]any{"n": 42},
			}, nil
		})
	s.AddTool(&mcp.Tool{Name: "fails", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "tool failed"}}}, nil
		})
	s.AddTool(&mcp.Tool{Name: "rpcerror", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, &jsonrpc.Error{Code: -32042, Message: "custom failure", Data: json.RawMessage(`{"why":"because"}`)}
		})
	s.AddTool(&mcp.Tool{Name: "args", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			// Echo the raw arguments so the test sees exactly what arrived.
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(r.Params.Arguments)}}}, nil
		})
	return s
}

// rawSession speaks Streamable HTTP by hand so results can be compared as
// the JSON on the wire.
type rawSession struct {
	url, id string
	n       int
}

func newRawSession(t *testing.T, url string) *rawSession {
	s := &rawSession{url: url}
	s.call(t, "initialize", map[string]any{"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "raw", "version": "1"}})
	s.notify(t, "notifications/initialized")
	return s
}

func (s *rawSession) post(t *testing.T, body []byte) *http.Response {
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		s.id = id
	}
	return resp
}

func (s *rawSession) notify(t *testing.T, method string) {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method})
	resp := s.post(t, b)
	resp.Body.Close()
}

// call returns the response message (result or error) as generic JSON.
func (s *rawSession) call(t *testing.T, method string, params any) map[string]any {
	t.Helper()
	s.n++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": s.n, "method": method, "params": params})
	resp := s.post(t, b)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(line, `"id"`) {
				data = []byte(line)
			}
		}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v: %s", method, err, data)
	}
	delete(m, "id")
	return m
}

// TestResultFidelity compares, as JSON on the wire, what a client gets from
// a go-sdk upstream directly and through /mcp/<upstream> and /mcp: every
// content type, annotations, _meta, structured output, isError results and
// JSON-RPC errors with data, and that arguments arrive byte for byte.
func TestResultFidelity(t *testing.T) {
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return contentServer() }, nil))
	closeFixture(t, srv)
	gw := startGateway(t, "[server]\n"+upstreamBlock("content", "http", "url = "+q(srv.URL)))

	direct := newRawSession(t, srv.URL)
	per := newRawSession(t, gw.URL+"/mcp/content")
	agg := newRawSession(t, gw.URL+"/mcp")
	for _, tool := range []string{"all", "fails", "rpcerror"} {
		d := direct.call(t, "tools/call", map[string]any{"name": tool, "arguments": map[string]any{}})
		p := per.call(t, "tools/call", map[string]any{"name": tool, "arguments": map[string]any{}})
		a := agg.call(t, "tools/call", map[string]any{"name": "content__" + tool, "arguments": map[string]any{}})
		if !reflect.DeepEqual(d, p) {
			t.Errorf("%s via /mcp/content differs:\ndirect %s\nvia    %s", tool, jsonText(d), jsonText(p))
		}
		if !reflect.DeepEqual(d, a) {
			t.Errorf("%s via /mcp differs:\ndirect %s\nvia    %s", tool, jsonText(d), jsonText(a))
		}
	}
	// Arguments reach the upstream as sent: key order, number spelling and
	// escapes intact.
	raw := json.RawMessage(`{"z":1,"a":[1.50,2e3],"s":"\u00e9\n"}`)
	res := agg.call(t, "tools/call", map[string]any{"name": "content__args", "arguments": raw})
	if got := jsonText(res); !strings.Contains(got, `{\"z\":1,\"a\":[1.50,2e3],\"s\":\"\\u00e9\\n\"}`) {
		t.Errorf("arguments changed on the way: %s", got)
	}
	// Server identity on the per-upstream endpoint is the upstream's.
	ir := (&rawSession{url: gw.URL + "/mcp/content"}).call(t, "initialize", map[string]any{"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "raw", "version": "1"}})
	if got := jsonText(ir); !strings.Contains(got, `"name":"content"`) || !strings.Contains(got, `"version":"1.2.3"`) || !strings.Contains(got, `"instructions":"content fixtures"`) {
		t.Errorf("per-upstream initialize = %s", got)
	}
}

// TestReadNotFoundIsNotResent checks that an upstream's own "not found" for
// a URI the gateway routed reaches the client once, on both endpoints,
// without the gateway asking the upstream again.
func TestReadNotFoundIsNotResent(t *testing.T) {
	var reads atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "res", Version: "1"}, nil)
	s.AddResourceTemplate(&mcp.ResourceTemplate{Name: "docs", URITemplate: "doc://{id}"}, func(ctx context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		reads.Add(1)
		return nil, mcp.ResourceNotFoundError(r.Params.URI)
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	closeFixture(t, srv)
	gw := startGateway(t, "[server]\n"+upstreamBlock("res", "http", "url = "+q(srv.URL)))
	for _, ep := range []string{"/mcp", "/mcp/res"} {
		reads.Store(0)
		cs := goClient(t, gw.URL+ep, nil, "2025-11-25")
		if _, err := cs.ReadResource(ctxT(t, 10*time.Second), &mcp.ReadResourceParams{URI: "doc://missing"}); err == nil {
			t.Errorf("%s: read of a missing document succeeded", ep)
		}
		if n := reads.Load(); n != 1 {
			t.Errorf("%s: upstream asked %d times, want once", ep, n)
		}
	}
}
