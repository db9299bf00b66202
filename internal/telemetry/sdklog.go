package telemetry

import (
	"context"
	"log/slog"
	"strings"
)

// SDKLogger returns the logger to give the MCP go-sdk (its server, client
// and Streamable HTTP handler options), built on log. The SDK logs at info
// every session that connects or initializes, and warns each time a
// change notification finds a session that is not listening (a client
// that never opened its event stream, or went away without saying so) —
// on a busy gateway, a line per session at each catalog change or reload.
// Those are events of single sessions, not of the gateway: they are
// logged at debug. Every other line of the SDK keeps its level. Every
// line is tagged component=mcp-sdk.
func SDKLogger(log *slog.Logger) *slog.Logger {
	return slog.New(&sdkHandler{base: log.Handler()}).With("component", "mcp-sdk")
}

type sdkHandler struct{ base slog.Handler }

// sessionEvents are the SDK's info lines about one session.
var sessionEvents = map[string]bool{
	"server connecting":           true,
	"server session connected":    true,
	"server session disconnected": true,
	"session initialized":         true,
	"client connecting":           true,
	"client session connected":    true,
}

// demoted reports whether an SDK record is an event of one session.
func demoted(r slog.Record) bool {
	if sessionEvents[r.Message] {
		return true
	}
	// "calling notifications/tools/list_changed: rejected by transport:
	// undelivered message: stream not connected or already closed".
	if strings.HasPrefix(r.Message, "calling notifications/") {
		for _, s := range []string{"undelivered message", "not connected", "already closed", "connection closed", "is closing", "session not found"} {
			if strings.Contains(r.Message, s) {
				return true
			}
		}
	}
	return false
}

func (h *sdkHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.base.Enabled(ctx, l) }

func (h *sdkHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && demoted(r) {
		if !h.base.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r = r.Clone()
		r.Level = slog.LevelDebug
	}
	return h.base.Handle(ctx, r)
}

func (h *sdkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sdkHandler{base: h.base.WithAttrs(as)}
}

func (h *sdkHandler) WithGroup(name string) slog.Handler {
	return &sdkHandler{base: h.base.WithGroup(name)}
}
