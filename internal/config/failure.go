package config

import (
	"fmt"
	"slices"
	"time"
)

// Failure handling defaults and bounds (see FailureHandling).
const (
	// DefaultBreakerFailures is how many consecutive failures open an
	// upstream's circuit breaker.
	DefaultBreakerFailures = 5
	// DefaultBreakerOpenFor is how long an open breaker fails calls fast
	// before it lets a probe through.
	DefaultBreakerOpenFor = Duration(10 * time.Second)
	// DefaultBreakerHalfOpenCalls is how many probe calls a half-open
	// breaker lets through; that many successes in a row close it.
	DefaultBreakerHalfOpenCalls = 1
	// DefaultRetries is how many times a call that is safe to repeat is sent
	// again after a transport failure.
	DefaultRetries = 2

	// MaxRetries bounds retries: more would only deepen an outage.
	MaxRetries = 10
	// MaxBreakerFailures bounds breaker.failures.
	MaxBreakerFailures = 1000
	// MaxBreakerHalfOpenCalls bounds breaker.half_open_calls.
	MaxBreakerHalfOpenCalls = 100
)

// FailureHandling is what the gateway does when an upstream fails: the
// circuit breaker, retries of calls that are safe to repeat, and per-tool
// timeouts. It is embedded in [Upstream], so its settings sit on the
// upstream in the file. The zero value means every default, which is also
// what built-in upstreams and mcpServers JSON imports get.
//
// None of these settings needs a new connection, so they are not part of
// [Upstream.Fingerprint]; [FailureHandling.FailureKey] covers them.
type FailureHandling struct {
	// Breaker is the upstream's circuit breaker (toml [upstreams.breaker]).
	Breaker Breaker
	// Retries is how many times a call that is safe to repeat is sent again
	// after a transport failure (toml "retries"): at most Retries+1
	// attempts. nil means DefaultRetries; 0 turns retries off. Use
	// [FailureHandling.MaxRetries] to read it.
	Retries *int
	// ToolTimeouts overrides Timeout for single tools, by the upstream's own
	// tool name (toml "tool_timeouts", e.g. { "slow-tool" = "2m" }).
	ToolTimeouts map[string]Duration
	// Deferrable lists the upstream's own tool names whose calls the
	// gateway may put in the offline queue when the upstream is
	// unreachable (toml "deferrable"); ["*"] means every tool. See
	// docs/edge.md, "Wiring the queue".
	Deferrable []string
}

// IsDeferrable reports whether the upstream's tool is marked deferrable.
func (f FailureHandling) IsDeferrable(tool string) bool {
	for _, t := range f.Deferrable {
		if t == "*" || t == tool {
			return true
		}
	}
	return false
}

// Breaker configures an upstream's circuit breaker. Only transport
// failures count (the upstream unreachable, a broken connection, a
// timeout), never an upstream's own JSON-RPC errors or tool errors.
type Breaker struct {
	// Failures is how many consecutive failures open the breaker (toml
	// "failures"). nil means DefaultBreakerFailures; 0 turns the breaker
	// off.
	Failures *int
	// OpenFor is how long the open breaker fails calls fast before it
	// half-opens and lets probes through (toml "open_for"). 0 means
	// DefaultBreakerOpenFor.
	OpenFor Duration
	// HalfOpenCalls is how many probe calls the half-open breaker lets
	// through at once; that many successes close it, one failure opens it
	// again (toml "half_open_calls"). 0 means DefaultBreakerHalfOpenCalls.
	HalfOpenCalls int
}

// Settings returns the breaker's settings with defaults applied; failures
// is 0 when the breaker is off.
func (b Breaker) Settings() (failures int, openFor time.Duration, halfOpenCalls int) {
	failures, openFor, halfOpenCalls = DefaultBreakerFailures, DefaultBreakerOpenFor.D(), DefaultBreakerHalfOpenCalls
	if b.Failures != nil {
		failures = *b.Failures
	}
	if b.OpenFor > 0 {
		openFor = b.OpenFor.D()
	}
	if b.HalfOpenCalls > 0 {
		halfOpenCalls = b.HalfOpenCalls
	}
	return failures, openFor, halfOpenCalls
}

// MaxRetries returns how many times a safe call may be sent again, with
// the default applied.
func (f FailureHandling) MaxRetries() int {
	if f.Retries == nil {
		return DefaultRetries
	}
	return *f.Retries
}

// ToolTimeout returns the timeout configured for the upstream's tool, if any.
func (f FailureHandling) ToolTimeout(tool string) (Duration, bool) {
	d, ok := f.ToolTimeouts[tool]
	return d, ok
}

// FailureKey returns a stable hash of the failure handling settings (with
// defaults applied). The gateway keeps an upstream's breaker across a reload
// only when this and the upstream's Fingerprint are unchanged.
func (f FailureHandling) FailureKey() string {
	k := newKeyHash()
	failures, openFor, half := f.Breaker.Settings()
	k.num(int64(failures))
	k.num(int64(openFor))
	k.num(int64(half))
	k.num(int64(f.MaxRetries()))
	k.durations(f.ToolTimeouts)
	deferrable := slices.Sorted(slices.Values(f.Deferrable))
	k.num(int64(len(deferrable)))
	for _, t := range deferrable {
		k.str(t)
	}
	return k.sum()
}

var breakerKeys = []string{"failures", "open_for", "half_open_calls"}

// decodeFailureHandling reads an upstream's failure handling settings
// (retries, tool_timeouts, [upstreams.breaker], deferrable) from its table, checking
// each value where it stands in the file.
func (d *decoder) decodeFailureHandling(t *table, f *FailureHandling) {
	var n int64
	if t.integer("retries", &n) {
		if n < 0 || n > MaxRetries {
			l := t.loc("retries")
			d.add(l.pos, l.field, "must be between 0 and %d, got %d", MaxRetries, n)
		} else {
			r := int(n)
			f.Retries = &r
		}
	}
	if v := t.get("breaker"); v != nil {
		if v.kind != kTable {
			t.typeErr("breaker", v, d.kindName(kTable)+" ([upstreams.breaker])")
		} else {
			d.decodeBreaker(d.table(v, t.loc("breaker").field), &f.Breaker)
		}
	}
	if v := t.get("tool_timeouts"); v != nil {
		if v.kind != kTable {
			t.typeErr("tool_timeouts", v, d.kindName(kTable)+` of durations, e.g. { "slow-tool" = "2m" }`)
		} else {
			f.ToolTimeouts = d.decodeToolTimeouts(v, t.loc("tool_timeouts").field)
		}
	}
	d.decodeToolList(t, "deferrable", &f.Deferrable)
}

// decodeToolList reads key, an array of the upstream's tool names or
// ["*"], into dst, reporting each bad element where it stands.
func (d *decoder) decodeToolList(t *table, key string, dst *[]string) {
	v := t.get(key)
	if v == nil {
		return
	}
	l := t.loc(key)
	if v.kind != kArray {
		t.typeErr(key, v, d.kindName(kArray)+` of tool names, e.g. ["send-mail"] or ["*"]`)
		return
	}
	out := make([]string, 0, len(v.arr))
	seen := map[string]bool{}
	ok := true
	for i, e := range v.arr {
		p := e.pos
		if p.line == 0 {
			p = l.pos
		}
		field := indexField(l.field, i)
		switch {
		case e.kind != kString:
			d.add(p, field, "expected a tool name (string), got %s", d.kindName(e.kind))
		case e.str == "":
			d.add(p, field, "tool name must not be empty")
		case seen[e.str]:
			d.add(p, field, "tool %q is listed twice", e.str)
		case e.str == "*" && len(v.arr) > 1:
			d.add(p, field, `"*" (every tool) must be the only element`)
		default:
			seen[e.str] = true
			out = append(out, e.str)
			continue
		}
		ok = false
	}
	if ok {
		*dst = out
	}
}

func (d *decoder) decodeBreaker(t *table, b *Breaker) {
	var n int64
	if t.integer("failures", &n) {
		if n < 0 || n > MaxBreakerFailures {
			l := t.loc("failures")
			d.add(l.pos, l.field, "must be between 0 (breaker off) and %d, got %d", MaxBreakerFailures, n)
		} else {
			v := int(n)
			b.Failures = &v
		}
	}
	if t.duration("open_for", &b.OpenFor) && b.OpenFor <= 0 {
		l := t.loc("open_for")
		d.add(l.pos, l.field, "must be greater than 0, got %s", b.OpenFor)
	}
	if t.integer("half_open_calls", &n) {
		if n < 1 || n > MaxBreakerHalfOpenCalls {
			l := t.loc("half_open_calls")
			d.add(l.pos, l.field, "must be between 1 and %d, got %d", MaxBreakerHalfOpenCalls, n)
		} else {
			b.HalfOpenCalls = int(n)
		}
	}
	t.unknown(breakerKeys)
}

// decodeToolTimeouts reads a table of tool name to timeout, reporting each
// bad entry at its key.
func (d *decoder) decodeToolTimeouts(v *val, field string) map[string]Duration {
	return d.decodeToolDurations(v, field, "2m", func(dur Duration) string {
		if dur <= 0 {
			return fmt.Sprintf("must be greater than 0, got %s", dur)
		}
		return ""
	})
}

// decodeToolDurations reads a table of tool name to duration string,
// reporting each bad entry at its key: an empty name, a value that is not a
// duration string (example shows one in the message), or one that check
// rejects by returning a message. Only the good entries are returned.
func (d *decoder) decodeToolDurations(v *val, field, example string, check func(Duration) string) map[string]Duration {
	out := make(map[string]Duration, len(v.keys))
	for _, k := range v.keys {
		e, p, f := v.fields[k], v.keyPos[k], joinField(field, k)
		if k == "" {
			d.add(p, f, "tool name must not be empty")
			continue
		}
		if e.kind != kString {
			d.add(p, f, "expected a duration string such as %q, got %s", example, d.kindName(e.kind))
			continue
		}
		dur, err := parseDuration(e.str)
		if err != nil {
			d.add(p, f, "%s", err)
			continue
		}
		if msg := check(dur); msg != "" {
			d.add(p, f, "%s", msg)
			continue
		}
		out[k] = dur
	}
	return out
}
