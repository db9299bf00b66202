package queue

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs producers and consumers in child processes (this
// test binary again, selected by crashModeEnv) and kills them with
// SIGKILL at random moments.
const (
	crashModeEnv = "MCPEDGE_QUEUE_CRASH_MODE" // "produce" or "consume"
	crashDirEnv  = "MCPEDGE_QUEUE_CRASH_DIR"
	crashTargets = 3
)

// upstreamLog is the fake upstream's record of raw deliveries, one line
// "deliverykey target id" each, appended by every process that delivers.
func upstreamLog(dir string) string { return filepath.Join(dir, "upstream.log") }

// TestCrashChild is the child process of TestCrash; it is skipped unless
// TestCrash started it.
func TestCrashChild(t *testing.T) {
	mode, dir := os.Getenv(crashModeEnv), os.Getenv(crashDirEnv)
	if mode == "" {
		t.Skip("helper process of TestCrash")
	}
	// Never outlive a parent that failed to kill us.
	time.AfterFunc(2*time.Minute, func() { os.Exit(3) })
	q := openQueue(t, dir, unbounded())
	var out sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format+"\n", args...)
		out.Lock()
		defer out.Unlock()
		// One write(2) per line, straight to the pipe: a line the parent
		// reads was written after the event it reports.
		if _, err := io.WriteString(os.Stdout, line); err != nil {
			os.Exit(4)
		}
	}
	say("ready")
	switch mode {
	case "produce":
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := 0; ; i++ {
					id, err := q.Enqueue(context.Background(), Entry{
						Tenant:    fmt.Sprint("tenant", g%2),
						Target:    fmt.Sprint("up", (g+i)%crashTargets),
						Tool:      "write",
						Arguments: json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)),
					})
					if err != nil {
						say("error %v", err)
						return
					}
					say("id %s", id)
				}
			})
		}
		wg.Wait()
	case "consume":
		log, err := os.OpenFile(upstreamLog(dir), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			say("error %v", err)
			break
		}
		var wg sync.WaitGroup
		for i := range crashTargets {
			wg.Go(func() {
				err := q.Deliver(context.Background(), fmt.Sprint("up", i), func(ctx context.Context, e *Entry) (json.RawMessage, error) {
					if _, err := fmt.Fprintf(log, "%s %s %s\n", e.DeliveryKey(), e.Target, e.ID); err != nil {
						return nil, err
					}
					say("delivered %s", e.ID)
					return json.RawMessage(`{"ok":true}`), nil
				})
				say("error %v", err)
			})
		}
		wg.Wait()
	}
	select {} // wait for the kill
}

// child is a running TestCrashChild.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startChild(t *testing.T, mode, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashModeEnv+"="+mode, crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1<<16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// runUntil reads the child's lines, passing each to onLine, until onLine
// returns true (then it kills the child) or the child ends; it returns
// every line read, including those read after the kill.
func (c *child) runUntil(t *testing.T, onLine func(string) bool) {
	t.Helper()
	timeout := time.After(90 * time.Second)
	killed := false
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				err := c.cmd.Wait()
				if !killed {
					t.Fatalf("child ended before it was killed: %v", err)
				}
				return
			}
			if strings.HasPrefix(line, "error ") && !killed {
				t.Fatalf("child: %s", line)
			}
			if onLine(line) && !killed {
				c.cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		case <-timeout:
			c.cmd.Process.Kill()
			t.Fatal("child did not reach its kill point in 90 s")
		}
	}
}

// TestCrash kills producers in the middle of bursts of enqueues and
// consumers in the middle of deliveries, then delivers everything left
// and checks that every id a producer printed (after its Enqueue
// returned) was delivered, that no entry was delivered more often than
// the kills explain, that each target got its entries in order, and that
// the database passes integrity_check.
func TestCrash(t *testing.T) {
	if os.Getenv(crashModeEnv) != "" {
		t.Skip("in a child")
	}
	dir := t.TempDir()
	const rounds = 3
	printed := map[string]bool{}
	consumerKills := 0
	for round := range rounds {
		// Produce and kill after a random number of acknowledged ids.
		produceKill := 50 + rand.IntN(1000)
		n := 0
		startChild(t, "produce", dir).runUntil(t, func(line string) bool {
			if id, ok := strings.CutPrefix(line, "id "); ok {
				printed[id] = true
				n++
			}
			return n >= produceKill
		})
		waiting := checkIntegrity(t, dir)

		// Consume and kill after a random number of deliveries, fewer
		// than are waiting (or the consumer would run out first).
		consumeKill := 1 + rand.IntN(max(1, min(200, waiting-1)))
		n = 0
		startChild(t, "consume", dir).runUntil(t, func(line string) bool {
			if strings.HasPrefix(line, "delivered ") {
				n++
			}
			return n >= consumeKill
		})
		consumerKills++
		checkIntegrity(t, dir)

		// Drain what is left in this process, then check.
		stats := drain(t, dir, printed, consumerKills)
		t.Logf("round %d: producer killed after %d acknowledged ids, consumer after %d deliveries; in all: %s", round+1, produceKill, consumeKill, stats)
	}
}

// checkIntegrity runs integrity_check and returns how many entries are
// waiting for delivery.
func checkIntegrity(t *testing.T, dir string) int {
	t.Helper()
	q := openQueue(t, dir, unbounded())
	defer q.Close()
	if err := q.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for after := ""; ; {
		page, err := q.List(t.Context(), Filter{State: Pending, After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return n
		}
		n += len(page)
		after = page[len(page)-1].ID
	}
}

// drain delivers every waiting entry to the fake upstream and checks the
// invariants; it returns a summary.
func drain(t *testing.T, dir string, printed map[string]bool, kills int) string {
	t.Helper()
	ctx := t.Context()
	q := openQueue(t, dir, unbounded())
	defer q.Close()
	log, err := os.OpenFile(upstreamLog(dir), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	targets, err := q.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, target := range targets {
		wg.Go(func() {
			q.Deliver(dctx, target, func(ctx context.Context, e *Entry) (json.RawMessage, error) {
				_, err := fmt.Fprintf(log, "%s %s %s\n", e.DeliveryKey(), e.Target, e.ID)
				return json.RawMessage(`{"ok":true}`), err
			})
		})
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		waiting := 0
		for _, s := range []State{Pending, Delivering} {
			l, err := q.List(ctx, Filter{State: s, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			waiting += len(l)
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entries still waiting after 2 minutes of delivery")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if err := q.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}

	// Every stored entry, in enqueue order.
	var all []Entry
	for after := ""; ; {
		page, err := q.List(ctx, Filter{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
	pos := map[string]int{}
	for i, e := range all {
		pos[e.ID] = i
		if e.State != Done {
			t.Errorf("entry %s is %s after draining (%s)", e.ID, e.State, e.LastError)
		}
	}
	for id := range printed {
		if _, ok := pos[id]; !ok {
			t.Errorf("acknowledged id %s is not in the queue", id)
		}
	}

	// What the upstream saw.
	data, err := os.ReadFile(upstreamLog(dir))
	if err != nil {
		t.Fatal(err)
	}
	raw := 0
	seen := map[string]int{} // delivery key → deliveries
	keyOf := map[string]string{}
	last := map[string]int{} // target → position of its last first delivery
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bad upstream log line %q", line)
		}
		key, target, id := f[0], f[1], f[2]
		raw++
		seen[key]++
		keyOf[id] = key
		if seen[key] > 1 {
			continue // a repeat, dropped by the idempotent upstream
		}
		p, ok := pos[id]
		if !ok {
			t.Errorf("upstream got entry %s, which is not in the queue", id)
			continue
		}
		if prev, ok := last[target]; ok && p < prev {
			t.Errorf("target %s got entry %s (position %d) after position %d: out of order", target, id, p, prev)
		}
		last[target] = p
	}
	for _, e := range all {
		if seen[keyOf[e.ID]] == 0 || keyOf[e.ID] != e.DeliveryKey() {
			t.Errorf("entry %s is done but the upstream never got it", e.ID)
		}
	}
	dupes := raw - len(seen)
	// A kill can interrupt at most one delivery per target; only those
	// are delivered twice.
	if dupes > kills*crashTargets {
		t.Errorf("%d repeated deliveries after %d consumer kills of %d targets: more than the kills explain", dupes, kills, crashTargets)
	}
	if len(seen) != len(all) {
		t.Errorf("upstream applied %d distinct calls for %d entries", len(seen), len(all))
	}
	return fmt.Sprintf("%d ids acknowledged, %d entries stored (%d committed but not acknowledged before a kill), %d raw deliveries, %d distinct (%d repeats after %d consumer kills), integrity ok",
		len(printed), len(all), len(all)-len(printed), raw, len(seen), dupes, kills)
}
