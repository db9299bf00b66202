package route

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devload"
)

// Candidate is one target as the policy sees it at the moment of a call.
// T is the caller's handle on the target (the gateway's connection).
type Candidate[T any] struct {
	Target  T
	Name    string        // the target's name
	Local   bool          // runs on the device
	Down    string        // why it cannot serve now; "" when it can
	Latency time.Duration // moving average of answered calls; 0 unknown
}

// Input is what decides besides the targets themselves.
type Input struct {
	Routing   config.Routing
	Load      devload.Sample
	LocalOnly string // non-empty: why this call must stay on the device
	// Probe asks Decide to send this call to a healthy target whose
	// latency is unknown, so that it gets measured (one call in
	// ProbeEvery).
	Probe bool
}

// ProbeEvery is how often a routed upstream's call goes to a target whose
// latency is unknown (never measured, or older than the moving average's
// lifetime) instead of the preferred one: without it a target that never
// gets traffic could never show that it is faster.
const ProbeEvery = 10

// minLatencyGain is the least a target must save, besides being
// latency_factor times faster, to take a call from the preferred one:
// between two fast targets (3 ms against 7 ms) the difference is noise,
// and chasing it would move traffic back and forth.
const minLatencyGain = 10 * time.Millisecond

// Decision is the order in which a call tries the targets, and why.
type Decision[T any] struct {
	Order   []Candidate[T]
	Factor  string   // what decided the first choice (a metric label)
	Reasons []string // every rule that changed the order, in plain words
	Refusal string   // non-empty: no target may serve the call
}

// First is the name of the target tried first ("" when refused).
func (d Decision[T]) First() string {
	if len(d.Order) == 0 {
		return ""
	}
	return d.Order[0].Name
}

// Factors: what made the first choice what it is.
const (
	FactorOnly        = "only"        // a single target
	FactorPriority    = "priority"    // configuration order, nothing else mattered
	FactorHealth      = "health"      // a preferred target is down or its breaker open
	FactorSensitivity = "sensitivity" // local-only data kept remote targets out
	FactorPower       = "power"       // the power profile
	FactorLoad        = "load"        // the device is loaded
	FactorLatency     = "latency"     // a faster target
)

// Decide orders the candidates for one call. It is a pure function of its
// inputs, so every decision can be reproduced and explained:
//
//  1. Sensitivity: a local-only call drops every remote target; with none
//     left it is refused, never sent off the device.
//  2. Preference by locality: the power profile "performance" puts local
//     targets first, "saver" remote ones; "balanced" keeps configuration
//     order unless the device's CPU or memory use is above its threshold,
//     then remote targets go first.
//  3. Latency: a target of the same locality class as the first choice
//     whose moving average is LatencyFactor times lower takes its place.
//  4. Health: targets that cannot serve now (not connected, breaker open)
//     go last, in the same order; they are still tried if all else fails,
//     and fail fast.
func Decide[T any](cands []Candidate[T], in Input) Decision[T] {
	d := Decision[T]{Factor: FactorPriority}
	if len(cands) == 1 && in.LocalOnly == "" {
		d.Order, d.Factor = cands, FactorOnly
		return d
	}
	order := slices.Clone(cands)
	first := func() string {
		if len(order) == 0 {
			return ""
		}
		return order[0].Name
	}
	changed := func(before, factor, why string) {
		d.Reasons = append(d.Reasons, why)
		if first() != before {
			d.Factor = factor
		}
	}

	if in.LocalOnly != "" {
		before := first()
		var dropped []string
		order = slices.DeleteFunc(order, func(c Candidate[T]) bool {
			if !c.Local {
				dropped = append(dropped, c.Name)
			}
			return !c.Local
		})
		if len(order) == 0 {
			d.Refusal = in.LocalOnly + ", and no target of this upstream runs on the device; the call was not sent anywhere"
			d.Factor = FactorSensitivity
			return d
		}
		if len(dropped) > 0 {
			changed(before, FactorSensitivity, fmt.Sprintf("%s: remote targets %s excluded", in.LocalOnly, strings.Join(dropped, ", ")))
		}
	}

	preferRemote, why, factor := false, "", ""
	r := in.Routing
	switch {
	case r.Power == config.PowerPerformance:
		why, factor = "power profile performance: local targets first", FactorPower
	case r.Power == config.PowerSaver:
		preferRemote, why, factor = true, "power profile saver: remote targets first", FactorPower
	case in.Load.OK && in.Load.CPU > r.MaxCPU:
		preferRemote, factor = true, FactorLoad
		why = fmt.Sprintf("device CPU use %.0f%% is above max_cpu %.0f%%: remote targets first", in.Load.CPU*100, r.MaxCPU*100)
	case in.Load.OK && in.Load.Memory > r.MaxMemory:
		preferRemote, factor = true, FactorLoad
		why = fmt.Sprintf("device memory use %.0f%% is above max_memory %.0f%%: remote targets first", in.Load.Memory*100, r.MaxMemory*100)
	}
	classOf := func(c Candidate[T]) int { // lower goes first
		if factor == "" || c.Local != preferRemote {
			return 0
		}
		return 1
	}
	if factor != "" {
		before := first()
		slices.SortStableFunc(order, func(a, b Candidate[T]) int { return classOf(a) - classOf(b) })
		if first() != before {
			changed(before, factor, why)
		}
	}

	// Latency, among the healthy targets of the first choice's class.
	healthy := func(c Candidate[T]) bool { return c.Down == "" }
	if i := slices.IndexFunc(order, healthy); i >= 0 && order[i].Latency > 0 {
		best := i
		if in.Probe {
			if j := slices.IndexFunc(order[i+1:], func(c Candidate[T]) bool {
				return healthy(c) && c.Latency == 0 && classOf(c) == classOf(order[i])
			}); j >= 0 {
				before := first()
				c := order[i+1+j]
				order = slices.Delete(order, i+1+j, i+2+j)
				order = slices.Insert(order, i, c)
				changed(before, FactorLatency, fmt.Sprintf("probe: target %s has no recent latency measure, this call measures it", c.Name))
				best = -1
			}
		}
		for j := i + 1; best >= 0 && j < len(order); j++ {
			c := order[j]
			if healthy(c) && classOf(c) == classOf(order[i]) && c.Latency > 0 &&
				float64(order[best].Latency) > r.LatencyFactor*float64(c.Latency) &&
				order[best].Latency-c.Latency >= minLatencyGain {
				best = j
			}
		}
		if best >= 0 && best != i {
			before := first()
			c := order[best]
			order = slices.Delete(order, best, best+1)
			order = slices.Insert(order, i, c)
			changed(before, FactorLatency, fmt.Sprintf("target %s answers in %s on average, %s in %s (latency_factor %g)",
				c.Name, roundMs(c.Latency), order[i+1].Name, roundMs(order[i+1].Latency), r.LatencyFactor))
		}
	}

	before := first()
	var down []string
	for _, c := range order {
		if !healthy(c) {
			down = append(down, c.Name+" "+c.Down)
		}
	}
	slices.SortStableFunc(order, func(a, b Candidate[T]) int {
		return btoi(!healthy(a)) - btoi(!healthy(b))
	})
	if len(down) > 0 {
		changed(before, FactorHealth, "unavailable, tried last: "+strings.Join(down, "; "))
	}
	d.Order = order
	return d
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func roundMs(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}
