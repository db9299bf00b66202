package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/mcpedge/mcpedge/internal/ratelimit"
)

// The HTTP layer resolves the client, checks the limits, and always sends
// the headers, so well-behaved clients can pace themselves.
func Example() {
	lim := ratelimit.NewMemory(nil)
	defer lim.Close()
	clientIP, err := ratelimit.NewClientIP([]string{"10.0.0.0/8"}) // the load balancer
	if err != nil {
		panic(err)
	}
	plan := ratelimit.Plan{Name: "tiny", KeyRate: 1, KeyBurst: 2}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := ratelimit.Subject{Key: "key-42", Tenant: "acme", IP: clientIP.From(r)}
		d, err := lim.Allow(r.Context(), plan, s)
		if err != nil {
			// Only a shared store fails; failing open keeps serving.
			d = ratelimit.Decision{Allowed: true}
		}
		ratelimit.SetHeaders(w.Header(), d)
		if !d.Allowed {
			http.Error(w, "rate limited by "+d.Dimension, http.StatusTooManyRequests)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	for range 3 {
		r := httptest.NewRequest("POST", "/mcp", nil)
		r.RemoteAddr = "10.0.0.1:5000"
		r.Header.Set("X-Forwarded-For", "198.51.100.7")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		fmt.Printf("%d remaining=%s retry-after=%q\n", w.Code, w.Header().Get("RateLimit-Remaining"), w.Header().Get("Retry-After"))
	}
	// Output:
	// 200 remaining=1 retry-after=""
	// 200 remaining=0 retry-after=""
	// 429 remaining=0 retry-after="1"
}

// Quotas are consumed for tools/call only, after the rate check.
func ExampleLimiter_Quota() {
	lim := ratelimit.NewMemory(nil)
	defer lim.Close()
	plan := ratelimit.Plan{MonthlyQuota: 2}
	ctx := context.Background()
	now := time.Date(2026, 4, 15, 12, 0, 0, 0, time.UTC) // normally time.Now()
	for range 3 {
		d, _ := lim.Quota(ctx, plan, "acme", now)
		fmt.Println(d.Allowed, d.Remaining, d.Dimension)
	}
	// Output:
	// true 1 quota
	// true 0 quota
	// false 0 quota
}
