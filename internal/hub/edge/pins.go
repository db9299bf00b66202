package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/store"
)

// PinStore is the part of a store tool pinning uses (internal/pin.Store).
type PinStore interface {
	ListPins(ctx context.Context, upstream string) ([]store.Pin, error)
	GetPin(ctx context.Context, upstream, kind, name string) (*store.Pin, error)
	CreatePin(ctx context.Context, p *store.Pin) error
	OfferPin(ctx context.Context, upstream, kind, name, hash string, def []byte, at time.Time) (*store.Pin, error)
}

// Pins keeps an edge's tool pins on its hub (docs/hub.md, "Tool pins"):
// the edge's pinning reads its fleet's pins from the hub and records new
// pins and offered changes there, so that an operator approves a change
// once, on the hub, for every edge of the tenant.
//
// Writes are made in the edge's own store at once and sent to the hub in
// one batch before the next read (pinning reads every pin.DefaultPoll):
// pinning a whole catalog costs one request, not one per item, which the
// hub's rate limits would refuse. The edge's store is read instead of the
// hub's when the hub cannot be reached (the pins this edge recorded, and
// those it read from the hub before). It is safe for concurrent use.
type Pins struct {
	l     *Link
	local PinStore

	mu      sync.Mutex
	pending []hub.PinRequest // not sent to the hub yet, in order
}

// maxPendingPins bounds the writes kept for the hub while it is away; the
// oldest are dropped (the edge's store has them, and an offer of an item
// the hub lacks sends it again).
const maxPendingPins = 10000

// PinStore returns the link's pin store over local, the edge's own.
func (l *Link) PinStore(local PinStore) *Pins { return &Pins{l: l, local: local} }

var _ PinStore = (*Pins)(nil)

// ListPins sends the writes not sent yet, then returns the fleet's pins
// from the hub, or the edge's own when the hub cannot be reached. Pins
// read from the hub that the edge's store lacks are copied into it.
func (p *Pins) ListPins(ctx context.Context, upstream string) ([]store.Pin, error) {
	if err := p.send(ctx); err != nil {
		p.l.o.Log.Debug("tool pins not sent to the hub; kept for the next attempt", "err", err.Error())
	}
	var resp hub.PinsResponse
	if err := p.do(ctx, http.MethodGet, nil, &resp); err != nil {
		p.l.o.Log.Debug("tool pins read from this edge's store: the hub's cannot be read", "err", err.Error())
		return p.local.ListPins(ctx, upstream)
	}
	out := resp.Pins[:0]
	for _, sp := range resp.Pins {
		if upstream == "" || sp.Upstream == upstream {
			out = append(out, sp)
		}
	}
	p.mirror(ctx, out)
	return out, nil
}

// send posts the pending writes in one batch. An offer of an item the
// hub lacks (recorded by this edge before it shared its pins) is sent
// again after a create from the edge's store.
func (p *Pins) send(ctx context.Context) error {
	p.mu.Lock()
	batch := p.pending
	p.pending = nil
	p.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	var resp hub.PinBatchResponse
	if err := p.do(ctx, http.MethodPost, &hub.PinBatch{Requests: batch}, &resp); err != nil {
		p.requeue(batch)
		return err
	}
	var again []hub.PinRequest
	for i, res := range resp.Results {
		if i >= len(batch) {
			break
		}
		req := batch[i]
		switch res.Error {
		case "", "conflict":
		case "not_found":
			if own, err := p.local.GetPin(ctx, req.Pin.Upstream, req.Pin.Kind, req.Pin.Name); err == nil {
				again = append(again, hub.PinRequest{Op: "create", Pin: store.Pin{Upstream: own.Upstream, Kind: own.Kind, Name: own.Name,
					Hash: own.Hash, Definition: own.Definition, PinnedAt: own.PinnedAt}}, req)
			}
		default:
			p.l.o.Log.Warn("the hub refused a tool pin", "upstream", req.Pin.Upstream, "kind", req.Pin.Kind, "name", req.Pin.Name, "error", res.Error, "message", res.Message)
		}
	}
	if len(again) > 0 {
		if err := p.do(ctx, http.MethodPost, &hub.PinBatch{Requests: again}, &resp); err != nil {
			p.requeue(again)
			return err
		}
	}
	return nil
}

// requeue puts unsent writes back before the newer ones.
func (p *Pins) requeue(batch []hub.PinRequest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(batch, p.pending...)
	if n := len(p.pending); n > maxPendingPins {
		p.pending = p.pending[n-maxPendingPins:]
	}
}

func (p *Pins) queue(req hub.PinRequest) {
	p.mu.Lock()
	p.pending = append(p.pending, req)
	if n := len(p.pending); n > maxPendingPins {
		p.pending = p.pending[n-maxPendingPins:]
	}
	p.mu.Unlock()
}

// mirror creates in the edge's store the pins it lacks.
func (p *Pins) mirror(ctx context.Context, pins []store.Pin) {
	have, err := p.local.ListPins(ctx, "")
	if err != nil {
		return
	}
	seen := make(map[[3]string]bool, len(have))
	for _, h := range have {
		seen[[3]string{h.Upstream, h.Kind, h.Name}] = true
	}
	for _, sp := range pins {
		if seen[[3]string{sp.Upstream, sp.Kind, sp.Name}] {
			continue
		}
		cp := store.Pin{Upstream: sp.Upstream, Kind: sp.Kind, Name: sp.Name, Hash: sp.Hash, Definition: sp.Definition, PinnedAt: sp.PinnedAt}
		_ = p.local.CreatePin(ctx, &cp)
	}
}

// GetPin returns one pin, from the edge's store.
func (p *Pins) GetPin(ctx context.Context, upstream, kind, name string) (*store.Pin, error) {
	return p.local.GetPin(ctx, upstream, kind, name)
}

// CreatePin records a new pin in the edge's store (store.ErrConflict
// when it has one) and queues it for the hub. If another edge pinned the
// item first, the hub's pin stands: the next read brings it, and what
// this edge saw becomes an offered change.
func (p *Pins) CreatePin(ctx context.Context, sp *store.Pin) error {
	if err := p.local.CreatePin(ctx, sp); err != nil {
		return err
	}
	p.queue(hub.PinRequest{Op: "create", Pin: *sp})
	return nil
}

// OfferPin records in the edge's store the definition an upstream offers
// for a pinned item, and queues it for the hub.
func (p *Pins) OfferPin(ctx context.Context, upstream, kind, name, hash string, def []byte, at time.Time) (*store.Pin, error) {
	got, err := p.local.OfferPin(ctx, upstream, kind, name, hash, def, at)
	if err != nil {
		return nil, err
	}
	p.queue(hub.PinRequest{Op: "offer", Pin: store.Pin{Upstream: upstream, Kind: kind, Name: name, OfferedHash: hash, OfferedDefinition: def, OfferedAt: at}})
	return got, nil
}

// do sends one request of PathPins as the device and decodes the answer
// into out. A 409 is store.ErrConflict, a 404 store.ErrNotFound.
func (p *Pins) do(ctx context.Context, method string, in, out any) error {
	tok, err := p.l.currentToken(ctx)
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.l.base.String()+hub.PathPins, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the hub's pins: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		return fmt.Errorf("the hub: %w", store.ErrConflict)
	case http.StatusNotFound:
		return fmt.Errorf("the hub: %w", store.ErrNotFound)
	default:
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			p.l.invalidate(tok)
		}
		return decodeRefusal(resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("the hub's answer to %s %s is not what an mcpedge hub sends: %v", method, hub.PathPins, err)
	}
	return nil
}
