package config

import (
	"fmt"
	"time"
)

// Response cache defaults and bounds (see Cache).
const (
	// DefaultCacheMaxEntries bounds how many results one upstream's cache
	// holds when max_entries is not set.
	DefaultCacheMaxEntries = 1000
	// DefaultCacheMaxBytes bounds the encoded size of one upstream's cached
	// results when max_bytes is not set (16 MiB).
	DefaultCacheMaxBytes = 16 << 20

	// MaxCacheEntries bounds max_entries.
	MaxCacheEntries = 1_000_000
	// MaxCacheBytes bounds max_bytes (4 GiB).
	MaxCacheBytes = 4 << 30
	// MaxCacheTTL bounds ttl and the per-tool TTLs.
	MaxCacheTTL = Duration(24 * time.Hour)
)

// Cache is an upstream's response cache (toml [upstreams.cache]): results
// of its read-only tools (readOnlyHint) and of resources/read are kept for
// a while and served again to the same tenant. The zero value is off.
//
// Like [FailureHandling] it needs no new connection, so it is not part of
// [Upstream.Fingerprint]; [Cache.CacheKey] covers it.
type Cache struct {
	// TTL is how long a result stays fresh (toml "ttl"); 0, the default,
	// turns the cache off except for tools listed in Tools. It is also the
	// most an upstream's own caching hint (ttlMs) can ask for.
	TTL Duration
	// MaxEntries bounds how many results are kept (toml "max_entries");
	// 0 means DefaultCacheMaxEntries.
	MaxEntries int
	// MaxBytes bounds the encoded size of the kept results (toml
	// "max_bytes"); 0 means DefaultCacheMaxBytes. The least recently used
	// results are dropped first.
	MaxBytes int64
	// ServeStale serves an expired result of a read-only call when the
	// upstream cannot be reached (breaker open, transport failure, timeout)
	// instead of the error (toml "serve_stale"; default false).
	ServeStale bool
	// Tools overrides TTL for single tools, by the upstream's own tool name
	// (toml "tools", e.g. { "get-x" = "30s" }); "0s" turns caching off for
	// one tool. Only read-only tools are cached whatever this says.
	Tools map[string]Duration
}

// Enabled reports whether anything can be cached.
func (c Cache) Enabled() bool {
	if c.TTL > 0 {
		return true
	}
	for _, d := range c.Tools {
		if d > 0 {
			return true
		}
	}
	return false
}

// ToolTTL returns the TTL for the upstream's tool: its own from Tools, else
// TTL.
func (c Cache) ToolTTL(tool string) time.Duration {
	if d, ok := c.Tools[tool]; ok {
		return d.D()
	}
	return c.TTL.D()
}

// Limits returns the bounds with defaults applied.
func (c Cache) Limits() (entries int, bytes int64) {
	entries, bytes = DefaultCacheMaxEntries, DefaultCacheMaxBytes
	if c.MaxEntries > 0 {
		entries = c.MaxEntries
	}
	if c.MaxBytes > 0 {
		bytes = c.MaxBytes
	}
	return entries, bytes
}

// CacheKey returns a stable hash of the settings (with defaults applied).
// The gateway keeps an upstream's cached results across a reload only when
// this and the upstream's Fingerprint are unchanged.
func (c Cache) CacheKey() string {
	k := newKeyHash()
	entries, bytes := c.Limits()
	k.num(int64(c.TTL))
	k.num(int64(entries))
	k.num(bytes)
	k.flag(c.ServeStale)
	k.durations(c.Tools)
	return k.sum()
}

var cacheKeys = []string{"ttl", "max_entries", "max_bytes", "serve_stale", "tools"}

// decodeCache reads an upstream's [upstreams.cache] table, checking each
// value where it stands in the file.
func (d *decoder) decodeCache(t *table, c *Cache) {
	v := t.get("cache")
	if v == nil {
		return
	}
	if v.kind != kTable {
		t.typeErr("cache", v, d.kindName(kTable)+" ([upstreams.cache])")
		return
	}
	ct := d.table(v, t.loc("cache").field)
	if ct.duration("ttl", &c.TTL) && (c.TTL < 0 || c.TTL > MaxCacheTTL) {
		l := ct.loc("ttl")
		d.add(l.pos, l.field, "must be between 0 (off) and %s, got %s", MaxCacheTTL, c.TTL)
		c.TTL = 0
	}
	var n int64
	if ct.integer("max_entries", &n) {
		if n < 1 || n > MaxCacheEntries {
			l := ct.loc("max_entries")
			d.add(l.pos, l.field, "must be between 1 and %d, got %d", MaxCacheEntries, n)
		} else {
			c.MaxEntries = int(n)
		}
	}
	if ct.integer("max_bytes", &n) {
		if n < 1 || n > MaxCacheBytes {
			l := ct.loc("max_bytes")
			d.add(l.pos, l.field, "must be between 1 and %d, got %d", int64(MaxCacheBytes), n)
		} else {
			c.MaxBytes = n
		}
	}
	ct.boolean("serve_stale", &c.ServeStale)
	if tv := ct.get("tools"); tv != nil {
		if tv.kind != kTable {
			ct.typeErr("tools", tv, d.kindName(kTable)+` of durations, e.g. { "get-x" = "30s" }`)
		} else {
			c.Tools = d.decodeCacheTools(tv, ct.loc("tools").field)
		}
	}
	ct.unknown(cacheKeys)
}

// decodeCacheTools reads a table of tool name to TTL, reporting each bad
// entry at its key.
func (d *decoder) decodeCacheTools(v *val, field string) map[string]Duration {
	return d.decodeToolDurations(v, field, "30s", func(dur Duration) string {
		if dur < 0 || dur > MaxCacheTTL {
			return fmt.Sprintf("must be between 0 (off) and %s, got %s", MaxCacheTTL, dur)
		}
		return ""
	})
}
