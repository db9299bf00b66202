package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
)

// What a child's stderr costs at most: lines kept for the status, the
// longest line logged, and the rate at which lines are logged (a burst,
// then a steady rate; the lines beyond it are counted and the count is
// logged with the next line that passes).
const (
	stderrTailLines = 20
	stderrMaxLine   = 2048
	stderrBurst     = 40
	stderrPerSecond = 5
)

// stderrTail is what an upstream keeps of its children's stderr: the
// last lines, for the upstream's status and for the error of a failed
// start, and the budget of lines it may log (shared by every child of the
// upstream, so a child that crashes at each restart does not log its
// stack trace at each one).
type stderrTail struct {
	mu         sync.Mutex
	lines      []string
	tokens     float64
	last       time.Time
	suppressed int
}

// add keeps line and reports whether it may be logged now, and how many
// lines were not logged before it.
func (t *stderrTail) add(line string, now time.Time) (logIt bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == stderrTailLines {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:stderrTailLines-1]
	}
	t.lines = append(t.lines, line)
	if t.last.IsZero() {
		t.tokens = stderrBurst
	} else {
		t.tokens = min(stderrBurst, t.tokens+now.Sub(t.last).Seconds()*stderrPerSecond)
	}
	t.last = now
	if t.tokens < 1 {
		t.suppressed++
		return false, 0
	}
	t.tokens--
	suppressed, t.suppressed = t.suppressed, 0
	return true, suppressed
}

// last returns a copy of the kept lines, oldest first.
func (t *stderrTail) lastLines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return nil
	}
	return append([]string(nil), t.lines...)
}

func (t *stderrTail) reset() {
	t.mu.Lock()
	t.lines = nil
	t.mu.Unlock()
}

// lineLogger is a child's stderr: it logs each line at info, tagged with
// the upstream (a server that fails to start usually says why there),
// within the upstream's budget (stderrBurst lines at once, stderrPerSecond
// a second after that; the count of lines left out is logged with the next
// line that passes), and keeps the last lines in tail. Memory is bounded:
// a line longer than stderrMaxLine is cut.
type lineLogger struct {
	log  *slog.Logger
	tail *stderrTail
	now  func() time.Time

	mu  sync.Mutex
	buf []byte
}

func newLineLogger(log *slog.Logger, tail *stderrTail) *lineLogger {
	return &lineLogger{log: log, tail: tail, now: time.Now}
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > stderrMaxLine {
		l.line(string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

// line handles one complete line; l.mu is held.
func (l *lineLogger) line(s string) {
	s = strings.TrimRight(s, "\r")
	if len(s) > stderrMaxLine {
		s = s[:stderrMaxLine] + "…"
	}
	if strings.TrimSpace(s) == "" {
		return
	}
	logIt, suppressed := l.tail.add(s, l.now())
	switch {
	case !logIt:
	case suppressed > 0:
		l.log.Info("upstream stderr", "line", s, "lines_not_logged_before", suppressed)
	default:
		l.log.Info("upstream stderr", "line", s)
	}
}

// telling picks from a child's last stderr lines the ones that most likely
// say why it failed: the last line that mentions an error, and the last
// line.
func telling(tail []string) []string {
	if len(tail) == 0 {
		return nil
	}
	last := strings.TrimSpace(tail[len(tail)-1])
	for i := len(tail) - 1; i >= 0; i-- {
		l := strings.ToLower(tail[i])
		if strings.Contains(l, "error") || strings.Contains(l, "cannot") || strings.Contains(l, "not found") || strings.Contains(l, "denied") || strings.Contains(l, "failed") {
			if s := strings.TrimSpace(tail[i]); s != last {
				return []string{s, last}
			}
			break
		}
	}
	return []string{last}
}

// explainConnectErr turns the error of a failed connect into one that says
// what happened and what to do: an immediate failure (no such command,
// permission denied, connection refused, a name that does not resolve) as
// what it is, a time-out as a time-out with the budget that ran out, and
// a child that exited with the last lines it wrote to stderr.
func explainConnectErr(cfg config.Upstream, err error, timedOut bool, budget time.Duration, tail []string) error {
	said := ""
	if len(tail) > 0 {
		said = "; the server said: " + strings.Join(telling(tail), " … ")
	}
	var ee *exec.Error
	var pe *fs.PathError
	var dns *net.DNSError
	switch {
	case timedOut:
		hint := "raise connect_timeout if the server is slow to start, and check that it speaks MCP on stdout"
		switch {
		case cfg.IsPackageRunner():
			hint = fmt.Sprintf("%s may still be downloading the server: raise start_timeout (now %s), or fetch the package once by hand", commandName(cfg), budget)
		case cfg.Transport == config.TransportHTTP || cfg.Transport == config.TransportSSE:
			hint = "the server accepted the connection but did not answer; check that the URL is its MCP endpoint"
		}
		var cause error
		switch {
		case err != nil:
			cause = fmt.Errorf("%w%s", err, said)
		case said != "":
			cause = errors.New(strings.TrimPrefix(said, "; "))
		}
		return &StartError{What: fmt.Sprintf("no answer to initialize within %s", budget), Hint: hint, Err: cause}
	case errors.As(err, &pe) && pe.Op == "chdir":
		return &StartError{What: fmt.Sprintf("working directory %q can not be entered", pe.Path), Hint: "check the upstream's dir (or cwd)", Err: err}
	case errors.As(err, &ee) || errors.As(err, &pe) && strings.Contains(pe.Op, "exec"):
		switch {
		case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
			return &StartError{What: fmt.Sprintf("command %q not found", cfg.Command), Hint: "install it, or give its full path in command (the child's PATH is the gateway's)", Err: err}
		case errors.Is(err, syscall.ENOEXEC):
			return &StartError{What: fmt.Sprintf("%q is not a program this system can run", cfg.Command), Hint: "a script needs a #! line, or name its interpreter in command and the script in args", Err: err}
		case errors.Is(err, fs.ErrPermission):
			return &StartError{What: fmt.Sprintf("permission denied starting %q", cfg.Command), Hint: "make the file executable (chmod +x) and readable by the gateway's user", Err: err}
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &StartError{What: "connection refused by " + hostOf(cfg.URL), Hint: "nothing listens there: is the server running, and is the URL's port right?", Err: err}
	case errors.As(err, &dns):
		return &StartError{What: fmt.Sprintf("host name %q does not resolve", dns.Name), Hint: "check the URL's host name and the gateway's DNS", Err: err}
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return &StartError{What: "can not reach " + hostOf(cfg.URL), Hint: "check the network path to the server", Err: err}
	}
	if cfg.Transport == config.TransportStdio && said != "" {
		return &StartError{What: "the server stopped before answering initialize", Hint: "its stderr, logged as \"upstream stderr\", says why", Err: fmt.Errorf("%w%s", err, said)}
	}
	return err
}

// StartError is a failed connect explained: what happened, the underlying
// error and a hint for the operator.
type StartError struct {
	What string
	Hint string
	Err  error
}

func (e *StartError) Error() string {
	s := e.What
	if e.Err != nil && e.Err.Error() != "" {
		s += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	return s
}

func (e *StartError) Unwrap() error { return e.Err }

func commandName(cfg config.Upstream) string {
	if cfg.Command == "" {
		return "the command"
	}
	s := cfg.Command
	for _, a := range cfg.Args {
		if !strings.HasPrefix(a, "-") {
			s += " " + a
			break
		}
	}
	return s
}

func hostOf(rawURL string) string {
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if k := strings.LastIndexByte(rest, '@'); k >= 0 {
			rest = rest[k+1:] // never log credentials in the URL
		}
		return rest
	}
	return "the server"
}
