package upstream

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// dyingTransport passes messages through until armed; then the next call
// it is asked to write plays a stdio child that died just before the
// write: its stdout reaches EOF, the write waits until the SDK has seen
// that EOF and given up on the connection (it closes the connection,
// which it does only once the read loop has retired every call in flight),
// and then fails with EPIPE without writing anything, as a write to a
// dead child's stdin does.
type dyingTransport struct {
	mcp.Transport
	armed  atomic.Bool
	eof    chan struct{} // closed: Read reports EOF
	closed chan struct{} // closed when the SDK closes the connection
}

func newDyingTransport(t mcp.Transport) *dyingTransport {
	return &dyingTransport{Transport: t, eof: make(chan struct{}), closed: make(chan struct{})}
}

func (d *dyingTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := d.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	dc := &dyingConn{Connection: c, d: d, msgs: make(chan readResult)}
	go dc.pump()
	return dc, nil
}

type readResult struct {
	msg jsonrpc.Message
	err error
}

type dyingConn struct {
	mcp.Connection
	d       *dyingTransport
	msgs    chan readResult
	closing sync.Once
}

func (c *dyingConn) pump() {
	for {
		msg, err := c.Connection.Read(context.Background())
		select {
		case c.msgs <- readResult{msg, err}:
		case <-c.d.closed:
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *dyingConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case r := <-c.msgs:
		return r.msg, r.err
	case <-c.d.eof:
		return nil, io.EOF
	case <-c.d.closed:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *dyingConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() && c.d.armed.Load() {
		close(c.d.eof)
		select {
		case <-c.d.closed:
		case <-time.After(10 * time.Second):
			return errors.New("test: the SDK never closed the connection")
		}
		return &os.PathError{Op: "write", Path: "|1", Err: syscall.EPIPE}
	}
	return c.Connection.Write(ctx, msg)
}

func (c *dyingConn) Close() error {
	c.closing.Do(func() { close(c.d.closed) })
	return c.Connection.Close()
}

// trackedSession connects a client through writeTracking and a
// dyingTransport to a server with one tool that counts its calls, as
// connect does for a stdio upstream.
func trackedSession(t *testing.T, ctx context.Context) (*Upstream, *mcp.ClientSession, *dyingTransport, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "bump"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		calls.Add(1)
		return &mcp.CallToolResult{}, nil, nil
	})
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	dt := newDyingTransport(ct)
	client := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
	cs, err := client.Connect(ctx, writeTracking{dt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{}
	u.pipes.Store(cs, &Pipe{}) // what connect records for a stdio connection
	t.Cleanup(func() { u.pipes.Delete(cs); _ = cs.Close() })
	return u, cs, dt, &calls
}

func neverWritten(err error) bool {
	var pe *os.PathError
	return errors.Is(err, ErrUnavailable) ||
		(errors.As(err, &pe) && pe.Op == "write" && errors.Is(pe.Err, syscall.EPIPE))
}

// TestTrackSendChildDiedBeforeWrite reproduces, deterministically, the
// race of a call with a stdio child's death: the SDK registers the call,
// its read loop sees EOF and retires the call with it, and only then does
// the write fail. The SDK reports the read loop's bare EOF, which alone
// would read as "maybe sent"; the send record shows the request was never
// written.
func TestTrackSendChildDiedBeforeWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u, cs, dt, calls := trackedSession(t, ctx)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bump"}); err != nil {
		t.Fatalf("a call before the child died: %v", err)
	}
	dt.armed.Store(true)

	tctx, refine := u.TrackSend(ctx, cs)
	_, raw := cs.CallTool(tctx, &mcp.CallToolParams{Name: "bump"})
	if raw == nil {
		t.Fatal("the call on a dead child succeeded")
	}
	// What the SDK says by itself: the read loop's bare EOF, nothing
	// about the write (if this fails after an SDK upgrade, the SDK may now
	// report the write's fate itself).
	if !errors.Is(raw, io.EOF) || strings.Contains(raw.Error(), "closing") || neverWritten(raw) {
		t.Fatalf("the SDK's own error: %v (%T), want the bare EOF of the read loop", raw, raw)
	}
	err := refine(raw)
	if !neverWritten(err) {
		t.Fatalf("refined error %v: want one that shows the request was never written", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the server ran %d calls, want 1 (the one before the child died)", n)
	}

	// Once the session's connection has ended (Wait returned), the SDK
	// refuses the call before writing it.
	if err := cs.Wait(); err != nil {
		t.Logf("wait: %v", err)
	}
	tctx, refine = u.TrackSend(ctx, cs)
	_, raw = cs.CallTool(tctx, &mcp.CallToolParams{Name: "bump"})
	if err := refine(raw); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call after the connection ended: %v, want it wrapped in ErrUnavailable", err)
	}
}

// TestTrackSendWritten: a request that was written keeps its error as it
// is (an EOF after the write may have run), and an untracked session's
// errors are never refined.
func TestTrackSendWritten(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u, cs, _, _ := trackedSession(t, ctx)
	tctx, refine := u.TrackSend(ctx, cs)
	if _, err := cs.CallTool(tctx, &mcp.CallToolParams{Name: "bump"}); err != nil {
		t.Fatal(err)
	}
	if err := refine(io.EOF); err != io.EOF {
		t.Fatalf("EOF after a written request refined to %v", err)
	}
	if err := refine(nil); err != nil {
		t.Fatalf("success refined to %v", err)
	}

	_, refine = u.TrackSend(ctx, &mcp.ClientSession{})
	if err := refine(io.EOF); err != io.EOF {
		t.Fatalf("an untracked session's EOF refined to %v", err)
	}
}
