package gateway

// The offline queue's faces on /mcp besides mcpedge__queue_result: a
// resource per queued call (mcpedge://queue/{id}), updated notifications
// for its subscribers, and the queue's health in /readyz and
// mcpedge__status. See docs/edge.md, "Wiring the queue".

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	// QueueURIPrefix starts the URI of a queued call's resource; the
	// entry's id follows.
	QueueURIPrefix = "mcpedge://queue/"
	// queueTemplate is the resource template of queued calls on /mcp.
	queueTemplate = QueueURIPrefix + "{id}"
	// reservedScheme is the gateway's own URI scheme: upstream resources
	// and templates using it are not offered on /mcp (they stay on
	// /mcp/<upstream>), so that a queue URI can never be dispatched to an
	// upstream while authorization took it for the gateway's.
	reservedScheme = "mcpedge:"
	// maxQueueIDLen bounds the id in a queue URI; queue ids are 27
	// characters.
	maxQueueIDLen = 64
)

// QueueURI returns the resource URI of the queued call id.
func QueueURI(id string) string { return QueueURIPrefix + id }

// ParseQueueURI returns the id in a queued call's resource URI. ok is
// false for anything else: another URI, an empty or over-long id, or an id
// with characters other than ASCII letters, digits, '-' and '_' (queue ids
// are lower-case base32), so that no query, fragment, path or escape
// reaches the queue.
func ParseQueueURI(uri string) (id string, ok bool) {
	id, found := strings.CutPrefix(uri, QueueURIPrefix)
	if !found || id == "" || len(id) > maxQueueIDLen {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return id, true
}

// reservedURI reports whether an upstream's resource URI or template uses
// the gateway's own scheme (case-insensitively, as schemes are).
func reservedURI(s string) bool {
	return len(s) >= len(reservedScheme) && strings.EqualFold(s[:len(reservedScheme)], reservedScheme)
}

// addQueueResource registers the queued-call resource template on /mcp.
// Reading a URI answers the caller's tenant's entry exactly as
// mcpedge__queue_result does; another tenant's id is "resource not found",
// like a missing one.
func (g *Gateway) addQueueResource(d Deferrer) {
	g.agg.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: queueTemplate,
		Name:        "queued-call",
		Title:       "Queued call",
		Description: "A call the gateway queued while its upstream was unreachable: its state (pending, delivering, done, failed) and, once done, the upstream's result. Subscribe to be told when it is done or has failed.",
		MIMEType:    "application/json",
	}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		uri := req.Params.URI
		id, ok := ParseQueueURI(uri)
		if !ok {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		qc, err := d.Status(ctx, tenantOf(req), id)
		if errors.Is(err, ErrQueuedNotFound) {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		if err != nil {
			return nil, err
		}
		text, err := json.Marshal(qc)
		if err != nil {
			return nil, err
		}
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(text)}}}, nil
	})
}

// queueSubscription handles resources/subscribe and unsubscribe of a
// queued call's URI on /mcp. handled is false for other URIs. Subscribing
// needs the entry to be the caller's tenant's (else "resource not found"),
// so nobody learns when another tenant's call ends. The SDK server keeps
// the subscription; queueEnded notifies it.
func (g *Gateway) queueSubscription(ctx context.Context, only string, req mcp.Request, uri string, subscribe bool) (handled bool, err error) {
	if only != "" || g.deferrer == nil || !strings.HasPrefix(uri, QueueURIPrefix) {
		return false, nil
	}
	id, ok := ParseQueueURI(uri)
	if !ok {
		return true, mcp.ResourceNotFoundError(uri)
	}
	if !subscribe {
		return true, nil
	}
	if _, err := g.deferrer.Status(ctx, tenantOf(req), id); err != nil {
		if errors.Is(err, ErrQueuedNotFound) {
			return true, mcp.ResourceNotFoundError(uri)
		}
		return true, err
	}
	return true, nil
}

// queueEnded sends notifications/resources/updated for the entry's URI to
// the sessions on /mcp subscribed to it, on the gateway's notification
// worker (never on the delivery loop, which a slow client must not hold).
func (g *Gateway) queueEnded(id string) {
	p := &mcp.ResourceUpdatedNotificationParams{URI: QueueURI(id)}
	g.background(func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		_ = g.agg.ResourceUpdated(ctx, p)
	})
}

// QueueHealth is the offline queue's state as /readyz (its details, for
// operators) and mcpedge__status show it. The queue never makes the
// gateway unready: without it the gateway still serves every upstream
// that is up, only calls to one that is down fail instead of waiting.
type QueueHealth struct {
	// Open is false when the gateway runs without a queue; Error then
	// says why ("disabled in [queue]", or the error opening it).
	Open  bool   `json:"open"`
	Error string `json:"error,omitempty"`
	// Entries and Bytes are what the whole queue holds, in every state,
	// against MaxEntries and MaxBytes.
	Entries    int64 `json:"entries"`
	MaxEntries int64 `json:"max_entries,omitempty"`
	Bytes      int64 `json:"bytes"`
	MaxBytes   int64 `json:"max_bytes,omitempty"`
	// Waiting is the entries waiting for delivery (pending or
	// delivering); OldestWaitingSeconds the age of the oldest of them.
	Waiting              int64   `json:"waiting"`
	OldestWaitingSeconds float64 `json:"oldest_waiting_seconds,omitempty"`
	// NearFull is true at 90% or more of either bound of the whole queue:
	// new calls will soon be refused with -32012.
	NearFull bool `json:"near_full"`
}

// SetQueueHealth gives the gateway the offline queue's health for /readyz
// and mcpedge__status; f should be cheap (cached). Call it before serving.
func (g *Gateway) SetQueueHealth(f func() QueueHealth) { g.queueHealth = f }

// queueHealthNow returns the queue's health, or nil when none was set.
func (g *Gateway) queueHealthNow() *QueueHealth {
	if g.queueHealth == nil {
		return nil
	}
	h := g.queueHealth()
	return &h
}
