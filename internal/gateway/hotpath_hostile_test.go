package gateway

// The hot path against an upstream that answers badly: what it relays is
// only ever a valid answer to the client's own request, and the gateway
// goes on serving.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// hostileAnswers are the bad answers to a tools/call, by the tool's name.
func hostileAnswers() map[string]hostileAnswer {
	return map[string]hostileAnswer{
		"good":              hostileResult(`{"content":[{"type":"text","text":"fine"}]}`),
		"invalid_json":      hostileJSON(`{"jsonrpc":"2.0","id":{{id}},"result":{"content":[{"type":"text","text":"cut`),
		"trailing_garbage":  hostileJSON(`{"jsonrpc":"2.0","id":{{id}},"result":{"content":[]}} {"x":1}`),
		"other_id":          hostileJSON(`{"jsonrpc":"2.0","id":"someone-else","result":{"content":[{"type":"text","text":"not yours"}]}}`),
		"numeric_id":        hostileJSON(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"not yours"}]}}`),
		"duplicate_keys":    hostileResult(`{"content":[{"type":"text","text":"a"}],"content":[{"type":"text","text":"b"}]}`),
		"duplicate_result":  hostileJSON(`{"jsonrpc":"2.0","id":{{id}},"result":{"content":[]},"result":{"content":[{"type":"text","text":"b"}]}}`),
		"duplicate_in_item": hostileResult(`{"content":[{"type":"text","text":"a","text":"b"}]}`),
		"array_result":      hostileResult(`[{"type":"text","text":"a"}]`),
		"string_result":     hostileResult(`"a"`),
		"null_result":       hostileResult(`null`),
		"content_string":    hostileResult(`{"content":"a"}`),
		"is_error_string":   hostileResult(`{"content":[{"type":"text","text":"not json-rpc"}],"isError":"yes"}`),
		"is_error_number":   hostileResult(`{"content":[{"type":"text","text":"not json-rpc"}],"isError":1}`),
		"result_and_error":  hostileJSON(`{"jsonrpc":"2.0","id":{{id}},"result":{"content":[]},"error":{"code":1,"message":"x"}}`),
		"error_no_message":  hostileJSON(`{"jsonrpc":"2.0","id":{{id}},"error":{"code":1}}`),
		"not_json_type": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("hello"))
		},
		"input_requests": hostileResult(`{"content":[],"inputRequests":{"r1":{"method":"roots/list","params":{}}}}`),
		"result_type":    hostileResult(`{"content":[],"resultType":"input_required"}`),
		"http_500": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"result":{"content":[{"type":"text","text":"from a 500"}]}}`))
		},
		"http_202": func(w http.ResponseWriter, _ hostileMsg, _ *hotHostile) { w.WriteHeader(http.StatusAccepted) },
		"sse_ends_early": func(w http.ResponseWriter, _ hostileMsg, _ *hotHostile) {
			sse(w, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"working"}}`)
		},
		"sse_cut_event": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[]}}", msg.ID) // no blank line: never dispatched
		},
		"sse_invalid": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			sse(w, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x","data":"y"}}`,
				`{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[]}}`)
		},
		"sse_other_id": func(w http.ResponseWriter, _ hostileMsg, _ *hotHostile) {
			sse(w, `{"jsonrpc":"2.0","id":"mcpedge-999999","result":{"content":[{"type":"text","text":"not yours"}]}}`)
		},
		"huge": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			// More than the reader's 64 MiB, with no Content-Length.
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"result":{"content":[{"type":"text","text":"`))
			chunk := bytes.Repeat([]byte("a"), 1<<20)
			for range 66 {
				if _, err := w.Write(chunk); err != nil {
					return // the gateway hung up
				}
			}
			_, _ = w.Write([]byte(`"}]}}`))
		},
		"huge_declared": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(100<<20))
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"result":{"content":[`))
		},
		"sse_huge_event": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\""))
			chunk := bytes.Repeat([]byte("a"), 1<<20)
			for range 66 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			_, _ = w.Write([]byte("\"}}\n\n"))
		},
	}
}

// TestHotPathHostileUpstream: each bad answer of an upstream to a hot-path
// call reaches the client as a JSON-RPC error to its own request — never
// as a hang, a broken HTTP answer, or the upstream's bytes — and the next
// call is served.
func TestHotPathHostileUpstream(t *testing.T) {
	answers := hostileAnswers()
	h := newHotHostile(t, answers)
	g, url := hotGateway(t, upstreamBlock("h", h.url), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	c := newRawClientWith(t, url+"/mcp", "", `{}`)

	good := func(t *testing.T, id int) {
		t.Helper()
		hot := hotCount(t, g, "hot", "")
		a := c.callTool(id, `{"name":"h__good","arguments":{}}`)
		if a.Status != http.StatusOK || string(a.Msg["result"]) != `{"content":[{"type":"text","text":"fine"}]}` {
			t.Fatalf("the next call: HTTP %d: %s", a.Status, a.Body)
		}
		if !hotReached(t, g, "hot", "", hot+1) {
			t.Fatal("the next call did not take the hot path")
		}
	}
	good(t, 1)
	var names []string
	for name := range answers {
		if name != "good" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			id := 100 + 2*i
			hot := hotCount(t, g, "hot", "")
			start := time.Now()
			a := c.callTool(id, `{"name":"h__`+name+`","arguments":{}}`)
			t.Logf("after %v: HTTP %d %s: %.300s", time.Since(start), a.Status, a.ContentType, a.Body)
			if !hotReached(t, g, "hot", "", hot+1) {
				t.Error("the call did not take the hot path")
			}
			if a.Status != http.StatusOK || a.ContentType != "application/json" || a.Msg == nil {
				t.Fatalf("HTTP %d %s: %.300s, want a JSON-RPC answer", a.Status, a.ContentType, a.Body)
			}
			if got := a.decoded("id"); got != float64(id) || a.decoded("jsonrpc") != "2.0" {
				t.Errorf("answer to id %v (%v), want %d", got, a.decoded("jsonrpc"), id)
			}
			var e struct {
				Code    *int64
				Message string
			}
			if a.Msg["result"] != nil || json.Unmarshal(a.Msg["error"], &e) != nil || e.Code == nil || e.Message == "" {
				t.Errorf("want a JSON-RPC error with a code and a message, got %.300s", a.Body)
			}
			if len(a.Msg) != 3 {
				t.Errorf("members beside jsonrpc, id and error: %.300s", a.Body)
			}
			// (An HTTP error's body is quoted in the message, clipped.)
			for _, leak := range []string{"not yours", "not json-rpc", h.url} {
				if strings.Contains(string(a.Body), leak) {
					t.Errorf("the answer carries %q: %.300s", leak, a.Body)
				}
			}
			if len(a.Body) > 4096 {
				t.Errorf("an error of %d bytes", len(a.Body))
			}
			good(t, id+1)
		})
	}
}

// TestHotPathUpstreamForgotSession: an upstream that answers a hot-path
// call's POST with HTTP 404 (it no longer knows the session, and did not
// run the call) does not lose the call: it goes through the SDK client,
// which gets an answer, or reports the lost session as an error.
func TestHotPathUpstreamForgotSession(t *testing.T) {
	var onceGone atomic.Int32
	answers := map[string]hostileAnswer{
		"gone_once": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			if onceGone.Add(1) == 1 {
				http.Error(w, "session not found", http.StatusNotFound)
				return
			}
			hostileResult(`{"content":[{"type":"text","text":"second time"}]}`)(w, msg, nil)
		},
		"gone_always": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			http.Error(w, "session not found", http.StatusNotFound)
		},
		"good": hostileResult(`{"content":[{"type":"text","text":"fine"}]}`),
	}
	h := newHotHostile(t, answers)
	g, url := hotGateway(t, upstreamBlock("h", h.url), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	c := newRawClientWith(t, url+"/mcp", "", `{}`)

	a := c.callTool(1, `{"name":"h__gone_once","arguments":{}}`)
	calls := h.toolCalls()
	if len(calls) != 2 || !strings.HasPrefix(string(calls[0].ID), `"mcpedge-`) {
		t.Errorf("the upstream got %d tools/call, want the hot path's and then the SDK client's: %v", len(calls), calls)
	}
	if a.Status != http.StatusOK || string(a.Msg["result"]) != `{"content":[{"type":"text","text":"second time"}]}` {
		t.Errorf("after a 404: HTTP %d: %s, want the second answer", a.Status, a.Body)
	}
	if !hotReached(t, g, "hot", "", 1) {
		t.Errorf("the call was not counted on the hot path")
	}

	a = c.callTool(2, `{"name":"h__gone_always","arguments":{}}`)
	t.Logf("404 each time: HTTP %d: %s", a.Status, a.Body)
	var e struct{ Message string }
	if a.Status != http.StatusOK || a.Msg == nil || a.Msg["result"] != nil || json.Unmarshal(a.Msg["error"], &e) != nil || e.Message == "" {
		t.Errorf("404 each time: HTTP %d: %s, want a JSON-RPC error", a.Status, a.Body)
	}
	if n := len(h.toolCalls()) - len(calls); n < 2 {
		t.Errorf("404 each time: the upstream got %d tools/call, want the hot path's and the SDK client's", n)
	}

	if !waitFor(t, "the next call served", 20*time.Second, func() bool {
		a := c.callTool(3, `{"name":"h__good","arguments":{}}`)
		return a.Status == http.StatusOK && a.Msg["result"] != nil
	}) {
		t.Error("the gateway no longer serves the upstream's tools")
	}
}

// TestHotPathUpstreamStreamMessages: an upstream's notifications and
// requests on a hot-path call's stream, before its answer, are handled
// while the upstream waits for the answers: its ping is answered by the
// gateway, an unknown method refused, and its roots/list, sampling and
// elicitation requests are put to the call's own client on the call's
// stream, whose answers reach the upstream unchanged; its logs reach the
// client; the call then completes.
func TestHotPathUpstreamStreamMessages(t *testing.T) {
	asks := []string{
		`{"jsonrpc":"2.0","id":"ping-1","method":"ping"}`,
		`{"jsonrpc":"2.0","id":"roots-1","method":"roots/list","params":{}}`,
		`{"jsonrpc":"2.0","id":"sampling-1","method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}],"maxTokens":10}}`,
		`{"jsonrpc":"2.0","id":"elicit-1","method":"elicitation/create","params":{"message":"name?","requestedSchema":{"type":"object","properties":{"name":{"type":"string"}}}}}`,
		`{"jsonrpc":"2.0","id":7,"method":"no/such/method"}`,
	}
	ids := []string{`"ping-1"`, `"roots-1"`, `"sampling-1"`, `"elicit-1"`, `7`}
	// What the client answers, by method, and so what the upstream must
	// get back.
	clientAnswers := map[string]string{
		"roots/list":             `{"roots":[{"uri":"file:///home/me/project","name":"mine"}]}`,
		"sampling/createMessage": `{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}`,
		"elicitation/create":     `{"action":"accept","content":{"name":"me"}}`,
	}
	var mu sync.Mutex
	got := map[string]json.RawMessage{} // id -> the gateway's response
	answers := map[string]hostileAnswer{
		"chatty": func(w http.ResponseWriter, msg hostileMsg, h *hotHostile) {
			sse(w, append([]string{
				`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"chatty","data":"starting"}}`,
				`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"nobody's","progress":1}}`,
			}, asks...)...)
			for _, id := range ids {
				select {
				case b := <-h.response(id):
					mu.Lock()
					got[id] = b
					mu.Unlock()
				case <-time.After(10 * time.Second):
				}
			}
			sse(w, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"done"}}`,
				`{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[{"type":"text","text":"after asking"}]}}`)
		},
	}
	h := newHotHostile(t, answers)
	g, url := hotGateway(t, upstreamBlock("h", h.url), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	c := newRawClientWith(t, url+"/mcp", "", `{"roots":{},"sampling":{},"elicitation":{}}`)
	if a := c.exchange(`{"jsonrpc":"2.0","id":0,"method":"logging/setLevel","params":{"level":"info"}}`); a.Msg["result"] == nil {
		t.Fatalf("logging/setLevel: HTTP %d: %s", a.Status, a.Body)
	}
	events := c.stream()

	start := time.Now()
	var asked []string
	a, seen := c.callAnswering(1, `{"name":"h__chatty","arguments":{}}`, func(method string, _ json.RawMessage) (string, string) {
		asked = append(asked, method)
		if r, ok := clientAnswers[method]; ok {
			return "result", r
		}
		return "error", `{"code":-32601,"message":"no such method"}`
	})
	if a.Status != http.StatusOK || string(a.Msg["result"]) != `{"content":[{"type":"text","text":"after asking"}]}` {
		t.Fatalf("HTTP %d: %s", a.Status, a.Body)
	}
	if !hotReached(t, g, "hot", "", 1) {
		t.Error("the call did not take the hot path")
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the call took %v: the upstream waited in vain for an answer", d)
	}
	if want := []string{"roots/list", "sampling/createMessage", "elicitation/create"}; !slices.Equal(asked, want) {
		t.Errorf("the client was asked %v on the call's stream, want %v (seen: %q)", asked, want, seen)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		b, ok := got[id]
		if !ok {
			t.Errorf("request %s of the upstream was never answered", id)
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil || string(m["jsonrpc"]) != `"2.0"` || string(m["id"]) != id || (m["result"] == nil) == (m["error"] == nil) {
			t.Errorf("answer to %s: %s", id, b)
		}
		t.Logf("answer to %s: %s", id, b)
	}
	if b := got[`"ping-1"`]; string(b) != `{"jsonrpc":"2.0","id":"ping-1","result":{}}` {
		t.Errorf("ping answered %s", b)
	}
	if b := got[`7`]; !strings.Contains(string(b), `"code":-32601`) {
		t.Errorf("an unknown method answered %s, want -32601", b)
	}
	for i, method := range []string{"roots/list", "sampling/createMessage", "elicitation/create"} {
		var m struct{ Result json.RawMessage }
		if err := json.Unmarshal(got[ids[i+1]], &m); err != nil || !jsonEqual(m.Result, clientAnswers[method]) {
			t.Errorf("%s: the upstream got %s, want the client's result %s", method, got[ids[i+1]], clientAnswers[method])
		}
	}
	// The upstream's log reaches the client: on the call's stream (where a
	// client behind a load balancer without affinity finds it: sessions.go,
	// logOnCall), or on its own stream.
	for _, want := range []string{`"data":"starting"`, `"data":"done"`} {
		if slices.ContainsFunc(seen, func(m string) bool {
			return strings.Contains(m, `"notifications/message"`) && strings.Contains(m, want)
		}) {
			continue
		}
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("the client's stream ended before the log %s", want)
				}
				if strings.Contains(e, `"notifications/message"`) && strings.Contains(e, want) {
					break wait
				}
			case <-timeout:
				t.Fatalf("the upstream's log %s never reached the client", want)
			}
		}
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a []byte, b string) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal([]byte(b), &vb) == nil && reflect.DeepEqual(va, vb)
}

// TestHotPathUpstreamRequestStaysWithItsCall: a request an upstream sends
// on a hot-path call's own stream belongs to that call: it is put to that
// call's client, never to another client whose call on the same upstream
// happens to be in flight (which would hand one client's roots, or an
// upstream's prompt, to another).
func TestHotPathUpstreamRequestStaysWithItsCall(t *testing.T) {
	askerIn, holdIn, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	var answer []byte
	answers := map[string]hostileAnswer{
		"asker": func(w http.ResponseWriter, msg hostileMsg, h *hotHostile) {
			sse(w)
			close(askerIn)
			select {
			case <-holdIn: // the other client's call is in flight, begun after this one
			case <-time.After(10 * time.Second):
			}
			sse(w, `{"jsonrpc":"2.0","id":"roots-1","method":"roots/list","params":{}}`)
			select {
			case answer = <-h.response(`"roots-1"`):
			case <-time.After(10 * time.Second):
			}
			sse(w, `{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[{"type":"text","text":"asked"}]}}`)
		},
		"hold": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			sse(w)
			holdOnce.Do(func() { close(holdIn) })
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			sse(w, `{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[{"type":"text","text":"held"}]}}`)
		},
	}
	h := newHotHostile(t, answers)
	g, url := hotGateway(t, upstreamBlock("h", h.url), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)

	// The other client answers roots/list with a root of its own.
	other := mcp.NewClient(&mcp.Implementation{Name: "other", Version: "1"}, nil)
	other.AddRoots(&mcp.Root{URI: "file:///home/other/secret", Name: "other's"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ocs, err := other.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url + "/mcp", MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer ocs.Close()

	c := newRawClientWith(t, url+"/mcp", "", `{"roots":{}}`)
	type result struct {
		a    rawAnswer
		seen []string
	}
	done := make(chan result, 1)
	go func() {
		a, seen := c.callAnswering(1, `{"name":"h__asker","arguments":{}}`, func(method string, _ json.RawMessage) (string, string) {
			return "result", `{"roots":[{"uri":"file:///home/me/project","name":"mine"}]}`
		})
		done <- result{a, seen}
	}()
	select {
	case <-askerIn:
	case <-time.After(20 * time.Second):
		t.Fatal("the hot-path call never reached the upstream")
	}
	held := make(chan error, 1)
	go func() {
		_, err := ocs.CallTool(ctx, &mcp.CallToolParams{Name: "h__hold", Arguments: map[string]any{}})
		held <- err
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(25 * time.Second):
		t.Fatal("the hot-path call never ended")
	}
	close(release)
	if err := <-held; err != nil {
		t.Errorf("the other client's call: %v", err)
	}
	if r.a.Status != http.StatusOK || string(r.a.Msg["result"]) != `{"content":[{"type":"text","text":"asked"}]}` {
		t.Errorf("the hot-path call: HTTP %d: %s", r.a.Status, r.a.Body)
	}
	if !hotReached(t, g, "hot", "", 2) {
		t.Errorf("hot-path calls: %v, want 2", hotCount(t, g, "hot", ""))
	}
	t.Logf("the upstream's roots/list was answered %s", answer)
	var m struct {
		ID     string
		Result json.RawMessage
	}
	if err := json.Unmarshal(answer, &m); err != nil || m.ID != "roots-1" || !jsonEqual(m.Result, `{"roots":[{"uri":"file:///home/me/project","name":"mine"}]}`) {
		t.Errorf("roots/list of the hot-path call answered %s, want the hot-path client's roots", answer)
	}
	if len(r.seen) != 1 || !strings.Contains(r.seen[0], `"method":"roots/list"`) {
		t.Errorf("the hot-path client saw %q on its call's stream, want the roots/list", r.seen)
	}
}

// TestHotPathElicitationNeedsTheCapability: an upstream's elicitation
// during a hot-path call is put to the client only if the client declared
// it can answer that kind (form or URL), as the SDK's way does; otherwise
// the upstream is refused and the client never sees it.
func TestHotPathElicitationNeedsTheCapability(t *testing.T) {
	form := `{"jsonrpc":"2.0","id":"elicit-1","method":"elicitation/create","params":{"message":"name?","requestedSchema":{"type":"object","properties":{"name":{"type":"string"}}}}}`
	url := `{"jsonrpc":"2.0","id":"elicit-1","method":"elicitation/create","params":{"mode":"url","message":"go there","url":"https://example.com/x","elicitationId":"e1"}}`
	for _, tc := range []struct {
		name, caps, ask string
		asked           bool
	}{
		{"no capabilities", `{}`, form, false},
		{"roots and sampling only", `{"roots":{},"sampling":{}}`, form, false},
		{"form", `{"elicitation":{}}`, form, true},
		{"form declared", `{"elicitation":{"form":{}}}`, form, true},
		{"url only, asked a form", `{"elicitation":{"url":{}}}`, form, false},
		{"form only, asked a url", `{"elicitation":{"form":{}}}`, url, false},
		{"url", `{"elicitation":{"url":{}}}`, url, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, hot := range []bool{true, false} {
				var got []byte
				answers := map[string]hostileAnswer{
					"ask": func(w http.ResponseWriter, msg hostileMsg, h *hotHostile) {
						sse(w, tc.ask)
						select {
						case got = <-h.response(`"elicit-1"`):
						case <-time.After(10 * time.Second):
						}
						sse(w, `{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[]}}`)
					},
				}
				h := newHotHostile(t, answers)
				g, gw := hotGateway(t, upstreamBlock("h", h.url), hot, nil, HTTPOptions{})
				waitTargetsReady(t, g, 1)
				c := newRawClientWith(t, gw+"/mcp", "", tc.caps)
				asked := false
				a, _ := c.callAnswering(1, `{"name":"h__ask","arguments":{}}`, func(method string, _ json.RawMessage) (string, string) {
					asked = asked || method == "elicitation/create"
					if strings.Contains(tc.ask, `"mode":"url"`) {
						return "result", `{"action":"accept"}`
					}
					return "result", `{"action":"accept","content":{"name":"me"}}`
				})
				if a.Msg["result"] == nil {
					t.Errorf("hot_path=%v: the call: HTTP %d: %s", hot, a.Status, a.Body)
				}
				if asked != tc.asked {
					t.Errorf("hot_path=%v: the client was asked: %v, want %v", hot, asked, tc.asked)
				}
				var m struct {
					Result json.RawMessage
					Error  *struct{ Message string }
				}
				if err := json.Unmarshal(got, &m); err != nil || (m.Error == nil) != tc.asked {
					t.Errorf("hot_path=%v: the upstream got %s", hot, got)
				}
				if hot && !hotReached(t, g, "hot", "", 1) {
					t.Errorf("not served on the hot path")
				}
			}
		})
	}
}

// askingUpstream's tool "ask" asks its client for its roots, a sampling
// and a form elicitation, and answers with what the client said.
func askingUpstream() *mcp.Server {
	s := legacyOnly("asking", nil)
	secTool(s, "ask", func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		roots, err := r.Session.ListRoots(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("roots: %w", err)
		}
		msg, err := r.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}})
		if err != nil {
			return nil, fmt.Errorf("sampling: %w", err)
		}
		el, err := r.Session.Elicit(ctx, &mcp.ElicitParams{Message: "name?", RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string","default":"x"}}}`)})
		if err != nil {
			return nil, fmt.Errorf("elicitation: %w", err)
		}
		b, _ := json.Marshal(map[string]any{"roots": roots, "sampling": msg, "elicitation": el})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
	})
	return s
}

// TestHotPathQuestionsParity: the requests an upstream makes of the client
// during a hot-path call reach the client as the SDK's way sends them —
// the same methods, the same params — whether the upstream asks on the
// call's own stream (Streamable HTTP: relayed) or on a connection the SDK
// client reads (the legacy SSE transport: through the sink); and the
// client's answers reach the upstream the same.
func TestHotPathQuestionsParity(t *testing.T) {
	sseSrv := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return askingUpstream() }, nil))
	t.Cleanup(sseSrv.Close)
	for _, up := range []struct{ name, block string }{
		{"streamable", upstreamBlock("asking", startHTTPUpstream(t, askingUpstream()))},
		{"sse", "\n[[upstreams]]\nname = \"asking\"\ntransport = \"sse\"\nurl = \"" + sseSrv.URL + "\"\n"},
	} {
		t.Run(up.name, func(t *testing.T) {
			type run struct {
				a    rawAnswer
				asks []any
			}
			runs := map[bool]run{}
			for _, hot := range []bool{true, false} {
				g, url := hotGateway(t, up.block, hot, nil, HTTPOptions{})
				waitTargetsReady(t, g, 1)
				c := newRawClientWith(t, url+"/mcp", "", `{"roots":{},"sampling":{},"elicitation":{}}`)
				var asks []any
				a, _ := c.callAnswering(1, `{"name":"asking__ask","arguments":{}}`, func(method string, params json.RawMessage) (string, string) {
					var p any
					_ = json.Unmarshal(params, &p)
					asks = append(asks, map[string]any{"method": method, "params": p})
					switch method {
					case "roots/list":
						return "result", `{"roots":[{"uri":"file:///home/me","name":"me"}]}`
					case "sampling/createMessage":
						return "result", `{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}`
					case "elicitation/create":
						return "result", `{"action":"accept","content":{"name":"Ada"}}`
					}
					return "error", `{"code":-32601,"message":"no"}`
				})
				if hot && !hotReached(t, g, "hot", "", 1) {
					t.Error("not served on the hot path")
				}
				runs[hot] = run{a, asks}
			}
			h, s := runs[true], runs[false]
			if !reflect.DeepEqual(h.asks, s.asks) {
				t.Errorf("the client was asked differently:\nhot: %v\nsdk: %v", h.asks, s.asks)
			}
			if !reflect.DeepEqual(h.a.decoded("result"), s.a.decoded("result")) || h.a.Msg["result"] == nil {
				t.Errorf("answers differ:\nhot: %s\nsdk: %s", h.a.Body, s.a.Body)
			}
		})
	}
}

// TestHotPathRelayedQuestionsParity: requests a hand-written upstream
// makes on a hot-path call's stream, in the shapes other SDKs write them
// (roots/list without params or with null params, an elicitation without
// its mode), reach the client as the SDK's way sends them, and their
// answers reach the upstream.
func TestHotPathRelayedQuestionsParity(t *testing.T) {
	asks := []string{
		`{"jsonrpc":"2.0","id":"q1","method":"roots/list"}`,
		`{"jsonrpc":"2.0","id":"q2","method":"roots/list","params":null}`,
		`{"jsonrpc":"2.0","id":"q3","method":"elicitation/create","params":{"message":"name?","requestedSchema":{"type":"object","properties":{"name":{"type":"string","default":"x"},"pet":{"type":"string","enum":["cat","dog"]}}}}}`,
		`{"jsonrpc":"2.0","id":"q4","method":"elicitation/create","params":{"message":"go","url":"https://example.com/auth","elicitationId":"e1"}}`,
		`{"jsonrpc":"2.0","id":"q5","method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}],"maxTokens":10}}`,
	}
	ids := []string{`"q1"`, `"q2"`, `"q3"`, `"q4"`, `"q5"`}
	type run struct {
		asks []any
		got  map[string]string
	}
	runs := map[bool]run{}
	for _, hot := range []bool{true, false} {
		var mu sync.Mutex
		got := map[string]string{}
		h := newHotHostile(t, map[string]hostileAnswer{
			"ask": func(w http.ResponseWriter, msg hostileMsg, h *hotHostile) {
				for i, q := range asks { // one at a time, as an upstream waiting for each answer
					sse(w, q)
					select {
					case b := <-h.response(ids[i]):
						var m map[string]any
						_ = json.Unmarshal(b, &m)
						delete(m, "id")
						s, _ := json.Marshal(m)
						mu.Lock()
						got[ids[i]] = string(s)
						mu.Unlock()
					case <-time.After(10 * time.Second):
					}
				}
				sse(w, `{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[]}}`)
			},
		})
		g, url := hotGateway(t, upstreamBlock("h", h.url), hot, nil, HTTPOptions{})
		waitTargetsReady(t, g, 1)
		c := newRawClientWith(t, url+"/mcp", "", `{"roots":{},"sampling":{},"elicitation":{"form":{},"url":{}}}`)
		var seen []any
		a, _ := c.callAnswering(1, `{"name":"h__ask","arguments":{}}`, func(method string, params json.RawMessage) (string, string) {
			var p any
			if params != nil {
				_ = json.Unmarshal(params, &p)
			}
			seen = append(seen, map[string]any{"method": method, "params": p, "has_params": params != nil})
			switch method {
			case "roots/list":
				return "result", `{"roots":[{"uri":"file:///home/me","name":"me"}]}`
			case "sampling/createMessage":
				return "result", `{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}`
			}
			if strings.Contains(string(params), `"url"`) {
				return "result", `{"action":"accept"}`
			}
			return "result", `{"action":"accept","content":{"name":"Ada","pet":"cat"}}`
		})
		if a.Msg["result"] == nil {
			t.Errorf("hot_path=%v: HTTP %d: %s", hot, a.Status, a.Body)
		}
		if hot && !hotReached(t, g, "hot", "", 1) {
			t.Error("not served on the hot path")
		}
		mu.Lock()
		runs[hot] = run{seen, got}
		mu.Unlock()
	}
	h, s := runs[true], runs[false]
	if len(s.asks) != len(asks) {
		t.Fatalf("the SDK's way asked the client %d times, want %d: %v", len(s.asks), len(asks), s.asks)
	}
	for i := range s.asks {
		if i >= len(h.asks) || !reflect.DeepEqual(h.asks[i], s.asks[i]) {
			var hv any
			if i < len(h.asks) {
				hv = h.asks[i]
			}
			t.Errorf("request %d reached the client differently:\nhot: %v\nsdk: %v", i+1, hv, s.asks[i])
		}
	}
	for _, id := range ids {
		if h.got[id] != s.got[id] || s.got[id] == "" {
			t.Errorf("the upstream got for %s:\nhot: %s\nsdk: %s", id, h.got[id], s.got[id])
		}
	}
}

// TestHotPathUpstreamPrimingEvent: an upstream whose event streams begin
// with a priming event (SEP-1699: an event id and no data, as the
// TypeScript SDK's server sends with an event store) is answered on the
// hot path, as the SDK client reads it.
func TestHotPathUpstreamPrimingEvent(t *testing.T) {
	h := newHotHostile(t, map[string]hostileAnswer{
		"primed": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "id: prime-1\nretry: 1000\ndata: \n\n")
			fmt.Fprintf(w, "id: prime-2\ndata:\n\n")
			sse(w, `{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[{"type":"text","text":"after priming"}]}}`)
		},
	})
	g, url := hotGateway(t, upstreamBlock("h", h.url), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	c := newRawClientWith(t, url+"/mcp", "", `{}`)
	a := c.callTool(1, `{"name":"h__primed","arguments":{}}`)
	if a.Status != http.StatusOK || string(a.Msg["result"]) != `{"content":[{"type":"text","text":"after priming"}]}` {
		t.Errorf("HTTP %d: %s", a.Status, a.Body)
	}
	if !hotReached(t, g, "hot", "", 1) {
		t.Error("not served on the hot path")
	}
}
