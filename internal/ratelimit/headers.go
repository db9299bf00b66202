package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// SetHeaders writes the rate-limit response headers for d:
//
//   - RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset, the
//     three-field form of the IETF RateLimit header fields draft that
//     clients and SDKs widely parse; Reset is in whole seconds from now
//     (rounded up), never a timestamp, so it needs no clock agreement.
//   - Retry-After (RFC 9110, delay-seconds, at least 1) when d denies.
//
// The legacy X-RateLimit-* names are deliberately not sent: clients read
// X-RateLimit-Reset as a Unix timestamp or as seconds depending on which
// API they were written for, and the standard names carry the same data.
//
// A decision with no limit (Limit 0) writes no RateLimit-* headers, so
// unlimited plans do not advertise a meaningless limit.
func SetHeaders(h http.Header, d Decision) {
	if d.Limit > 0 {
		h[HeaderLimit] = []string{strconv.FormatInt(d.Limit, 10)}
		h[HeaderRemaining] = []string{strconv.FormatInt(max(0, d.Remaining), 10)}
		h[HeaderReset] = []string{strconv.FormatInt(ceilSeconds(d.Reset), 10)}
	}
	if !d.Allowed {
		h[HeaderRetryAfter] = []string{strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10)}
	}
}

// Header names written by SetHeaders, in the canonical form net/http uses
// as map keys (field names are case-insensitive on the wire).
const (
	HeaderLimit      = "Ratelimit-Limit"
	HeaderRemaining  = "Ratelimit-Remaining"
	HeaderReset      = "Ratelimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// ceilSeconds rounds a non-negative duration up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
