package admin

import (
	"net/http/httptest"
	"testing"
)

// FuzzUsageQuery sends arbitrary query strings and Accept headers to
// GET /api/usage as the operator's owner, on a real store: every answer
// is 200 (JSON or CSV) or a 400/404 with the JSON error of its status,
// never a 5xx, and it matches the OpenAPI document (env.conforms).
func FuzzUsageQuery(f *testing.F) {
	e := fuzzEnv(f)
	for _, s := range []struct{ query, accept string }{
		{"", ""},
		{"tenant=acme&granularity=month", ""},
		{"from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&format=csv", ""},
		{"from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", ""},
		{"tenant=nope", "text/csv"},
		{"granularity=day&format=xml", "application/json, text/csv"},
		{"from=%zz", ""},
		{"tool=%3Dcmd&upstream=a&upstream=b", "text/csv;q=0.9"},
		{"to=9999-12-31T23:59:59.999999999Z", ""},
		{"from=0001-01-01T00:00:00Z&to=0001-01-01T01:00:00Z", ""},
	} {
		f.Add(s.query, s.accept)
	}
	f.Fuzz(func(t *testing.T, query, accept string) {
		e.t = t
		req := httptest.NewRequest("GET", "/api/usage", nil).WithContext(e.ctx)
		req.URL.RawQuery = query
		req.Header.Set("Accept", accept)
		r := e.send(e.root, req)
		switch r.status {
		case 200:
			return
		case 400, 404:
		default:
			t.Fatalf("?%s (Accept %q): status %d: %s", query, accept, r.status, r.raw)
		}
		if st, ok := codeStatus[r.code()]; !ok || st != r.status {
			t.Fatalf("?%s: status %d with error code %q: %s", query, r.status, r.code(), r.raw)
		}
	})
}
