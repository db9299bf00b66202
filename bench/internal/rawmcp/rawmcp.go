// Package rawmcp is a deliberately cheap MCP Streamable HTTP client for load
// generation: it posts pre-encoded JSON-RPC bodies with net/http and checks
// answers with byte searches, so that the client's own cost does not mask
// the server's. It speaks the 2025-11-25 session protocol (initialize, then
// Mcp-Session-Id on every request) and accepts both application/json and
// text/event-stream answers.
package rawmcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ProtocolVersion is the version the client asks for.
const ProtocolVersion = "2025-11-25"

// NewHTTPClient returns an HTTP client for loopback load: no proxy, no
// compression, enough idle connections for every worker.
func NewHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
	}, Timeout: 30 * time.Second}
}

// Session is one initialized MCP session. It is not safe for concurrent use:
// give every load worker its own.
type Session struct {
	hc   *http.Client
	url  string
	id   string // Mcp-Session-Id, "" for a sessionless server
	idH  []string
	next int64

	prefix, suffix []byte // tools/call body around the id
	want           []byte // what a successful answer must contain
	minLen         int    // the least bytes a successful answer has
	body           []byte
	buf            bytes.Buffer

	// rotate, if set, are the endpoints Call sends to in turn (the same
	// session on several replicas of a gateway); see Rotate.
	rotate []string
	turn   int
}

// Rotate makes each Call go to the next of urls (replicas sharing the
// session's store), in turn; nil: every Call to the URL the session was
// opened on.
func (s *Session) Rotate(urls []string) { s.rotate, s.turn = urls, 0 }

// Open initializes a session on the MCP endpoint url (initialize, then
// notifications/initialized).
func Open(ctx context.Context, hc *http.Client, url string) (*Session, error) {
	s := &Session{hc: hc, url: url}
	const init = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + ProtocolVersion +
		`","capabilities":{},"clientInfo":{"name":"mcpbench","version":"1"}}}`
	resp, body, err := s.post(ctx, []byte(init))
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"result"`)) {
		return nil, fmt.Errorf("initialize: HTTP %d: %s", resp.StatusCode, trim(body))
	}
	s.id = resp.Header.Get("Mcp-Session-Id")
	s.idH = []string{s.id}
	resp, body, err = s.post(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		return nil, fmt.Errorf("notifications/initialized: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("notifications/initialized: HTTP %d: %s", resp.StatusCode, trim(body))
	}
	s.next = 1
	return s, nil
}

// ID returns the session id ("" if the server issued none).
func (s *Session) ID() string { return s.id }

// Prepare makes Call send tools/call of an echo tool with message, and
// expect the message back as text.
func (s *Session) Prepare(tool, message string) {
	s.PrepareRaw(tool, `{"message":`+strconv.Quote(message)+`}`, `"text":`+strconv.Quote(message))
}

// PrepareRaw makes Call send tools/call of tool with arguments (a JSON
// object), and expect an answer that contains want.
func (s *Session) PrepareRaw(tool, arguments, want string) {
	s.prefix = []byte(`{"jsonrpc":"2.0","id":`)
	s.suffix = []byte(`,"method":"tools/call","params":{"name":` + strconv.Quote(tool) +
		`,"arguments":` + arguments + `}}`)
	s.want = []byte(want)
	s.minLen = 0
}

// ExpectMinBytes makes Call also require answers of at least n bytes (for
// large results, where want alone would not show that all of it arrived).
func (s *Session) ExpectMinBytes(n int) { s.minLen = n }

// ErrToolFailed is returned by Call when the answer is not the expected one.
var ErrToolFailed = errors.New("tools/call did not return the expected result")

// Call sends one tools/call prepared with Prepare and checks the answer.
func (s *Session) Call(ctx context.Context) error {
	s.body = append(s.body[:0], s.prefix...)
	s.body = strconv.AppendInt(s.body, s.next, 10)
	s.body = append(s.body, s.suffix...)
	s.next++
	resp, body, err := s.post(ctx, s.body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(body) < s.minLen || !bytes.Contains(body, s.want) || bytes.Contains(body, []byte(`"isError":true`)) {
		return fmt.Errorf("%w: HTTP %d: %s", ErrToolFailed, resp.StatusCode, trim(body))
	}
	return nil
}

// Close ends the session with DELETE.
func (s *Session) Close(ctx context.Context) error {
	if s.id == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.url, nil)
	if err != nil {
		return err
	}
	req.Header["Mcp-Session-Id"] = []string{s.id}
	req.Header["Mcp-Protocol-Version"] = []string{ProtocolVersion}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

var (
	hdrJSON   = []string{"application/json"}
	hdrAccept = []string{"application/json, text/event-stream"}
	hdrProto  = []string{ProtocolVersion}
)

// post sends body and reads the whole answer into s.buf.
func (s *Session) post(ctx context.Context, body []byte) (*http.Response, []byte, error) {
	url := s.url
	if len(s.rotate) > 0 {
		url = s.rotate[s.turn%len(s.rotate)]
		s.turn++
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	h := req.Header
	h["Content-Type"] = hdrJSON
	h["Accept"] = hdrAccept
	if s.id != "" {
		h["Mcp-Session-Id"] = s.idH
		h["Mcp-Protocol-Version"] = hdrProto
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	s.buf.Reset()
	_, err = s.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	return resp, s.buf.Bytes(), nil
}

func trim(b []byte) string {
	if len(b) > 300 {
		b = b[:300]
	}
	return string(bytes.TrimSpace(b))
}

// Alternate calls every session in turn, n rounds, rotating which one goes
// first every round so that all of them see the same machine load, and
// returns each session's latencies (in round order). The sessions must have
// been prepared; the first error stops it.
func Alternate(ctx context.Context, sessions []*Session, n int) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(sessions))
	for i := range out {
		out[i] = make([]time.Duration, 0, n)
	}
	k := len(sessions)
	for r := range n {
		for j := range k {
			i := (r + j) % k
			t0 := time.Now()
			if err := sessions[i].Call(ctx); err != nil {
				return out, fmt.Errorf("session %d: %w", i, err)
			}
			out[i] = append(out[i], time.Since(t0))
		}
	}
	return out, nil
}
