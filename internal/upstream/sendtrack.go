package upstream

// Knowing whether a request was written to a stdio child.
//
// When a stdio child dies, the SDK client's jsonrpc2 connection learns it
// from its read loop, which sees EOF on the child's stdout and retires every
// call in flight with that bare EOF. A call that had just been registered
// but not yet written (or whose write then failed with EPIPE, the child's
// stdin having no reader) is retired the same way: jsonrpc2's Call
// registers the call before writing it, the read loop retires it with EOF,
// and the write's own error — or its refusal to write to a connection that
// is now broken — is dropped, because the call is no longer tracked. Its
// caller gets `calling "tools/call": EOF`, which by its text is the same
// as an EOF read after the request was written and may have run. (A call
// that starts after the read loop has retired the connection is refused
// before registration with ErrClientClosing, which the gateway already
// recognizes as never sent.)
//
// So the stdio transport is wrapped to record, for each call made with a
// context carrying a send record ([Upstream.TrackSend]), whether a request was
// handed to the transport's Write at all and what that Write returned.
// Only a request that reached Write and was written without error may have
// reached the child.

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sendRecord records what happened to the requests of one call.
type sendRecord struct {
	mu       sync.Mutex
	reached  bool  // a request was handed to the transport's Write
	writeErr error // the first failed Write, if any
}

type sendRecordKey struct{}

// TrackSend returns a context for one call on cs and a function that
// refines the call's error with what became of the request on the wire.
//
// On a connection whose transport records writes (stdio), a call that
// failed without any of its requests reaching the transport never left the
// gateway: its error is wrapped in [ErrUnavailable]. A call whose write
// failed gets the write's error joined to its own (for example EPIPE from a
// dead child's stdin), since the SDK may report the read loop's EOF in its
// place. On other connections, and for calls that succeeded, the error is
// returned as it is.
func (u *Upstream) TrackSend(ctx context.Context, cs *mcp.ClientSession) (context.Context, func(error) error) {
	if _, ok := u.pipes.Load(cs); !ok || cs == nil {
		return ctx, func(err error) error { return err }
	}
	rec := &sendRecord{}
	return context.WithValue(ctx, sendRecordKey{}, rec), rec.refine
}

func (r *sendRecord) refine(err error) error {
	if err == nil {
		return nil
	}
	r.mu.Lock()
	reached, werr := r.reached, r.writeErr
	r.mu.Unlock()
	switch {
	case !reached:
		return fmt.Errorf("%w: the request was not written: %w", ErrUnavailable, err)
	case werr != nil && !errors.Is(err, werr):
		return fmt.Errorf("%w (writing the request failed: %w)", err, werr)
	}
	return err
}

// writeTracking wraps a transport so that its connection records, for
// calls made with a send record, whether their requests reached Write.
//
// Only for transports whose connection implements nothing beyond
// [mcp.Connection] that a client session looks for (the stdio ioConn):
// the wrapper hides any other method.
type writeTracking struct{ mcp.Transport }

func (t writeTracking) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &trackingConn{Connection: c}, nil
}

type trackingConn struct{ mcp.Connection }

func (c *trackingConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	rec, _ := ctx.Value(sendRecordKey{}).(*sendRecord)
	if req, ok := msg.(*jsonrpc.Request); rec == nil || !ok || !req.IsCall() {
		return c.Connection.Write(ctx, msg)
	}
	rec.mu.Lock()
	rec.reached = true
	rec.mu.Unlock()
	err := c.Connection.Write(ctx, msg)
	if err != nil {
		rec.mu.Lock()
		if rec.writeErr == nil {
			rec.writeErr = err
		}
		rec.mu.Unlock()
	}
	return err
}
