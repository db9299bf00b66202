// Command testtool is a WASM tool server for wasmtool's tests: each tool
// misbehaves in one way (or proves one property of the sandbox). The MODE
// environment variable makes tools/list misbehave too.
//
// The tests build it with GOOS=wasip1 GOARCH=wasm go build.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

type request struct {
	Method string `json:"method"`
	Params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"params"`
}

type args struct {
	Path string `json:"path"`
	Text string `json:"text"`
	Name string `json:"name"`
	MB   int    `json:"mb"`
	MS   int    `json:"ms"`
	Code int    `json:"code"`
}

var names = []string{"echo", "loop", "sleep", "alloc", "env", "read", "write", "list", "mkdir", "remove",
	"exit", "panic", "garbage", "flood", "two", "counter", "stderr", "empty", "null", "badcontent", "inputreq"}

// calls counts the calls this instance has served: always 1 in a fresh
// instance.
var calls int

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "bad request:", err)
		os.Exit(1)
	}
	if req.Method == "tools/list" {
		list()
		return
	}
	var a args
	_ = json.Unmarshal(req.Params.Arguments, &a)
	calls++
	switch req.Params.Name {
	case "echo":
		reply(map[string]any{"content": []any{text(string(req.Params.Arguments))}, "structuredContent": json.RawMessage(req.Params.Arguments)})
	case "loop":
		x := uint64(1)
		for x != 0 { // never 0: a loop that never calls the host
			x = x*6364136223846793005 + 1442695040888963407
			x |= 1
		}
		reply(result(fmt.Sprint(x)))
	case "sleep":
		time.Sleep(time.Duration(a.MS) * time.Millisecond)
		reply(result("slept"))
	case "alloc":
		b := make([]byte, a.MB<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		reply(result(fmt.Sprintf("allocated %d MiB", len(b)>>20)))
	case "env":
		if a.Name != "" {
			v, ok := os.LookupEnv(a.Name)
			reply(result(fmt.Sprintf("%s=%q set=%v", a.Name, v, ok)))
			return
		}
		reply(result(strings.Join(os.Environ(), "\n")))
	case "read":
		b, err := os.ReadFile(a.Path)
		if err != nil {
			reply(failure(err.Error()))
			return
		}
		reply(result(string(b)))
	case "write":
		if err := os.WriteFile(a.Path, []byte(a.Text), 0o644); err != nil {
			reply(failure(err.Error()))
			return
		}
		reply(result("written"))
	case "list":
		es, err := os.ReadDir(a.Path)
		if err != nil {
			reply(failure(err.Error()))
			return
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		reply(result(strings.Join(out, ",")))
	case "mkdir":
		if err := os.Mkdir(a.Path, 0o755); err != nil {
			reply(failure(err.Error()))
			return
		}
		reply(result("made"))
	case "remove":
		if err := os.Remove(a.Path); err != nil {
			reply(failure(err.Error()))
			return
		}
		reply(result("removed"))
	case "exit":
		fmt.Fprintln(os.Stderr, "exiting on purpose with", a.Code)
		os.Exit(a.Code)
	case "panic":
		panic("on purpose")
	case "garbage":
		fmt.Println("this is not JSON")
	case "flood":
		line := strings.Repeat("x", 1023) + "\n"
		for i := 0; i < a.MB<<10; i++ {
			os.Stdout.WriteString(line)
		}
	case "two":
		reply(result("one"))
		reply(result("two"))
	case "counter":
		reply(result(fmt.Sprint(calls)))
	case "stderr":
		for i := 0; i < 1000; i++ {
			fmt.Fprintf(os.Stderr, "line %d %s\n", i, strings.Repeat("e", 100))
		}
		reply(result("done"))
	case "empty":
		// exits 0 and prints nothing
	case "null":
		fmt.Println("null")
	case "badcontent":
		reply(map[string]any{"content": []any{map[string]any{"type": "hologram"}}})
	case "inputreq":
		reply(map[string]any{"content": []any{text("x")}, "inputRequests": map[string]any{"a": map[string]any{"method": "roots/list", "params": map[string]any{}}}, "requestState": "s", "resultType": "input_required"})
	default:
		reply(failure("unknown tool " + req.Params.Name))
	}
}

func list() {
	switch os.Getenv("MODE") {
	case "garbage":
		fmt.Println("{not json")
		return
	case "exit":
		fmt.Fprintln(os.Stderr, "cannot list today")
		os.Exit(3)
	case "loop":
		for {
			time.Sleep(time.Hour)
		}
	case "noschema":
		reply(map[string]any{"tools": []any{map[string]any{"name": "x"}}})
		return
	case "badname":
		reply(map[string]any{"tools": []any{map[string]any{"name": "has space", "inputSchema": map[string]any{"type": "object"}}}})
		return
	case "dup":
		t := map[string]any{"name": "x", "inputSchema": map[string]any{"type": "object"}}
		reply(map[string]any{"tools": []any{t, t}})
		return
	case "notools":
		reply(map[string]any{"other": 1})
		return
	case "none":
		reply(map[string]any{"tools": []any{}})
		return
	}
	var tools []any
	for _, n := range names {
		tools = append(tools, map[string]any{
			"name":        n,
			"description": "test tool " + n,
			"inputSchema": map[string]any{"type": "object"},
		})
	}
	reply(map[string]any{"tools": tools})
}

func text(s string) map[string]any { return map[string]any{"type": "text", "text": s} }

func result(s string) map[string]any {
	return map[string]any{"content": []any{text(s)}}
}

func failure(s string) map[string]any {
	return map[string]any{"content": []any{text(s)}, "isError": true}
}

func reply(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "writing:", err)
		os.Exit(1)
	}
}
