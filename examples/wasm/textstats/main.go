// Command textstats is a WebAssembly tool server for mcpedge: one tool,
// "textstats", that counts the lines, words, characters and bytes of a text.
// It is pure computation, the simplest kind of WASM tool.
//
// Build it for the gateway with
//
//	GOOS=wasip1 GOARCH=wasm go build -o textstats.wasm .
//
// and configure it as an upstream with transport = "wasm" (see docs/wasm.md).
//
// The module speaks mcpedge's WASM tool ABI: it reads one JSON request from
// stdin and writes one JSON response to stdout, then exits. It uses only the
// standard library, so it can be copied out of this repository as the start
// of a new tool.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// request is what the gateway writes to stdin.
type request struct {
	Method string `json:"method"`
	Params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"params"`
}

var tools = []any{map[string]any{
	"name":        "textstats",
	"title":       "Text statistics",
	"description": "Counts the lines, words, characters (Unicode code points) and bytes of a text.",
	"inputSchema": map[string]any{
		"type": "object",
		"properties": map[string]any{
			"text": map[string]any{"type": "string", "description": "The text to measure."},
		},
		"required":             []string{"text"},
		"additionalProperties": false,
	},
	"outputSchema": map[string]any{
		"type": "object",
		"properties": map[string]any{
			"lines": map[string]any{"type": "integer"},
			"words": map[string]any{"type": "integer"},
			"chars": map[string]any{"type": "integer"},
			"bytes": map[string]any{"type": "integer"},
		},
		"required": []string{"lines", "words", "chars", "bytes"},
	},
	"annotations": map[string]any{"readOnlyHint": true, "openWorldHint": false},
}}

type stats struct {
	Lines int `json:"lines"`
	Words int `json:"words"`
	Chars int `json:"chars"`
	Bytes int `json:"bytes"`
}

func count(s string) stats {
	st := stats{Words: len(strings.Fields(s)), Chars: utf8.RuneCountInString(s), Bytes: len(s)}
	if s != "" {
		st.Lines = strings.Count(s, "\n")
		if !strings.HasSuffix(s, "\n") {
			st.Lines++ // a last line without its newline still counts
		}
	}
	return st
}

func main() {
	var req request
	if err := json.NewDecoder(io.LimitReader(os.Stdin, 16<<20)).Decode(&req); err != nil {
		fail("reading the request: %v", err)
	}
	switch req.Method {
	case "tools/list":
		reply(map[string]any{"tools": tools})
	case "tools/call":
		if req.Params.Name != "textstats" {
			reply(errorResult("unknown tool %q", req.Params.Name))
			return
		}
		var args struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(req.Params.Arguments, &args); err != nil || args.Text == nil {
			reply(errorResult("argument \"text\" (a string) is required"))
			return
		}
		st := count(*args.Text)
		summary := fmt.Sprintf("%d lines, %d words, %d characters, %d bytes", st.Lines, st.Words, st.Chars, st.Bytes)
		reply(map[string]any{
			"content":           []any{map[string]any{"type": "text", "text": summary}},
			"structuredContent": st,
		})
	default:
		fail("unknown method %q", req.Method)
	}
}

// errorResult is a tool-level failure: the call reached the tool, which
// refused it. The model sees the message and can correct its arguments.
func errorResult(format string, args ...any) map[string]any {
	return map[string]any{
		"content": []any{map[string]any{"type": "text", "text": fmt.Sprintf(format, args...)}},
		"isError": true,
	}
}

func reply(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fail("writing the response: %v", err)
	}
}

// fail reports a failure of the module itself (not of a tool call): the
// message goes to stderr, which the gateway logs, and the exit status tells
// the gateway the request failed.
func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "textstats: "+format+"\n", args...)
	os.Exit(1)
}
