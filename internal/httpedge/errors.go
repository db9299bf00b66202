// Package httpedge holds what the HTTP edge of the gateway and the
// multi-tenant layer plugged into it say to each other about a request
// before any MCP is read: a refused credential ([AuthError]) and a refused
// admission ([Denial]). It imports nothing of the gateway, so the layer
// that produces these (internal/tenancy) does not import the gateway for
// them.
package httpedge

import (
	"net/http"
	"time"
)

// AuthError is a refused credential: Status 401 (missing, unknown,
// expired, revoked) or 403 (valid, but not from here / not enough) — or
// no verdict: 429 (too many failures from this address) or 503 (the
// store could not be asked).
// Code is the OAuth error code for WWW-Authenticate ("invalid_token",
// "insufficient_scope", "invalid_request"; "" when no credential was sent).
type AuthError struct {
	Status  int
	Code    string
	Message string
	// Scope is the scope a 403 "insufficient_scope" asks for (RFC 6750
	// §3: the WWW-Authenticate scope attribute); "" otherwise.
	Scope string
	// RetryAfter is set with Status 429 (too many failed attempts).
	RetryAfter time.Duration
}

func (e *AuthError) Error() string { return e.Message }

// Denial refuses an admitted request (rate limit, quota).
type Denial struct {
	Status     int // 429 for limits and quotas
	Reason     string
	Message    string
	RetryAfter time.Duration
}

// HTTPStatus is the denial's HTTP status: 429 unless it says otherwise.
func (d *Denial) HTTPStatus() int {
	if d.Status == 0 {
		return http.StatusTooManyRequests
	}
	return d.Status
}
