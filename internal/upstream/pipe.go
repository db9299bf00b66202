package upstream

// The framed pipe to a stdio child.
//
// A stdio upstream is one child process and one pair of pipes, which the
// SDK client session and the gateway's hot path share. The SDK client
// reads and writes newline-delimited JSON through an mcp.IOTransport on
// the pipe's two ends, as it would through the SDK's CommandTransport. The
// hot path writes a request's bytes as they are (the validated client
// params with the upstream's name spliced in, under an id of its own) and
// gets back the bytes of the response line with that id: the reader hands
// such a line to the waiting call instead of to the SDK, and passes every
// other line (the SDK's own responses, notifications, the child's requests
// to the client) on to the SDK unchanged. Neither side decodes what it
// only forwards.
//
// Lines are bounded (MaxPipeLine); a longer one, or stdout ending, ends the
// connection, and every hot call still waiting gets the error — after its
// request was written, so it may have run.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
)

// MaxPipeLine is the longest line accepted from a stdio child (the SDK's
// own default for stdio).
const MaxPipeLine = 16 << 20

// ErrPipeClosed is the error of a hot call on a pipe whose child's stdout
// has ended.
var ErrPipeClosed = errors.New("the stdio server's output ended")

// Pipe is a stdio child's stdin and stdout; see the file comment.
type Pipe struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	out       *bufio.Reader
	maxLine   int
	terminate time.Duration

	wmu    sync.Mutex // a message is written whole
	broken bool       // a write failed part-way: no further message can be framed (under wmu)

	mu      sync.Mutex
	pending map[string]chan pipeAnswer
	err     error // why stdout ended, once it has

	rest []byte // what the SDK has not read yet of the current line (its reader goroutine only)

	closeOnce sync.Once
	closeErr  error

	answered atomic.Uint64 // answers handed to hot calls
}

type pipeAnswer struct {
	msg []byte
	err error
}

// startPipe starts cmd with its stdin and stdout as a Pipe. terminate is
// how long Close waits for the child to exit after closing its stdin, and
// again after SIGTERM, before killing it.
func startPipe(cmd *exec.Cmd, terminate time.Duration) (*Pipe, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return newPipe(cmd, stdin, stdout, terminate), nil
}

func newPipe(cmd *exec.Cmd, stdin io.WriteCloser, stdout io.Reader, terminate time.Duration) *Pipe {
	return &Pipe{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 64<<10), maxLine: MaxPipeLine,
		terminate: terminate, pending: make(map[string]chan pipeAnswer)}
}

// Call writes msg, one JSON-RPC request with id id ending in a newline,
// and waits for the child's response to it, which it returns as the bytes
// of its line. sent reports whether msg was written whole (from then on
// the child may run it). ctx ending stops the wait, not the request; the
// caller tells the child (Notify) if it must.
func (p *Pipe) Call(ctx context.Context, id string, msg []byte) (answer []byte, sent bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err // as the SDK's transport: nothing written for nobody
	}
	ch := make(chan pipeAnswer, 1)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return nil, false, p.err
	}
	if _, dup := p.pending[id]; dup {
		p.mu.Unlock()
		return nil, false, fmt.Errorf("request id %q is already waiting for an answer", id)
	}
	p.pending[id] = ch
	p.mu.Unlock()
	if sent, err = p.write(msg); err != nil {
		p.forget(id)
		return nil, sent, err
	}
	select {
	case a := <-ch:
		return a.msg, true, a.err
	case <-ctx.Done():
		p.forget(id)
		return nil, true, ctx.Err()
	}
}

// Notify writes msg, one JSON-RPC notification ending in a newline.
func (p *Pipe) Notify(msg []byte) error {
	_, err := p.write(msg)
	return err
}

// write writes msg whole, or reports that nothing of it was written
// (sent false) or that the pipe broke part-way.
func (p *Pipe) write(msg []byte) (sent bool, err error) {
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		return false, errors.New("a message to a stdio server must end its line")
	}
	if bytes.IndexByte(msg[:len(msg)-1], '\n') >= 0 {
		return false, errors.New("a message to a stdio server must be one line")
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.broken {
		return false, fmt.Errorf("writing to the stdio server: an earlier write failed part-way")
	}
	n, err := p.stdin.Write(msg)
	switch {
	case err == nil:
		return true, nil
	case n > 0:
		// The child may have read a part of a line: nothing written after
		// it could be framed.
		p.broken = true
		return false, fmt.Errorf("writing to the stdio server (after %d of %d bytes): %w", n, len(msg), err)
	}
	return false, fmt.Errorf("writing to the stdio server: %w", err)
}

func (p *Pipe) forget(id string) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// readLine reads the child's next line, without its newline, into a new
// slice.
func (p *Pipe) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := p.out.ReadSlice('\n')
		if len(line)+len(chunk) > p.maxLine+1 {
			return nil, fmt.Errorf("the stdio server sent a line longer than %d bytes", p.maxLine)
		}
		if err == nil && line == nil {
			return bytes.Clone(chunk[:len(chunk)-1]), nil
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) > 0:
			return line, nil // the last line, without its newline
		}
		return nil, err
	}
}

// deliver hands line to the hot call waiting for it, if it is the
// response to one: an object with an id a call waits for and no method.
func (p *Pipe) deliver(line []byte) bool {
	p.mu.Lock()
	waiting := len(p.pending) > 0
	p.mu.Unlock()
	if !waiting {
		return false
	}
	id, ok := responseID(line)
	if !ok {
		return false
	}
	p.mu.Lock()
	ch, ok := p.pending[id]
	delete(p.pending, id)
	p.mu.Unlock()
	if ok {
		p.answered.Add(1)
		ch <- pipeAnswer{msg: line}
	}
	return ok
}

// Answered reports how many answers the pipe has handed to hot calls.
func (p *Pipe) Answered() uint64 { return p.answered.Load() }

// responseID is the string id of a JSON-RPC response line (an object with
// an id and no method), read in place.
func responseID(line []byte) (string, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return "", false
	}
	var rawID []byte
	method := false
	if jsonguard.Members(line, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case "id":
			rawID = m.Value
		case "method":
			method = true
		}
		return !method
	}) != nil || method || rawID == nil {
		return "", false
	}
	return jsonguard.Unquote(rawID)
}

// fail ends the pipe's reading with err: every hot call waiting gets it.
func (p *Pipe) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	p.err = fmt.Errorf("%w: %w", ErrPipeClosed, err)
	for id, ch := range p.pending {
		ch <- pipeAnswer{err: p.err}
		delete(p.pending, id)
	}
}

// sdkReader is the end of the pipe the SDK client reads: every line the
// hot path does not take.
type sdkReader struct{ p *Pipe }

func (r sdkReader) Read(b []byte) (int, error) {
	p := r.p
	for len(p.rest) == 0 {
		line, err := p.readLine()
		if err != nil {
			p.fail(err)
			return 0, err
		}
		if len(bytes.TrimSpace(line)) == 0 || p.deliver(line) {
			continue
		}
		p.rest = append(line, '\n')
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
	if len(p.rest) == 0 {
		p.rest = nil // a big line is not kept until the next one
	}
	return n, nil
}

// Close does nothing: the child's stdout ends when it exits, which the
// writer's Close sees to.
func (sdkReader) Close() error { return nil }

// sdkWriter is the end of the pipe the SDK client writes: its messages,
// each in one Write, framed with the hot path's.
type sdkWriter struct{ p *Pipe }

func (w sdkWriter) Write(b []byte) (int, error) {
	if _, err := w.p.write(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close ends the child as the stdio transport asks: its stdin closed,
// then, if it has not exited within the terminate duration, SIGTERM, and
// after as long again SIGKILL.
func (w sdkWriter) Close() error { return w.p.Close() }

// Close ends the child (see sdkWriter.Close); later calls return the
// first's result.
func (p *Pipe) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.close() })
	return p.closeErr
}

func (p *Pipe) close() error {
	// Hot calls still waiting when the child is gone get an error: once
	// the SDK's connection is closed nothing may read the child's output
	// to its end (which fails them too).
	defer p.fail(errors.New("the connection was closed"))
	// Not under wmu: a write the child does not read would hold it, and
	// closing is what ends such a write. A stdin that fails to close still
	// leaves the child to be ended and waited for below.
	if err := p.stdin.Close(); p.cmd == nil || p.cmd.Process == nil {
		if err != nil {
			return fmt.Errorf("closing the stdio server's stdin: %w", err)
		}
		return nil
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	wait := func() (error, bool) {
		t := time.NewTimer(p.terminate)
		defer t.Stop()
		select {
		case err := <-exited:
			return err, true
		case <-t.C:
			return nil, false
		}
	}
	if err, ok := wait(); ok {
		return exitErr(err)
	}
	if p.cmd.Process.Signal(syscall.SIGTERM) == nil {
		if err, ok := wait(); ok {
			return exitErr(err)
		}
	}
	_ = p.cmd.Process.Kill()
	return fmt.Errorf("the stdio server did not exit within %s of its stdin closing and SIGTERM: killed", 2*p.terminate)
}

// exitErr keeps a child's exit status out of the close error: a server
// that exits with a signal or a status when its stdin closes has still
// closed.
func exitErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil
	}
	return err
}
