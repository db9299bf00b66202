package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
// once, on the hub, for every edge of the tenant. Every write is also
// made in the edge's own store, which is read instead when the hub
// cannot be reached (the pins this edge recorded itself, and those it
// read from the hub before). It is safe for concurrent use.
type Pins struct {
	l     *Link
	local PinStore
}

// PinStore returns the link's pin store over local, the edge's own.
func (l *Link) PinStore(local PinStore) *Pins { return &Pins{l: l, local: local} }

var _ PinStore = (*Pins)(nil)

// ListPins returns the fleet's pins from the hub, or the edge's own when
// the hub cannot be reached. Pins read from the hub that the edge's store
// lacks are copied into it.
func (p *Pins) ListPins(ctx context.Context, upstream string) ([]store.Pin, error) {
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

// GetPin returns one pin, from the hub or the edge's store.
func (p *Pins) GetPin(ctx context.Context, upstream, kind, name string) (*store.Pin, error) {
	var resp hub.PinsResponse
	if err := p.do(ctx, http.MethodGet, nil, &resp); err != nil {
		return p.local.GetPin(ctx, upstream, kind, name)
	}
	for i := range resp.Pins {
		if sp := &resp.Pins[i]; sp.Upstream == upstream && sp.Kind == kind && sp.Name == name {
			return sp, nil
		}
	}
	return nil, fmt.Errorf("pin %s/%s/%s: %w", upstream, kind, name, store.ErrNotFound)
}

// CreatePin records a new pin on the hub (store.ErrConflict when the
// fleet has one: another edge pinned it first) and in the edge's store.
func (p *Pins) CreatePin(ctx context.Context, sp *store.Pin) error {
	local := *sp
	if err := p.local.CreatePin(ctx, &local); err != nil && !errors.Is(err, store.ErrConflict) {
		p.l.o.Log.Debug("a pin not kept in this edge's store", "err", err.Error())
	}
	var resp hub.PinResponse
	err := p.do(ctx, http.MethodPost, &hub.PinRequest{Op: "create", Pin: *sp}, &resp)
	if err != nil {
		return err
	}
	if resp.Pin != nil {
		sp.PinnedAt = resp.Pin.PinnedAt
	}
	return nil
}

// OfferPin records on the hub (and in the edge's store) the definition
// an upstream offers for a pinned item. A pin the hub does not hold yet
// (recorded by this edge before it shared its pins) is created there
// first, from the edge's store.
func (p *Pins) OfferPin(ctx context.Context, upstream, kind, name, hash string, def []byte, at time.Time) (*store.Pin, error) {
	if _, err := p.local.OfferPin(ctx, upstream, kind, name, hash, def, at); err != nil {
		p.l.o.Log.Debug("an offered definition not kept in this edge's store", "err", err.Error())
	}
	req := &hub.PinRequest{Op: "offer", Pin: store.Pin{Upstream: upstream, Kind: kind, Name: name, OfferedHash: hash, OfferedDefinition: def, OfferedAt: at}}
	var resp hub.PinResponse
	err := p.do(ctx, http.MethodPost, req, &resp)
	if errors.Is(err, store.ErrNotFound) {
		own, lerr := p.local.GetPin(ctx, upstream, kind, name)
		if lerr != nil {
			return nil, err
		}
		first := store.Pin{Upstream: upstream, Kind: kind, Name: name, Hash: own.Hash, Definition: own.Definition, PinnedAt: own.PinnedAt}
		if cerr := p.do(ctx, http.MethodPost, &hub.PinRequest{Op: "create", Pin: first}, &hub.PinResponse{}); cerr != nil && !errors.Is(cerr, store.ErrConflict) {
			return nil, cerr
		}
		err = p.do(ctx, http.MethodPost, req, &resp)
	}
	if err != nil {
		return nil, err
	}
	if resp.Pin == nil {
		return nil, errors.New("the hub answered a pin offer without the pin")
	}
	return resp.Pin, nil
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
