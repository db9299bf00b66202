package wasmtool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The module ABI, version 1 (docs/wasm.md has the full text).
//
// One run handles one request. The gateway writes a JSON object to stdin
// and closes it:
//
//	{"method":"tools/list"}
//	{"method":"tools/call","params":{"name":"…","arguments":{…}}}
//
// and reads one JSON object from stdout after the module exits with status
// 0: {"tools":[Tool…]} for tools/list, a CallToolResult for tools/call
// (both as in the MCP schema). Anything else — a non-zero exit, a trap, no
// output, more than one JSON value, output over the limit, a timeout — is a
// failure of the run. Modules must ignore request fields they do not know.

// MaxTools bounds how many tools one module may list.
const MaxTools = 1000

// request is what a run reads from stdin.
type request struct {
	Method string         `json:"method"`
	Params *requestParams `json:"params,omitempty"`
}

type requestParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// toolNameRE is the MCP tool name rule: 1 to 128 of A-Z a-z 0-9 _ - .
var toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// ListTools runs the module with a tools/list request and returns the tools
// it offers, after checking each is one the gateway can serve: a valid,
// unique name and an object input schema (and output schema, if any).
func (m *Module) ListTools(ctx context.Context) ([]*mcp.Tool, error) {
	out, err := m.Run(ctx, []byte(`{"method":"tools/list"}`))
	if err != nil {
		return nil, fmt.Errorf("tools/list: %w", err)
	}
	var resp struct {
		Tools *[]*mcp.Tool `json:"tools"`
	}
	if err := decodeOne(out, &resp); err != nil {
		return nil, fmt.Errorf("tools/list: %w: %v", ErrBadOutput, err)
	}
	if resp.Tools == nil {
		return nil, fmt.Errorf("tools/list: %w: no \"tools\" array", ErrBadOutput)
	}
	tools := *resp.Tools
	if len(tools) > MaxTools {
		return nil, fmt.Errorf("tools/list: %w: %d tools, at most %d are allowed", ErrBadOutput, len(tools), MaxTools)
	}
	seen := map[string]bool{}
	for i, t := range tools {
		if err := checkTool(t); err != nil {
			return nil, fmt.Errorf("tools/list: %w: tools[%d]: %v", ErrBadOutput, i, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tools/list: %w: tools[%d]: duplicate name %q", ErrBadOutput, i, t.Name)
		}
		seen[t.Name] = true
	}
	return tools, nil
}

func checkTool(t *mcp.Tool) error {
	if t == nil {
		return errors.New("null")
	}
	if !toolNameRE.MatchString(t.Name) {
		return fmt.Errorf("name %q: must be 1 to 128 letters, digits, _, - or .", truncate(t.Name, 64))
	}
	if err := checkObjectSchema(t.InputSchema); err != nil {
		return fmt.Errorf("%s: inputSchema %v", t.Name, err)
	}
	if t.OutputSchema != nil {
		if err := checkObjectSchema(t.OutputSchema); err != nil {
			return fmt.Errorf("%s: outputSchema %v", t.Name, err)
		}
	}
	return nil
}

// checkObjectSchema checks what the SDK's AddTool insists on (it panics
// otherwise): a JSON object schema of type "object".
func checkObjectSchema(s any) error {
	m, ok := s.(map[string]any)
	if !ok {
		return errors.New(`must be a JSON Schema object with "type": "object"`)
	}
	if m["type"] != "object" {
		return errors.New(`must have "type": "object"`)
	}
	return nil
}

// CallTool runs the module with a tools/call request for the tool name and
// returns the result it printed. args is the call's arguments as JSON; nil
// means {}. A run that fails, or prints something that is not a
// CallToolResult, is an error (see [Module.Run]); a result with isError set
// is not.
func (m *Module) CallTool(ctx context.Context, name string, args json.RawMessage) (*mcp.CallToolResult, error) {
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("{}")
	}
	req, err := json.Marshal(request{Method: "tools/call", Params: &requestParams{Name: name, Arguments: args}})
	if err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	out, err := m.Run(ctx, req)
	if err != nil {
		return nil, err
	}
	var res mcp.CallToolResult
	if err := decodeOne(out, &res); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOutput, err)
	}
	// Only the fields of a final result are kept: a one-shot module cannot
	// take part in a multi-round exchange (input requests, request state),
	// as it would never see the answers.
	clean := &mcp.CallToolResult{Meta: res.Meta, Content: res.Content, StructuredContent: res.StructuredContent, IsError: res.IsError}
	if clean.Content == nil {
		clean.Content = []mcp.Content{}
	}
	return clean, nil
}

// decodeOne decodes the single JSON object in out into v.
func decodeOne(out []byte, v any) error {
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return errors.New("the module wrote nothing to stdout")
	}
	if trimmed[0] != '{' {
		return errors.New("stdout does not hold a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value on stdout")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
