package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the benchmark started: an upstream or a gateway. Every
// child runs in its own process group and is killed (with everything it
// started) by stop or killAll.
type child struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	started time.Time // just before exec
	addr    string    // from "listening on http://ADDR/mcp"
	exited  chan struct{}
	stderr  *tail
}

var (
	childrenMu sync.Mutex
	children   = map[*child]bool{}
	shutting   bool
)

// startChild execs path and waits (at most timeout) for its
// "listening on http://ADDR/mcp" line.
func startChild(name, path string, args []string, env []string, timeout time.Duration) (*child, error) {
	return spawn(name, path, args, env, timeout, "")
}

// startChildAt execs path, a program that prints no address line but was
// told to listen on addr; it does not wait for the listener.
func startChildAt(name, path string, args []string, env []string, addr string) (*child, error) {
	return spawn(name, path, args, env, 0, addr)
}

func spawn(name, path string, args []string, env []string, timeout time.Duration, addr string) (*child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	// Own process group, so the whole tree can be killed; and killed by
	// the kernel if the benchmark itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{}), stderr: &tail{max: 4096}}
	cmd.Stderr = c.stderr
	childrenMu.Lock()
	if shutting {
		childrenMu.Unlock()
		return nil, errors.New("shutting down")
	}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		childrenMu.Unlock()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	children[c] = true
	childrenMu.Unlock()
	c.pid = cmd.Process.Pid

	addrc := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		found := false
		for {
			line, err := r.ReadString('\n')
			if !found {
				if i := strings.Index(line, "listening on http://"); i >= 0 {
					a := strings.TrimSpace(line[i+len("listening on http://"):])
					a, _, _ = strings.Cut(a, "/")
					addrc <- a
					found = true
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	if addr != "" {
		c.addr = addr
		return c, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case c.addr = <-addrc:
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("%s exited before listening: %s", name, c.stderr)
	case <-t.C:
		c.stop(false)
		return nil, fmt.Errorf("%s did not print its address within %s: %s", name, timeout, c.stderr)
	}
}

// stop ends the child and everything it started. Graceful stops send SIGTERM
// first (so CPU profiles get written) and wait up to 5s.
func (c *child) stop(graceful bool) {
	if graceful {
		_ = syscall.Kill(c.pid, syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
		}
	}
	killTree(c.pid)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
	}
	childrenMu.Lock()
	delete(children, c)
	childrenMu.Unlock()
}

// killAll kills every child still running; nothing is started afterwards.
func killAll() {
	childrenMu.Lock()
	shutting = true
	list := make([]*child, 0, len(children))
	for c := range children {
		list = append(list, c)
	}
	childrenMu.Unlock()
	for _, c := range list {
		c.stop(false)
	}
}

// killTree SIGKILLs pid's process group and every descendant of pid (a
// gateway's stdio upstreams live in process groups of their own).
func killTree(pid int) {
	desc := descendants(pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, d := range desc {
		_ = syscall.Kill(-d, syscall.SIGKILL)
		_ = syscall.Kill(d, syscall.SIGKILL)
	}
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	kids := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(p)
		if err != nil || len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		kids[pp] = append(kids[pp], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			out = append(out, k)
			queue = append(queue, k)
		}
	}
	return out
}

// statFields returns the fields of /proc/PID/stat after the command name:
// [0] is the state (field 3 in proc(5)), [1] the ppid, [11] utime, [12] stime.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	return strings.Fields(string(b[i+1:])), nil
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime returns the user+system CPU time pid has used (all its threads),
// from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed stat times")
	}
	return time.Duration(u+s) * clockTick, nil
}

// statusKB returns a "kB" field of /proc/PID/status, such as VmRSS or VmHWM.
func statusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func rssKB(pid int) int64 {
	v, _ := statusKB(pid, "VmRSS")
	return v
}

// selfCPU returns the benchmark process's own CPU time.
// benchCPU is the CPU time used so far by the benchmark itself and the
// processes pids it started (to tell their load from other processes').
func benchCPU(pids []int) time.Duration {
	d := selfCPU()
	for _, p := range pids {
		d += cpuOf(p)
	}
	return d
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	t.mu.Unlock()
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return "(no stderr)"
	}
	return s
}

var _ io.Writer = (*tail)(nil)

// machineBusy returns the CPU time all CPUs spent busy (user, nice, system,
// irq, softirq, steal), from the first line of /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * clockTick
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// syscalls returns the read and write system calls pid has made (syscr +
// syscw from /proc/PID/io), or 0 if that file cannot be read.
func syscalls(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0
	}
	var n int64
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "syscr" || k == "syscw") {
			x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			n += x
		}
	}
	return n
}

// ctxSwitches sums the voluntary and involuntary context switches of pid's
// threads (from /proc/PID/task/*/status). Threads that exited are missed,
// which for a Go process, whose threads live as long as it does, is rare.
func ctxSwitches(pid int) int64 {
	if pid == 0 {
		return 0
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}
