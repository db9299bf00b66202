package uricheck

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{
		"file:///srv/docs/readme.md", "file:///srv/docs/a..b/c", "file:///srv/..hidden", "file:///srv/docs/%20space.md",
		"https://example.com/a/../b", "mem://x/..", "test://static/resource/1", "file:///srv/docs/x?q=../y", "",
	} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{
		"file:///srv/docs/../../etc/passwd", "file:///srv/docs/%2e%2e/%2E%2E/etc/passwd", "file:///srv/docs/..%2fetc",
		"file:///srv/docs/..\\..\\etc", "FILE:///a/..", "file:..", "file:///srv/%00x", "file:///srv/\x00x",
		"test://static/\nx", "file:///srv/%zz", "file:///srv/%2", "file:///srv/docs%2F..%2F..%2Fetc",
	} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) = nil, want a refusal", bad)
		}
	}
}

type handler func(context.Context, *pipeline.Call) (mcp.Result, error)

func (h handler) Handle(ctx context.Context, c *pipeline.Call) (mcp.Result, error) { return h(ctx, c) }

func TestStageRefusesBeforeNext(t *testing.T) {
	called := false
	next := handler(func(context.Context, *pipeline.Call) (mcp.Result, error) {
		called = true
		return &mcp.ReadResourceResult{}, nil
	})
	c := &pipeline.Call{Method: pipeline.MethodReadResource, Name: "file:///srv/docs/../secret"}
	_, err := Stage{}.Handle(context.Background(), c, next)
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams || !strings.Contains(werr.Message, "..") {
		t.Fatalf("err = %v, want -32602 naming the climb", err)
	}
	if called || c.Refused != "uricheck" {
		t.Fatalf("next called %v, Refused %q", called, c.Refused)
	}
	c = &pipeline.Call{Method: pipeline.MethodReadResource, Name: "file:///srv/docs/readme.md"}
	if _, err := (Stage{}).Handle(context.Background(), c, next); err != nil || !called || c.Refused != "" {
		t.Fatalf("a plain URI: err %v, next called %v, Refused %q", err, called, c.Refused)
	}
}

// FuzzCheck: never a panic, and a file URI that url.Parse reads as a
// path climbing out with ".." is always refused.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"file:///a/b", "file:///a/../b", "file:///%2e%2e/x", "test://x", "file:..\\x", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Check(s)
		u, perr := url.Parse(s)
		if perr != nil || !strings.EqualFold(u.Scheme, "file") {
			return
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == ".." && err == nil {
				t.Fatalf("Check(%q) = nil, but its path %q climbs", s, u.Path)
			}
		}
	})
}
