package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
)

// coldScenario is one gateway configuration whose start-up is timed.
type coldScenario struct {
	Name   string
	config string // TOML
	tool   string
	args   string // JSON object
	want   string // substring of a successful answer

	ToListen []time.Duration // exec -> "listening" printed
	ToCall   []time.Duration // exec -> first successful tools/call
	RSSKB    []int64         // VmRSS right after the first successful call
	Failures int
	LastErr  string
}

// measureCold starts the gateway reps times with s's config and times exec to
// the first successful tools/call: the client connects as soon as the
// gateway prints its address, initializes, and retries tools/call every
// 100µs until the tool answers (an HTTP upstream that is not connected yet
// yields "unknown tool").
func measureCold(ctx context.Context, gw string, env []string, s *coldScenario, dir string, reps int) error {
	cfg, err := writeFile(dir, "cold-"+slug(s.Name)+".toml", s.config)
	if err != nil {
		return err
	}
	for range reps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		listen, first, rss, err := coldOnce(ctx, gw, env, cfg, s)
		if err != nil {
			s.Failures++
			s.LastErr = err.Error()
			if s.Failures > reps/2 {
				return fmt.Errorf("cold start %s: %w", s.Name, err)
			}
			continue
		}
		s.ToListen = append(s.ToListen, listen)
		s.ToCall = append(s.ToCall, first)
		s.RSSKB = append(s.RSSKB, rss)
		sleepCtx(ctx, 20*time.Millisecond) // let the previous process's teardown finish
	}
	return nil
}

func coldOnce(ctx context.Context, gw string, env []string, cfg string, s *coldScenario) (toListen, toCall time.Duration, rss int64, err error) {
	c, err := startChild("gateway (cold start)", gw, []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0"}, env, 10*time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.stop(false)
	toListen = time.Since(c.started)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc := rawmcp.NewHTTPClient(1)
	defer hc.CloseIdleConnections()
	url := "http://" + c.addr + "/mcp"
	var sess *rawmcp.Session
	for {
		sess, err = rawmcp.Open(ctx, hc, url)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return 0, 0, 0, fmt.Errorf("initialize: %w (gateway stderr: %s)", err, c.stderr)
		}
		time.Sleep(100 * time.Microsecond)
	}
	sess.PrepareRaw(s.tool, s.args, s.want)
	for {
		err = sess.Call(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !errors.Is(err, rawmcp.ErrToolFailed) {
			return 0, 0, 0, fmt.Errorf("tools/call %s: %w (gateway stderr: %s)", s.tool, err, c.stderr)
		}
		time.Sleep(100 * time.Microsecond)
	}
	toCall = time.Since(c.started)
	return toListen, toCall, rssKB(c.pid), nil
}

// quantile returns the nearest-rank quantile of ds (unsorted).
func quantile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return percentile(s, p)
}

func medianKB(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
