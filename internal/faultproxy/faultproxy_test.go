package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer answers each line it reads with the same line; a line
// "big N" is answered with N bytes of 'x' and a newline.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if n, ok := parseBig(line); ok {
						_, _ = c.Write([]byte(strings.Repeat("x", n) + "\n"))
						continue
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// parseBig parses "big N".
func parseBig(line string) (int, bool) {
	s, ok := strings.CutPrefix(strings.TrimSpace(line), "big ")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func start(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip sends line and reads the answer, within d.
func roundTrip(c net.Conn, r *bufio.Reader, line string, d time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func TestPass(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	for _, msg := range []string{"hello", "world"} {
		got, err := roundTrip(c, r, msg, 5*time.Second)
		if err != nil || got != msg {
			t.Fatalf("round trip %q: %q, %v", msg, got, err)
		}
	}
	if p.Accepted() != 1 {
		t.Errorf("accepted = %d, want 1", p.Accepted())
	}
	if p.Mode().String() != "pass" {
		t.Errorf("mode = %s", p.Mode())
	}
}

func TestLatency(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	const d = 100 * time.Millisecond
	p.Set(Latency(d))
	start := time.Now()
	if got, err := roundTrip(c, r, "slow", 5*time.Second); err != nil || got != "slow" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	// Delayed once on the way there and once on the way back.
	if took := time.Since(start); took < 2*d {
		t.Errorf("round trip took %s, want at least %s", took, 2*d)
	}
	if s := p.Mode().String(); s != "latency(100ms)" {
		t.Errorf("mode = %s", s)
	}
}

func TestResetBreaksExistingAndNewConnections(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Reset())
	if _, err := roundTrip(c, r, "after", 5*time.Second); err == nil {
		t.Fatal("existing connection still works in reset mode")
	}
	// A new connection is accepted, then reset at once: the reset may
	// already reach the client's connect (the dial fails) or the first
	// round trip.
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Cleanup(func() { c2.Close() })
		if _, err := roundTrip(c2, bufio.NewReader(c2), "new", 5*time.Second); err == nil {
			t.Fatal("new connection works in reset mode")
		}
	}
	p.Set(Pass())
	c3, r3 := dial(t, p)
	if got, err := roundTrip(c3, r3, "again", 5*time.Second); err != nil || got != "again" {
		t.Fatalf("after reset mode ended: %q, %v", got, err)
	}
}

func TestBlackholeHoldsUntilModeChanges(t *testing.T) {
	p := start(t)
	old, oldR := dial(t, p)
	if _, err := roundTrip(old, oldR, "warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Blackhole())
	// Existing connection: the request is held, the read times out.
	if _, err := roundTrip(old, oldR, "held", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("existing connection in blackhole: %v, want a timeout", err)
	}
	// New connection: accepted, never connected.
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, "new", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection in blackhole: %v, want a timeout", err)
	}
	p.Set(Pass())
	// The held data flows once the blackhole ends.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if s, err := r.ReadString('\n'); err != nil || s != "new\n" {
		t.Fatalf("after blackhole: %q, %v", s, err)
	}
	_ = old.SetDeadline(time.Now().Add(5 * time.Second))
	if s, err := oldR.ReadString('\n'); err != nil || s != "held\n" {
		t.Fatalf("existing connection after blackhole: %q, %v", s, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestTruncate(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	p.Set(Truncate(10))
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("big 100\n")); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if len(b) != 10 || strings.Trim(string(b), "x") != "" {
		t.Errorf("read %d bytes %q, want 10 x's", len(b), b)
	}
	if err != nil && !isReset(err) {
		t.Errorf("end of truncated stream: %v", err)
	}
}

func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(err.Error(), "reset")
}

func TestWatchCountsAndFails(t *testing.T) {
	p := start(t)
	w := p.Watch(`"method":"do"`, 1)
	other := p.Watch("unrelated", 0)
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, `{"method":"do"}`, 5*time.Second); err == nil {
		t.Fatal("the first watched request was not failed")
	}
	c2, r2 := dial(t, p)
	if got, err := roundTrip(c2, r2, `{"method":"do"}`, 5*time.Second); err != nil || got != `{"method":"do"}` {
		t.Fatalf("second watched request: %q, %v", got, err)
	}
	if got, err := roundTrip(c2, r2, `{"method":"other"}`, 5*time.Second); err != nil || got != `{"method":"other"}` {
		t.Fatalf("unwatched request: %q, %v", got, err)
	}
	if w.Seen() != 2 || w.Failed() != 1 {
		t.Errorf("watch: seen %d failed %d, want 2 and 1", w.Seen(), w.Failed())
	}
	if other.Seen() != 0 {
		t.Errorf("unrelated watch saw %d", other.Seen())
	}
}

func TestWatchFindsPatternSplitAcrossReads(t *testing.T) {
	p := start(t)
	w := p.Watch("needle", 0)
	c, r := dial(t, p)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hay nee")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the proxy read the first half alone
	if _, err := c.Write([]byte("dle hay\n")); err != nil {
		t.Fatal(err)
	}
	if s, err := r.ReadString('\n'); err != nil || s != "hay needle hay\n" {
		t.Fatalf("echo: %q, %v", s, err)
	}
	if w.Seen() != 1 {
		t.Errorf("seen = %d, want 1", w.Seen())
	}
}

func TestCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	target := echoServer(t)
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	p.Set(Blackhole())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c)
	done := make(chan struct{})
	go func() { _ = p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("connection still open after Close: %v", err)
		}
		c.Close()
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("proxy still accepts after Close")
	}
	// The echo server's goroutines end with its connections; the proxy's
	// are gone already.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+3 {
		t.Errorf("goroutines: %d before, %d after Close", before, n)
	}
}

// recordingServer answers each line with the same line, after sending it on
// the returned channel.
func recordingServer(t *testing.T) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					got <- strings.TrimSuffix(line, "\n")
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), got
}

func TestWatchDeliveredResetsAtTheAnswer(t *testing.T) {
	addr, got := recordingServer(t)
	p, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := p.WatchDelivered(`"method":"do"`, 1)
	c, r := dial(t, p)
	if s, err := roundTrip(c, r, `{"method":"do"}`, 5*time.Second); err == nil || s != "" {
		t.Fatalf("the first watched request was answered: %q, %v", s, err)
	} else if !isReset(err) {
		t.Fatalf("the first watched request: %v, want a reset", err)
	}
	// The target received the failed request before the reset.
	select {
	case s := <-got:
		if s != `{"method":"do"}` {
			t.Fatalf("the target received %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the failed request never reached the target")
	}
	if w.Seen() != 1 || w.Failed() != 1 {
		t.Fatalf("watch: seen %d failed %d, want 1 and 1", w.Seen(), w.Failed())
	}
	// The next one goes through, on a new connection, as does anything else.
	c2, r2 := dial(t, p)
	for _, line := range []string{`{"method":"do"}`, `{"method":"other"}`} {
		if s, err := roundTrip(c2, r2, line, 5*time.Second); err != nil || s != line {
			t.Fatalf("%s: %q, %v", line, s, err)
		}
		if s := <-got; s != line {
			t.Fatalf("the target received %q, want %q", s, line)
		}
	}
	if w.Seen() != 2 || w.Failed() != 1 {
		t.Errorf("watch: seen %d failed %d, want 2 and 1", w.Seen(), w.Failed())
	}
}
