package telemetry

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// NewLogger returns a JSON slog logger on stderr at the named level
// (debug, info, warn, error; anything else means info). See [NewLoggerTo].
func NewLogger(level string) *slog.Logger {
	return NewLoggerTo(os.Stderr, level)
}

// NewLoggerTo returns a JSON slog logger writing to w at the named level.
// Durations are written as strings ("200ms", "1m30s"), as a person reads
// them: slog's JSON handler would write them as integer nanoseconds.
func NewLoggerTo(w io.Writer, level string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: ParseLevel(level), ReplaceAttr: readableDurations}))
}

// ParseLevel maps debug, info, warn and error (any case) to their slog
// levels; anything else is info.
func ParseLevel(level string) slog.Level {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// readableDurations is a ReplaceAttr that writes time.Duration values (in
// groups too) as their String form.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	if a.Value.Kind() == slog.KindAny {
		if d, ok := a.Value.Any().(time.Duration); ok {
			return slog.String(a.Key, d.String())
		}
	}
	return a
}
