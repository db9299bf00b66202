package admin

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// ApplyBeforeAnswer wraps the admin API so that a change made through this
// replica is in force on this replica before its answer goes out: after a
// request that may change policy (any method but GET and HEAD, unless
// readOnly says the route changes none) succeeds, apply runs just before
// the status line is written. Other replicas see the change within their
// poll ([auth] revocation_poll). A failed apply is logged and left to the
// next poll; the answer is not changed, since the change itself is stored.
func ApplyBeforeAnswer(h http.Handler, apply func(context.Context) error, readOnly func(*http.Request) bool, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || (readOnly != nil && readOnly(r)) {
			h.ServeHTTP(w, r)
			return
		}
		cw := &commitWriter{ResponseWriter: w, apply: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := apply(ctx); err != nil {
				log.Warn("policy reload after an admin change failed; the next poll retries", "error", err)
			}
		}}
		h.ServeHTTP(cw, r)
	})
}

// commitWriter applies the change just before a successful answer's
// status line is written.
type commitWriter struct {
	http.ResponseWriter
	apply func()
	done  bool
}

func (c *commitWriter) WriteHeader(code int) {
	if !c.done {
		c.done = true
		if code < 300 {
			c.apply()
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *commitWriter) Write(b []byte) (int, error) {
	if !c.done {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}
