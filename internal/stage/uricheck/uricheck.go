// Package uricheck is the pipeline stage that refuses a resource URI that
// would reach outside what its upstream meant to offer: a `file:` URI
// whose path climbs with `..` (plain or percent-encoded, with `/` or `\`),
// or any URI with a NUL, a control character, or a broken percent
// escape. An upstream that serves files under a root through a template
// like `file:///{path}` would otherwise be asked for
// `file:///srv/docs/../../etc/passwd` on the client's word.
//
// It sees the URI the client named (Call.Name) of resources/read,
// resources/subscribe and resources/unsubscribe; it changes nothing but
// Refused. The refusal is -32602 (invalid params) saying what is wrong.
package uricheck

import (
	"context"
	"fmt"
	"strings"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Stage is the uricheck stage.
type Stage struct{}

var _ pipeline.Stage = Stage{}

// Name implements [pipeline.Stage].
func (Stage) Name() string { return "uricheck" }

// Handle implements [pipeline.Stage].
func (s Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	if err := Check(c.Name); err != nil {
		c.Refused = s.Name()
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	return next.Handle(ctx, c)
}

// Check reports what is wrong with a resource URI, or nil.
func Check(uri string) error {
	for i := 0; i < len(uri); i++ {
		if b := uri[i]; b < 0x20 || b == 0x7f {
			return fmt.Errorf("resource URI %q contains a control character", uri)
		}
	}
	decoded, err := unescape(uri)
	if err != nil {
		return fmt.Errorf("resource URI %q: %v", uri, err)
	}
	for i := 0; i < len(decoded); i++ {
		if b := decoded[i]; b < 0x20 || b == 0x7f {
			return fmt.Errorf("resource URI %q contains an encoded control character", uri)
		}
	}
	scheme, rest, ok := strings.Cut(decoded, ":")
	if !ok || !strings.EqualFold(scheme, "file") {
		return nil
	}
	// The path: what follows file:, without a query or fragment.
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	for _, seg := range strings.FieldsFunc(rest, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return fmt.Errorf("resource URI %q climbs out of its directory with \"..\": name the file by its own path", uri)
		}
	}
	return nil
}

// unescape decodes %XX escapes, refusing a broken one.
func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("broken percent escape at byte %d", i)
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
