package main

import (
	"context"
	"time"
)

// runGroup measures cells, the paths of one comparison (same client and
// load, different endpoints), in alternation: every cell's sessions are
// opened and warmed up first, then each of --rounds rounds gives every cell
// one --duration window, starting with a different cell each round, so that
// machine load that comes and goes is shared by all of them. A window in
// which other processes used more than --max-other-load of the CPUs is
// run again, at most --retries times. upPID is the upstream's process.
func runGroup(ctx context.Context, o *options, cells []*cell, upPID int) error {
	type state struct {
		c        *cell
		callers  []caller
		closeAll func()
	}
	var live []*state
	defer func() {
		for _, s := range live {
			s.closeAll()
		}
	}()
	for _, c := range cells {
		callers, closeAll, err := openCallers(ctx, c)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Recorded and reported; the rest of the run goes on.
			c.Failed = err.Error()
			progress("%s: %s FAILED: %v", c.Upstream, c.describe(), err)
			continue
		}
		if sc, ok := callers[0].(*sdkCaller); ok {
			c.Negotiated = sc.protocol()
		}
		live = append(live, &state{c, callers, closeAll})
	}
	if len(live) == 0 {
		return nil
	}
	win := func(s *state, d time.Duration) *window {
		if s.c.Rate > 0 {
			return openLoop(ctx, s.callers, s.c.Rate, d, s.c.hopPID, upPID)
		}
		return closedLoop(ctx, s.callers, d, s.c.hopPID, upPID)
	}
	for _, s := range live {
		progress("%s: %s: warm-up %s", s.c.Upstream, s.c.describe(), o.warmup)
		win(s, o.warmup)
	}
	for r := range o.rounds {
		for j := range live {
			s := live[(r+j)%len(live)]
			for attempt := 0; ; attempt++ {
				waitQuiet(ctx, o, s.c.hopPID, upPID)
				progress("%s: %s: round %d/%d, %s", s.c.Upstream, s.c.describe(), r+1, o.rounds, o.duration)
				w := win(s, o.duration)
				if err := ctx.Err(); err != nil {
					return err
				}
				s.c.Attempts++
				if w.otherLoad() <= o.maxOther || attempt >= o.retries {
					s.c.add(w)
					break
				}
				progress("%s: disturbed: other processes used %.0f%% of the CPUs; again", s.c.Upstream, 100*w.otherLoad())
			}
		}
	}
	for _, s := range live {
		if err := s.c.finish(); err != nil {
			s.c.Failed = err.Error()
		}
	}
	return nil
}

func (c *cell) describe() string {
	load := ""
	if c.Rate > 0 {
		load = "open loop " + itoa(c.Rate) + " calls/s"
	} else {
		load = itoa(c.Conc) + " clients"
	}
	return c.Client + " client, " + pathLabel(c.Path) + ", " + load
}
