// Command readfile is a WebAssembly tool server for mcpedge that reads
// files: "read_file" returns a text file's content and "list_dir" lists a
// directory. It can only see the directories the gateway mounts for it
// (sandbox.dirs), read-only unless a mount says ":rw"; everything else on
// the machine does not exist as far as it can tell.
//
// Build it for the gateway with
//
//	GOOS=wasip1 GOARCH=wasm go build -o readfile.wasm .
//
// Relative paths are resolved against the working directory, which a Go
// module takes from the PWD environment variable: with
// sandbox.env = ["PWD=/docs"], "notes.txt" means /docs/notes.txt.
//
// The module speaks mcpedge's WASM tool ABI (docs/wasm.md): one JSON request
// on stdin, one JSON response on stdout, then exit.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"
)

const (
	defaultMaxBytes = 64 << 10
	maxMaxBytes     = 1 << 20
)

type request struct {
	Method string `json:"method"`
	Params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"params"`
}

var tools = []any{
	map[string]any{
		"name":        "read_file",
		"title":       "Read a text file",
		"description": "Returns the content of a UTF-8 text file in one of the directories the gateway shares with this tool.",
		"inputSchema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"path":      map[string]any{"type": "string", "description": "The file's path, absolute or relative to the tool's working directory."},
				"max_bytes": map[string]any{"type": "integer", "minimum": 1, "maximum": maxMaxBytes, "description": fmt.Sprintf("Read at most this many bytes (default %d).", defaultMaxBytes)},
			},
			"required":             []string{"path"},
			"additionalProperties": false,
		},
		"annotations": map[string]any{"readOnlyHint": true, "openWorldHint": false},
	},
	map[string]any{
		"name":        "list_dir",
		"title":       "List a directory",
		"description": "Lists the entries of a directory the gateway shares with this tool.",
		"inputSchema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"path": map[string]any{"type": "string", "description": "The directory's path; \".\" (the default) is the working directory."},
			},
			"additionalProperties": false,
		},
		"annotations": map[string]any{"readOnlyHint": true, "openWorldHint": false},
	},
}

type entry struct {
	Name string `json:"name"`
	Dir  bool   `json:"dir"`
	Size int64  `json:"size"`
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
		reply(call(req.Params.Name, req.Params.Arguments))
	default:
		fail("unknown method %q", req.Method)
	}
}

func call(name string, raw json.RawMessage) map[string]any {
	var args struct {
		Path     string `json:"path"`
		MaxBytes int    `json:"max_bytes"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &args); err != nil {
			return errorResult("bad arguments: %v", err)
		}
	}
	switch name {
	case "read_file":
		if args.Path == "" {
			return errorResult("argument \"path\" is required")
		}
		if args.MaxBytes <= 0 {
			args.MaxBytes = defaultMaxBytes
		}
		args.MaxBytes = min(args.MaxBytes, maxMaxBytes)
		return readFile(args.Path, args.MaxBytes)
	case "list_dir":
		if args.Path == "" {
			args.Path = "."
		}
		return listDir(args.Path)
	}
	return errorResult("unknown tool %q", name)
}

func readFile(path string, maxBytes int) map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return errorResult("%s", describe(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return errorResult("%s", describe(err))
	}
	if fi.IsDir() {
		return errorResult("%s is a directory; use list_dir", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return errorResult("%s", describe(err))
	}
	truncated := len(b) > maxBytes
	if truncated {
		b = b[:maxBytes]
		// Do not cut the last character in two.
		for i := 1; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	if !utf8.Valid(b) {
		return errorResult("%s is not a UTF-8 text file", path)
	}
	return map[string]any{
		"content":           []any{map[string]any{"type": "text", "text": string(b)}},
		"structuredContent": map[string]any{"path": path, "size": fi.Size(), "truncated": truncated},
	}
}

func listDir(path string) map[string]any {
	es, err := os.ReadDir(path)
	if err != nil {
		return errorResult("%s", describe(err))
	}
	var out []entry
	var lines []string
	for _, e := range es {
		en := entry{Name: e.Name(), Dir: e.IsDir()}
		if fi, err := e.Info(); err == nil && !e.IsDir() {
			en.Size = fi.Size()
		}
		out = append(out, en)
		if en.Dir {
			lines = append(lines, en.Name+"/")
		} else {
			lines = append(lines, fmt.Sprintf("%s (%d bytes)", en.Name, en.Size))
		}
	}
	return map[string]any{
		"content":           []any{map[string]any{"type": "text", "text": strings.Join(lines, "\n")}},
		"structuredContent": map[string]any{"path": path, "entries": out},
	}
}

// describe turns a file system error into a message for the model. Under
// WASI, a path outside every shared directory fails with EBADF (no
// directory to resolve it in), and a link leading out of one with EPERM.
func describe(err error) string {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return pe.Path + " does not exist"
	case errors.Is(err, syscall.EBADF), errors.Is(err, fs.ErrPermission):
		return pe.Path + " is outside the directories shared with this tool"
	}
	return err.Error()
}

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

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "readfile: "+format+"\n", args...)
	os.Exit(1)
}
