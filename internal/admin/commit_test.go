package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The change is applied exactly once, before the status line, and only
// for a successful request that may change something.
func TestApplyBeforeAnswer(t *testing.T) {
	var applied int
	var order []string
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusBadRequest)
		case "/implicit":
			_, _ = w.Write([]byte("ok")) // 200 without WriteHeader
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("made"))
		}
		order = append(order, "answered")
	})
	apply := func(context.Context) error { applied++; order = append(order, "applied"); return nil }
	h := ApplyBeforeAnswer(inner, apply, func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/auth/") }, nil)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/api/tenants", 1},
		{http.MethodDelete, "/implicit", 1},
		{http.MethodPost, "/fail", 0},
		{http.MethodGet, "/api/tenants", 0},
		{http.MethodHead, "/api/tenants", 0},
		{http.MethodPost, "/api/auth/login", 0},
	} {
		applied, order = 0, nil
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.path, nil))
		if applied != tc.want {
			t.Errorf("%s %s: applied %d times, want %d", tc.method, tc.path, applied, tc.want)
		}
		if tc.want == 1 && (len(order) != 2 || order[0] != "applied") {
			t.Errorf("%s %s: order %v, want the change applied before the answer", tc.method, tc.path, order)
		}
	}
	// A failed apply leaves the answer as it is.
	h = ApplyBeforeAnswer(inner, func(context.Context) error { return errors.New("store down") }, nil, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/tenants", nil))
	if rec.Code != http.StatusCreated || rec.Body.String() != "made" {
		t.Fatalf("answer changed by a failed apply: %d %q", rec.Code, rec.Body.String())
	}
}
