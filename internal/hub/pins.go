package hub

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// PathPins is where an edge reads its fleet's tool pins (GET) and records
// new pins and offered changes (POST): a fleet shares one approval
// (docs/hub.md, "Tool pins").
const PathPins = "/api/hub/pins"

// FleetPrefix is how the hub names, in its own store, the upstream
// "name" of the edges of tenant tenantID: "edge.<tenant id>.<name>". Its
// operators list, diff, approve and reject them with `mcpedge pins` as
// any pin; every edge of the tenant serves what they decide.
func FleetPrefix(tenantID string) string { return "edge." + tenantID + "." }

// PinsResponse is the answer to GET PathPins: the pins of the device's
// fleet, named as the edge names its upstreams.
type PinsResponse struct {
	Pins []store.Pin `json:"pins"`
}

// PinBatch is the body of POST PathPins: new pins (Op "create") and
// definitions upstreams offer for pinned items (Op "offer"), named as the
// edge names its upstreams, applied in order. An edge sends what it saw
// since its last post in one batch, so that pinning a whole catalog is
// one request, not one per item.
type PinBatch struct {
	Requests []PinRequest `json:"requests"`
}

// PinRequest is one entry of a PinBatch.
type PinRequest struct {
	Op  string    `json:"op"`
	Pin store.Pin `json:"pin"`
}

// PinBatchResponse answers a PinBatch, one result per request, in order.
type PinBatchResponse struct {
	Results []PinResult `json:"results"`
}

// PinResult is the outcome of one PinRequest: the pin as the hub holds it
// after the request, or an error code ("conflict": a create that found the
// fleet's pin already there, which Pin then is; "not_found": an offer for
// an item the fleet has not pinned; "invalid_pin": not a pin) and message.
type PinResult struct {
	Pin     *store.Pin `json:"pin,omitempty"`
	Error   string     `json:"error,omitempty"`
	Message string     `json:"message,omitempty"`
}

// Bounds of a POST PathPins.
const (
	maxPinRequest = 8 << 20
	maxPinBatch   = 1000
)

func (s *Service) listPins(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	prefix := FleetPrefix(dev.TenantID)
	all, err := s.o.Store.ListPins(r.Context(), "")
	if err != nil {
		s.internal(w, "listing pins", err)
		return
	}
	out := PinsResponse{Pins: []store.Pin{}}
	for _, p := range all {
		if name, ok := strings.CutPrefix(p.Upstream, prefix); ok {
			p.Upstream = name
			out.Pins = append(out.Pins, p)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) recordPins(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxPinRequest+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_pin", "reading the body: "+err.Error())
		return
	}
	if len(raw) > maxPinRequest {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a batch of pins is at most %d bytes", maxPinRequest))
		return
	}
	var b PinBatch
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_pin", "the body is not a batch of pin requests: "+err.Error())
		return
	}
	if len(b.Requests) > maxPinBatch {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a batch holds at most %d pin requests", maxPinBatch))
		return
	}
	out := PinBatchResponse{Results: make([]PinResult, len(b.Requests))}
	for i, req := range b.Requests {
		res, err := s.recordPin(r, dev, req)
		if err != nil {
			s.internal(w, "recording a pin", err)
			return
		}
		out.Results[i] = res
	}
	writeJSON(w, http.StatusOK, out)
}

// recordPin applies one request of a batch; the error is the store's
// (an internal error), refusals are in the result.
func (s *Service) recordPin(r *http.Request, dev *store.Device, req PinRequest) (PinResult, error) {
	refuse := func(code, msg string) (PinResult, error) { return PinResult{Error: code, Message: msg}, nil }
	p := req.Pin
	if p.Upstream == "" || strings.ContainsAny(p.Upstream, "/\x00") || len(p.Upstream) > 200 {
		return refuse("invalid_pin", "the pin names no upstream, or one that cannot be an upstream's name")
	}
	def, hash := p.Definition, p.Hash
	if req.Op == "offer" {
		def, hash = p.OfferedDefinition, p.OfferedHash
	}
	switch {
	case req.Op != "create" && req.Op != "offer":
		return refuse("invalid_pin", `op must be "create" or "offer"`)
	case p.Kind != store.PinTool && p.Kind != store.PinPrompt && p.Kind != store.PinTemplate:
		return refuse("invalid_pin", "kind must be tool, prompt or template")
	case p.Name == "":
		return refuse("invalid_pin", "the pin names no item")
	case !json.Valid(def) || hash != sha256Hex(def):
		return refuse("invalid_pin", "the definition is not JSON, or its hash is not its SHA-256")
	}
	edgeName := p.Upstream
	p.Upstream = FleetPrefix(dev.TenantID) + edgeName
	ctx := r.Context()
	back := func(sp *store.Pin) *store.Pin {
		cp := *sp
		cp.Upstream = edgeName
		return &cp
	}
	if req.Op == "create" {
		p.OfferedHash, p.OfferedDefinition, p.OfferedAt, p.Rejected = "", nil, time.Time{}, false
		err := s.o.Store.CreatePin(ctx, &p)
		if errors.Is(err, store.ErrConflict) {
			cur, gerr := s.o.Store.GetPin(ctx, p.Upstream, p.Kind, p.Name)
			if gerr != nil {
				return PinResult{}, gerr
			}
			return PinResult{Pin: back(cur), Error: "conflict", Message: "the fleet has pinned this item already"}, nil
		}
		if err != nil {
			return PinResult{}, err
		}
		s.o.Log.Info("hub: an edge pinned an item for its fleet", "device", dev.ID, "upstream", p.Upstream, "kind", p.Kind, "name", p.Name)
		return PinResult{Pin: back(&p)}, nil
	}
	at := p.OfferedAt
	if at.IsZero() || at.After(s.o.Now().Add(time.Minute)) {
		at = s.o.Now()
	}
	got, err := s.o.Store.OfferPin(ctx, p.Upstream, p.Kind, p.Name, hash, def, at)
	if errors.Is(err, store.ErrNotFound) {
		return refuse("not_found", "the fleet has not pinned this item")
	}
	if err != nil {
		return PinResult{}, err
	}
	return PinResult{Pin: back(got)}, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
