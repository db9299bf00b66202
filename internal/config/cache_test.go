package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCacheParse(t *testing.T) {
	const head = "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n"
	c, ps := parseT(t, head+`
[upstreams.cache]
ttl = "5m"
max_entries = 50
max_bytes = 1048576
serve_stale = true
tools = { "get-x" = "30s", "live" = "0s" }
`, nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	want := Cache{TTL: Duration(5 * time.Minute), MaxEntries: 50, MaxBytes: 1 << 20, ServeStale: true,
		Tools: map[string]Duration{"get-x": Duration(30 * time.Second), "live": 0}}
	got := c.Upstreams[0].Cache
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cache mismatch (-want +got):\n%s", diff)
	}
	if got.ToolTTL("get-x") != 30*time.Second || got.ToolTTL("live") != 0 || got.ToolTTL("other") != 5*time.Minute {
		t.Errorf("ToolTTL: %v %v %v", got.ToolTTL("get-x"), got.ToolTTL("live"), got.ToolTTL("other"))
	}

	c, ps = parseT(t, head, nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	d := c.Upstreams[0].Cache
	if d.Enabled() {
		t.Error("the cache is on by default")
	}
	if n, b := d.Limits(); n != DefaultCacheMaxEntries || b != DefaultCacheMaxBytes {
		t.Errorf("default limits %d, %d", n, b)
	}
	if !(Cache{Tools: map[string]Duration{"x": Duration(time.Second)}}).Enabled() {
		t.Error("a per-tool TTL alone does not enable the cache")
	}
}

func TestCacheProblems(t *testing.T) {
	const head = "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"values", head + "[upstreams.cache]\nttl = \"-1s\"\nmax_entries = 0\nmax_bytes = -5\nserve_stale = \"yes\"\nttls = 1\n",
			[]string{
				`c.toml:5:1: upstreams[0].cache.ttl: must be between 0 (off) and 24h0m0s, got -1s`,
				`c.toml:6:1: upstreams[0].cache.max_entries: must be between 1 and 1000000, got 0`,
				`c.toml:7:1: upstreams[0].cache.max_bytes: must be between 1 and 4294967296, got -5`,
				`c.toml:8:1: upstreams[0].cache.serve_stale: expected boolean (true or false), got string`,
				`c.toml:9:1: upstreams[0].cache.ttls: unknown key "ttls" (did you mean "ttl"?)`,
			}},
		{"not a table", head + "cache = \"1m\"\n",
			[]string{`c.toml:4:1: upstreams[0].cache: expected table ([upstreams.cache]), got string`}},
		{"tools", head + "cache = { tools = { \"a\" = \"2x\", \"b\" = 3, \"c\" = \"48h\" } }\n",
			[]string{
				`c.toml:4:21: upstreams[0].cache.tools.a: invalid duration "2x": want a number with a unit, e.g. "30s", "1m30s", "500ms"`,
				`c.toml:4:33: upstreams[0].cache.tools.b: expected a duration string such as "30s", got integer`,
				`c.toml:4:42: upstreams[0].cache.tools.c: must be between 0 (off) and 24h0m0s, got 48h0m0s`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseT(t, tt.src, nil)
			if diff := cmp.Diff(tt.want, ps); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCacheKey(t *testing.T) {
	base := Cache{TTL: Duration(time.Minute)}
	if base.CacheKey() != (Cache{TTL: Duration(time.Minute), MaxEntries: DefaultCacheMaxEntries}).CacheKey() {
		t.Error("explicit defaults change the key")
	}
	for name, c := range map[string]Cache{
		"ttl":         {TTL: Duration(time.Second)},
		"entries":     {TTL: Duration(time.Minute), MaxEntries: 3},
		"bytes":       {TTL: Duration(time.Minute), MaxBytes: 3},
		"serve stale": {TTL: Duration(time.Minute), ServeStale: true},
		"tools":       {TTL: Duration(time.Minute), Tools: map[string]Duration{"x": 0}},
	} {
		if c.CacheKey() == base.CacheKey() {
			t.Errorf("%s: key unchanged", name)
		}
	}
	u := Upstream{Name: "a", Transport: TransportHTTP, URL: "http://x/mcp"}
	v := u
	v.Cache = base
	if u.Fingerprint() != v.Fingerprint() {
		t.Error("the cache changed the fingerprint")
	}
}
