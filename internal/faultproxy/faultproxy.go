// Package faultproxy is a TCP proxy for tests that injects network faults
// between a client and the server it talks to.
//
// A [Proxy] listens on a loopback port and forwards every connection to a
// target address. Its [Mode] can be switched at any time, and applies to new
// and existing connections alike:
//
//   - [Pass] forwards bytes unchanged;
//   - [Latency] delays every chunk of data, in each direction;
//   - [Reset] resets every connection (existing ones at once, new ones as
//     they arrive), so calls in flight break mid-stream;
//   - [Blackhole] accepts connections but forwards nothing: new connections
//     are not connected to the target and data on existing ones is held, so
//     the peers see silence until they time out (or the mode changes, when
//     held data flows again);
//   - [Truncate] forwards n bytes from the target on each connection (counted
//     from when the mode was set), then closes the connection.
//
// A [Watch] counts the requests that carry a given byte pattern and can make
// the next few of them fail, which lets a test break exactly one call and
// count how many times it was sent. [Proxy.Watch] fails a request before it
// reaches the target; [Proxy.WatchDelivered] lets it reach the target and
// breaks the connection when the answer begins, so the target certainly got
// the request and the client never gets its answer.
//
// The proxy knows nothing about the protocol it carries. It is meant for
// tests on loopback, where a small request arrives in one read; a pattern
// split across two reads is still found (the tail of each read is kept).
package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type kind int

const (
	kindPass kind = iota
	kindLatency
	kindReset
	kindBlackhole
	kindTruncate
)

// Mode is what the proxy does to the traffic it carries. The zero Mode is
// [Pass].
type Mode struct {
	kind  kind
	delay time.Duration
	bytes int64
}

// Pass forwards traffic unchanged.
func Pass() Mode { return Mode{} }

// Latency delays every chunk of data by d, in each direction.
func Latency(d time.Duration) Mode { return Mode{kind: kindLatency, delay: d} }

// Reset resets every connection (TCP RST): existing ones when the mode is
// set, new ones as soon as they are accepted.
func Reset() Mode { return Mode{kind: kindReset} }

// Blackhole accepts connections and forwards nothing until the mode changes.
func Blackhole() Mode { return Mode{kind: kindBlackhole} }

// Truncate forwards at most n bytes from the target on each connection,
// counted from when the mode was set, then closes the connection.
func Truncate(n int) Mode { return Mode{kind: kindTruncate, bytes: int64(n)} }

// String describes the mode, such as "latency(50ms)".
func (m Mode) String() string {
	switch m.kind {
	case kindLatency:
		return fmt.Sprintf("latency(%s)", m.delay)
	case kindReset:
		return "reset"
	case kindBlackhole:
		return "blackhole"
	case kindTruncate:
		return fmt.Sprintf("truncate(%d)", m.bytes)
	}
	return "pass"
}

// Proxy is a fault-injecting TCP proxy. Its methods are safe for concurrent
// use.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    Mode
	gen     uint64        // incremented by every Set
	changed chan struct{} // closed (and replaced) by every Set
	links   map[*link]struct{}
	watches []*Watch
	closed  bool

	accepted atomic.Int64
	wg       sync.WaitGroup
}

// New starts a proxy on 127.0.0.1 (a kernel-chosen port) that forwards to
// target ("host:port"), in [Pass] mode.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address the proxy listens on ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted returns how many connections the proxy has accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Set switches the proxy to mode m. Switching to [Reset] resets every open
// connection before Set returns.
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	p.mode = m
	p.gen++
	close(p.changed)
	p.changed = make(chan struct{})
	var reset []*link
	if m.kind == kindReset {
		for l := range p.links {
			reset = append(reset, l)
		}
	}
	p.mu.Unlock()
	for _, l := range reset {
		l.close(true)
	}
}

// Close stops the proxy: the listener and every connection are closed, and
// Close returns when all of the proxy's goroutines have ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

// state returns the mode, its generation and a channel closed when it
// changes.
func (p *Proxy) state() (Mode, uint64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.gen, p.changed
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		if p.mode.kind == kindReset {
			p.mu.Unlock()
			l.close(true)
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve connects one accepted connection to the target and copies both
// ways until either side ends.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		l.close(false)
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	// A blackhole never connects to the target while it lasts.
	for {
		m, _, changed := p.state()
		if m.kind != kindBlackhole {
			break
		}
		select {
		case <-changed:
		case <-l.done:
			return
		}
	}
	t, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		l.close(true)
		return
	}
	if !l.setTarget(t) {
		_ = t.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(l, l.client, t, true) })
	wg.Go(func() { p.pipe(l, t, l.client, false) })
	wg.Wait()
}

// pipe copies src to dst, applying the proxy's mode to every chunk. up is
// the client-to-target direction.
func (p *Proxy) pipe(l *link, src, dst net.Conn, up bool) {
	buf := make([]byte, 32<<10)
	var tail []byte // the end of the previous chunk, for patterns split across reads
	var gen uint64  // the mode generation sent counts bytes in
	var sent int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if up && p.watched(l, tail, chunk) {
				return
			}
			if !up {
				if w := l.armed.Load(); w != nil {
					// The answer to a delivered request a watch fails:
					// reset instead of forwarding it.
					w.failed.Add(1)
					l.close(true)
					return
				}
			}
			if up {
				tail = keepTail(tail, chunk, p.longestPattern())
			}
			for len(chunk) > 0 {
				m, g, changed := p.state()
				if g != gen {
					gen, sent = g, 0
				}
				switch m.kind {
				case kindReset:
					l.close(true)
					return
				case kindBlackhole:
					select {
					case <-changed:
					case <-l.done:
						return
					}
					continue
				case kindLatency:
					t := time.NewTimer(m.delay)
					select {
					case <-t.C:
					case <-l.done:
						t.Stop()
						return
					}
				case kindTruncate:
					if !up {
						allowed := max(m.bytes-sent, 0)
						if int64(len(chunk)) > allowed {
							if allowed > 0 {
								_, _ = dst.Write(chunk[:allowed])
							}
							l.close(false)
							return
						}
						sent += int64(len(chunk))
					}
				}
				if _, werr := dst.Write(chunk); werr != nil {
					l.close(false)
					return
				}
				chunk = nil
			}
		}
		if err != nil {
			// Pass the end of the stream on, so the other side can answer
			// a half-closed request; a reset or a closed link ends both.
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
				return
			}
			l.close(false)
			return
		}
	}
}

// link is one proxied connection: the accepted client connection and, once
// dialled, the connection to the target.
type link struct {
	client net.Conn
	done   chan struct{}

	// armed is the watch that failed a request this link delivered: the
	// link is reset when the target's answer begins.
	armed atomic.Pointer[Watch]

	mu     sync.Mutex
	target net.Conn
	closed bool
	once   sync.Once
}

func (l *link) setTarget(t net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.target = t
	return true
}

// close ends the link; with reset, the client sees a TCP RST instead of an
// orderly close.
func (l *link) close(reset bool) {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		t := l.target
		l.mu.Unlock()
		close(l.done)
		if tc, ok := l.client.(*net.TCPConn); ok && reset {
			_ = tc.SetLinger(0)
		}
		_ = l.client.Close()
		if t != nil {
			if tc, ok := t.(*net.TCPConn); ok && reset {
				_ = tc.SetLinger(0)
			}
			_ = t.Close()
		}
	})
}

// A Watch counts the client-to-target chunks of data that contain a
// pattern, such as one request's method name, and makes the first few of
// them fail: the connection carrying such a chunk is reset and the chunk is
// not forwarded.
//
// A watch made by [Proxy.WatchDelivered] fails a chunk differently: it is
// forwarded, and the connection is reset when the target next sends data
// on it, which is not forwarded.
type Watch struct {
	pattern   []byte
	delivered bool // forward failed chunks, reset at the answer
	fail      atomic.Int64
	seen      atomic.Int64
	failed    atomic.Int64
}

// Watch starts counting chunks that contain pattern; the next fail of them
// reset their connection instead of being forwarded. pattern must not be
// empty.
func (p *Proxy) Watch(pattern string, fail int) *Watch {
	return p.watch(pattern, fail, false)
}

func (p *Proxy) watch(pattern string, fail int, delivered bool) *Watch {
	if pattern == "" {
		panic("faultproxy: empty watch pattern")
	}
	w := &Watch{pattern: []byte(pattern), delivered: delivered}
	w.fail.Store(int64(fail))
	p.mu.Lock()
	p.watches = append(p.watches, w)
	p.mu.Unlock()
	return w
}

// WatchDelivered is like [Proxy.Watch], but the next fail chunks that
// contain pattern are forwarded to the target, and their connection is
// reset as soon as the target sends anything back on it (that data is not
// forwarded). The target has then received the request and begun to answer
// it — it may have acted on it — while the client sees its connection
// reset without an answer. Meant for request-response protocols where a
// connection carries one request at a time (HTTP/1.1 without pipelining).
func (p *Proxy) WatchDelivered(pattern string, fail int) *Watch {
	return p.watch(pattern, fail, true)
}

// Seen returns how many chunks containing the pattern reached the proxy,
// failed ones included.
func (w *Watch) Seen() int64 { return w.seen.Load() }

// Failed returns how many of them the proxy failed: reset instead of
// forwarding them or, for [Proxy.WatchDelivered], reset at their answer.
func (w *Watch) Failed() int64 { return w.failed.Load() }

// watched counts chunk against the watches and reports whether a watch
// failed it before it was forwarded (the link is then reset). A
// [Proxy.WatchDelivered] watch that fails it arms the link instead, and
// the chunk is forwarded.
func (p *Proxy) watched(l *link, tail, chunk []byte) bool {
	p.mu.Lock()
	ws := p.watches
	p.mu.Unlock()
	if len(ws) == 0 {
		return false
	}
	data := chunk
	if len(tail) > 0 {
		data = append(append([]byte(nil), tail...), chunk...)
	}
	fail := false
	for _, w := range ws {
		if !bytes.Contains(data, w.pattern) {
			continue
		}
		w.seen.Add(1)
		for {
			n := w.fail.Load()
			if n <= 0 || (w.delivered && l.armed.Load() != nil) {
				break
			}
			if w.fail.CompareAndSwap(n, n-1) {
				if w.delivered {
					l.armed.Store(w) // only this goroutine arms l
				} else {
					w.failed.Add(1)
					fail = true
				}
				break
			}
		}
	}
	if fail {
		l.close(true)
	}
	return fail
}

func (p *Proxy) longestPattern() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, w := range p.watches {
		n = max(n, len(w.pattern))
	}
	return n
}

// keepTail returns the last n-1 bytes of tail+chunk: enough to find a
// pattern of n bytes that starts in this chunk and ends in the next, too
// few to count one that lies wholly in this chunk twice.
func keepTail(tail, chunk []byte, n int) []byte {
	if n <= 1 {
		return tail[:0]
	}
	keep := n - 1
	if len(chunk) >= keep {
		return append(tail[:0], chunk[len(chunk)-keep:]...)
	}
	all := append(tail, chunk...)
	if len(all) > keep {
		all = all[len(all)-keep:]
	}
	return append([]byte(nil), all...)
}
