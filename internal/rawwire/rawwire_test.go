package rawwire

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
)

func TestAppendRequestRenamesAndDrops(t *testing.T) {
	params := []byte(`{"name":"gh__search","arguments":{"q":"x","name":"keep"},"_meta":{"a":1},"drop\u006de":true,"extra":[1]}`)
	got, err := AppendRequest(nil, "mcpedge-7", "tools/call", params, func(k, v []byte) ([]byte, bool) {
		switch string(k) {
		case "dropme":
			return nil, false
		case "name":
			return []byte(`"search"`), true
		}
		return nil, true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"jsonrpc":"2.0","id":"mcpedge-7","method":"tools/call","params":{"name":"search","arguments":{"q":"x","name":"keep"},"_meta":{"a":1},"extra":[1]}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if err := jsonguard.Check(got, jsonguard.Limits{}); err != nil {
		t.Fatalf("request is not valid JSON: %v", err)
	}
	got, err = AppendRequest(nil, "1", "ping", nil, nil)
	if err != nil || string(got) != `{"jsonrpc":"2.0","id":"1","method":"ping"}` {
		t.Fatalf("no params: %s, %v", got, err)
	}
	if _, err := AppendRequest(nil, "1", "tools/call", []byte(`[1]`), nil); err == nil {
		t.Fatal("params that are not an object accepted")
	}
}

func TestAppendErrorAndResult(t *testing.T) {
	got := AppendError(nil, []byte(`7`), -32010, "upstream \"x\" down", []byte(`{"retry":1}`))
	want := `{"jsonrpc":"2.0","id":7,"error":{"code":-32010,"message":"upstream \"x\" down","data":{"retry":1}}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := AppendError(nil, nil, -1, "m", nil); string(got) != `{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}` {
		t.Fatalf("no id: %s", got)
	}
	got = append(AppendResult(nil, []byte(`"a"`)), `{"content":[]}`+ResultTail...)
	if string(got) != `{"jsonrpc":"2.0","id":"a","result":{"content":[]}}` {
		t.Fatalf("result: %s", got)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n cr\r tab\t nul\x00 bell\x07", "é中😀", "bad \xff\xfe utf8", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		if err := jsonguard.Check(append(append([]byte(`{"k":`), b...), '}'), jsonguard.Limits{}); err != nil {
			t.Fatalf("AppendString(%q) = %s: not valid JSON: %v", s, b, err)
		}
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json's to %q", s, back, wantBack)
		}
	})
}

func response(ct, body string) *http.Response {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: -1}
}

func TestReadAnswerJSON(t *testing.T) {
	r := NewReader(Limits{})
	a, err := r.ReadAnswer(response("application/json; charset=utf-8", `{"jsonrpc":"2.0","id":"g1","result":{"content":[{"type":"text","text":"hi"}]}}`), "g1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Result) != `{"content":[{"type":"text","text":"hi"}]}` || a.Error != nil {
		t.Fatalf("answer = %s, %v", a.Result, a.Error)
	}
	a.Release()
	a, err = r.ReadAnswer(response("application/json", `{"jsonrpc":"2.0","id":"g1","error":{"code":-32602,"message":"unknown tool \"x\"","data":{"d":1}}}`), "g1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Result != nil || a.Error == nil || a.Error.Code != -32602 || a.Error.Message != `unknown tool "x"` || string(a.Error.Data) != `{"d":1}` {
		t.Fatalf("error answer = %s, %+v", a.Result, a.Error)
	}
}

func TestReadAnswerStreamHandsOverOtherMessages(t *testing.T) {
	body := ": comment\n" +
		"id: prime-0\ndata: \n\n" + "id: prime-1\ndata:\n\n" +
		"event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n" +
		"event: ping\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"ignored\"}\n\n" +
		"retry: 10\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"roots/list\"}\r\n\r\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"id\":\"g2\",\"result\":{\"content\":[]}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"method\":\"after\"}\n\n"
	var others []string
	a, err := NewReader(Limits{}).ReadAnswer(response("text/event-stream", body), "g2", func(msg []byte, env jsonguard.Envelope) {
		others = append(others, env.Method)
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Result) != `{"content":[]}` {
		t.Fatalf("result = %s", a.Result)
	}
	if strings.Join(others, ",") != "notifications/message,roots/list" {
		t.Fatalf("other messages = %q", others)
	}
}

func TestReadAnswerRefusesBadAnswers(t *testing.T) {
	for name, tc := range map[string]struct{ ct, body string }{
		"content type":      {"text/html", `<html>`},
		"invalid json":      {"application/json", `{"jsonrpc":"2.0","id":"g","result":{`},
		"duplicate key":     {"application/json", `{"jsonrpc":"2.0","id":"g","result":{},"result":{}}`},
		"other id":          {"application/json", `{"jsonrpc":"2.0","id":"h","result":{}}`},
		"numeric id":        {"application/json", `{"jsonrpc":"2.0","id":7,"result":{}}`},
		"no answer":         {"application/json", `{"jsonrpc":"2.0","method":"notifications/message","params":{}}`},
		"both":              {"application/json", `{"jsonrpc":"2.0","id":"g","result":{},"error":{"code":1,"message":"m"}}`},
		"bad error":         {"application/json", `{"jsonrpc":"2.0","id":"g","error":{"code":"x","message":"m"}}`},
		"error no message":  {"application/json", `{"jsonrpc":"2.0","id":"g","error":{"code":1}}`},
		"too large":         {"application/json", `{"jsonrpc":"2.0","id":"g","result":{"content":"` + strings.Repeat("x", 200) + `"}}`},
		"stream too large":  {"text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":\"g\",\"result\":{\"c\":\"" + strings.Repeat("x", 200) + "\"}}\n\n"},
		"stream cut":        {"text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":\"g\",\"result\":{}}\n"},
		"stream empty":      {"text/event-stream", ""},
		"stream bad json":   {"text/event-stream", "data: {nope}\n\n"},
		"stream case twist": {"text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"ID\":\"g\",\"result\":{}}\n\n"},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := NewReader(Limits{MaxMessage: 128}).ReadAnswer(response(tc.ct, tc.body), "g", nil)
			if err == nil {
				t.Fatalf("accepted: %s %+v", a.Result, a.Error)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) && !errors.Is(err, ErrNoAnswer) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v (%T) is neither a ProtocolError nor ErrNoAnswer", err, err)
			}
		})
	}
}

// FuzzReadAnswer feeds arbitrary bytes as an upstream's event stream and
// JSON body: never a panic, and an answer it accepts is valid JSON.
func FuzzReadAnswer(f *testing.F) {
	f.Add("data: {\"jsonrpc\":\"2.0\",\"id\":\"g\",\"result\":{\"content\":[]}}\n\n", true)
	f.Add("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"g\",\"error\":{\"code\":1,\"message\":\"m\"}}\n\n", true)
	f.Add(`{"jsonrpc":"2.0","id":"g","result":{}}`, false)
	f.Add("data: {\"a\":\ndata: 1}\r\n\r\n", true)
	r := NewReader(Limits{MaxMessage: 4096})
	f.Fuzz(func(t *testing.T, body string, stream bool) {
		ct := "application/json"
		if stream {
			ct = "text/event-stream"
		}
		a, err := r.ReadAnswer(response(ct, body), "g", func(msg []byte, env jsonguard.Envelope) {
			if !json.Valid(msg) {
				t.Fatalf("other message is not valid JSON: %q", msg)
			}
		})
		if err != nil {
			return
		}
		if a.Error == nil && !json.Valid(a.Result) {
			t.Fatalf("result is not valid JSON: %q", a.Result)
		}
		a.Release()
	})
}

func TestSplitResponse(t *testing.T) {
	res, e, err := SplitResponse([]byte(`{"jsonrpc":"2.0","id":"a","result":{"roots":[]}}`))
	if err != nil || e != nil || string(res) != `{"roots":[]}` {
		t.Fatalf("result: %s %+v %v", res, e, err)
	}
	res, e, err = SplitResponse([]byte(`{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"no"}}`))
	if err != nil || res != nil || e == nil || e.Code != -1 || e.Message != "no" {
		t.Fatalf("error: %s %+v %v", res, e, err)
	}
	for _, bad := range []string{`{"jsonrpc":"2.0","id":"a"}`, `{"id":"a","result":1,"error":{"code":1,"message":"m"}}`, `{"id":"a","error":{"code":"x","message":"m"}}`} {
		if _, _, err := SplitResponse([]byte(bad)); err == nil {
			t.Errorf("SplitResponse(%s) accepted", bad)
		}
	}
}

func TestAppendEventKeepsOneDataLine(t *testing.T) {
	got := AppendEvent(nil, []byte("{\"a\":\r\n 1,\n\"s\":\"x\\ny\"}"))
	want := "event: message\ndata: {\"a\":   1, \"s\":\"x\\ny\"}\n\n"
	if string(got) != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	a, err := NewReader(Limits{}).ReadAnswer(response("text/event-stream", string(AppendEvent(nil, []byte(`{"jsonrpc":"2.0","id":"g","result":{"x":1}}`)))), "g", nil)
	if err != nil || string(a.Result) != `{"x":1}` {
		t.Fatalf("reading it back: %s %v", a.Result, err)
	}
}
