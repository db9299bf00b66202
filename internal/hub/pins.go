package hub

import (
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

// PinRequest is the body of POST PathPins: a new pin (Op "create") or a
// definition an upstream offers for a pinned item (Op "offer"), named as
// the edge names its upstream.
type PinRequest struct {
	Op  string    `json:"op"`
	Pin store.Pin `json:"pin"`
}

// PinResponse is the answer to POST PathPins: the pin as the hub holds it
// after the request (a create that found one already there gets 409 and
// the pin that is there).
type PinResponse struct {
	Pin *store.Pin `json:"pin"`
}

// maxPinRequest bounds a POST PathPins body (a definition is at most what
// a tool's schema takes).
const maxPinRequest = 1 << 20

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

func (s *Service) recordPin(w http.ResponseWriter, r *http.Request) {
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
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a pin is at most %d bytes", maxPinRequest))
		return
	}
	var req PinRequest
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_pin", "the body is not a pin request: "+err.Error())
		return
	}
	p := req.Pin
	if p.Upstream == "" || strings.ContainsAny(p.Upstream, "/\x00") || len(p.Upstream) > 200 {
		writeError(w, http.StatusBadRequest, "invalid_pin", "the pin names no upstream, or one that cannot be an upstream's name")
		return
	}
	def, hash := p.Definition, p.Hash
	if req.Op == "offer" {
		def, hash = p.OfferedDefinition, p.OfferedHash
	}
	switch {
	case p.Kind != store.PinTool && p.Kind != store.PinPrompt && p.Kind != store.PinTemplate:
		writeError(w, http.StatusBadRequest, "invalid_pin", "kind must be tool, prompt or template")
		return
	case p.Name == "":
		writeError(w, http.StatusBadRequest, "invalid_pin", "the pin names no item")
		return
	case !json.Valid(def) || hash != sha256Hex(def):
		writeError(w, http.StatusBadRequest, "invalid_pin", "the definition is not JSON, or its hash is not its SHA-256")
		return
	}
	edgeName := p.Upstream
	p.Upstream = FleetPrefix(dev.TenantID) + edgeName
	ctx := r.Context()
	var out *store.Pin
	switch req.Op {
	case "create":
		p.OfferedHash, p.OfferedDefinition, p.OfferedAt, p.Rejected = "", nil, time.Time{}, false
		if p.PinnedAt.IsZero() || p.PinnedAt.After(s.o.Now().Add(time.Minute)) {
			p.PinnedAt = s.o.Now()
		}
		err = s.o.Store.CreatePin(ctx, &p)
		if errors.Is(err, store.ErrConflict) {
			cur, gerr := s.o.Store.GetPin(ctx, p.Upstream, p.Kind, p.Name)
			if gerr != nil {
				s.internal(w, "reading a pin", gerr)
				return
			}
			cur.Upstream = edgeName
			writeJSON(w, http.StatusConflict, PinResponse{Pin: cur})
			return
		}
		out = &p
	case "offer":
		out, err = s.o.Store.OfferPin(ctx, p.Upstream, p.Kind, p.Name, p.OfferedHash, p.OfferedDefinition, s.o.Now())
	default:
		writeError(w, http.StatusBadRequest, "invalid_pin", `op must be "create" or "offer"`)
		return
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
		return
	case err != nil:
		s.internal(w, "recording a pin", err)
		return
	}
	s.o.Log.Info("hub: an edge recorded a pin", "device", dev.ID, "op", req.Op, "upstream", p.Upstream, "kind", p.Kind, "name", p.Name)
	cp := *out
	cp.Upstream = edgeName
	writeJSON(w, http.StatusOK, PinResponse{Pin: &cp})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
