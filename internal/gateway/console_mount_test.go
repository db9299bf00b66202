package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
)

// The console (HTTPOptions.Console) is served at / and /ui/, behind the
// edge's checks; a form it posts from its own origin passes the Origin
// check, another origin's does not, and the rest of the gateway keeps its
// Origin rule.
func TestConsoleMount(t *testing.T) {
	cfg, err := config.Parse("gw.toml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	g := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), telemetry.NewMetrics())
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "console "+r.URL.Path) })
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "api") })
	with := g.Handler(HTTPOptions{Console: console, API: api})
	without := g.Handler(HTTPOptions{API: api})
	do := func(h http.Handler, method, path, origin string) (int, string) {
		r := httptest.NewRequest(method, "http://gw.example:8080"+path, strings.NewReader("a=b"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	cases := []struct {
		name         string
		h            http.Handler
		method, path string
		origin       string
		status       int
		body         string
	}{
		{"root", with, "GET", "/", "", 200, "console /"},
		{"console page", with, "GET", "/ui/catalog", "", 200, "console /ui/catalog"},
		{"same-origin form", with, "POST", "/ui/keys", "http://gw.example:8080", 200, "console /ui/keys"},
		{"another origin's form", with, "POST", "/ui/keys", "http://evil.example", 403, ""},
		{"another port", with, "POST", "/ui/keys", "http://gw.example:9090", 403, ""},
		{"null origin", with, "POST", "/ui/keys", "null", 403, ""},
		{"the API keeps its rule", with, "POST", "/api/tenants", "http://gw.example:8080", 403, ""},
		{"no console: / is not served", without, "GET", "/", "", 404, ""},
		{"no console: /ui/ is not served", without, "GET", "/ui/", "", 404, ""},
		{"no console: no exception", without, "POST", "/ui/keys", "http://gw.example:8080", 403, ""},
	}
	for _, c := range cases {
		status, body := do(c.h, c.method, c.path, c.origin)
		if status != c.status || (c.body != "" && body != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, body, c.status, c.body)
		}
	}
}
