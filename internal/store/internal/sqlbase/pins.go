package sqlbase

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const pinCols = `upstream, kind, name, hash, definition, pinned_at, offered_hash, offered_definition, offered_at, rejected`

func scanPin(r Row) (*store.Pin, error) {
	var p store.Pin
	err := r.Scan(&p.Upstream, &p.Kind, &p.Name, &p.Hash, &p.Definition, timeCol{&p.PinnedAt},
		&p.OfferedHash, &p.OfferedDefinition, timeCol{&p.OfferedAt}, &p.Rejected)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func validPinKey(upstream, kind, name string) error {
	switch {
	case upstream == "":
		return invalid("pin: the upstream is required")
	case kind != store.PinTool && kind != store.PinPrompt && kind != store.PinTemplate:
		return invalid("pin kind %q: want tool, prompt or template", kind)
	case name == "":
		return invalid("pin: the name is required")
	}
	return nil
}

func pinID(upstream, kind, name string) string { return upstream + " " + kind + " " + quote(name) }

// ListPins returns an upstream's pins ("": every upstream's).
func (s *Store) ListPins(ctx context.Context, upstream string) (_ []store.Pin, err error) {
	defer wrap(&err, "listing pins")
	if upstream == "" {
		return collect(ctx, s.e, scanPin, `SELECT `+pinCols+` FROM pins ORDER BY upstream, kind, name`)
	}
	return collect(ctx, s.e, scanPin, `SELECT `+pinCols+` FROM pins WHERE upstream = ? ORDER BY kind, name`, upstream)
}

// GetPin returns one pin.
func (s *Store) GetPin(ctx context.Context, upstream, kind, name string) (_ *store.Pin, err error) {
	defer wrap(&err, "reading pin")
	p, err := scanPin(s.e.QueryRow(ctx, `SELECT `+pinCols+` FROM pins WHERE upstream = ? AND kind = ? AND name = ?`, upstream, kind, name))
	if isNoRows(err) {
		return nil, notFound("pin", pinID(upstream, kind, name))
	}
	return p, err
}

// CreatePin stores a first-seen definition; the first pin of an item wins.
func (s *Store) CreatePin(ctx context.Context, p *store.Pin) (err error) {
	defer wrap(&err, "storing pin")
	if err := validPinKey(p.Upstream, p.Kind, p.Name); err != nil {
		return err
	}
	if p.Hash == "" || len(p.Definition) == 0 {
		return invalid("pin %s: hash and definition are required", pinID(p.Upstream, p.Kind, p.Name))
	}
	now := s.now()
	var n int64
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `INSERT INTO pins (upstream, kind, name, hash, definition, pinned_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (upstream, kind, name) DO NOTHING`,
			p.Upstream, p.Kind, p.Name, p.Hash, p.Definition, now)
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return conflict("pin " + pinID(p.Upstream, p.Kind, p.Name))
	}
	p.PinnedAt = now
	p.OfferedHash, p.OfferedDefinition, p.OfferedAt, p.Rejected = "", nil, time.Time{}, false
	return nil
}

// OfferPin records the definition an upstream offers for a pinned item.
func (s *Store) OfferPin(ctx context.Context, upstream, kind, name, hash string, def []byte, at time.Time) (_ *store.Pin, err error) {
	defer wrap(&err, "recording the offered definition of pin %s", pinID(upstream, kind, name))
	if hash == "" || len(def) == 0 {
		return nil, invalid("hash and definition are required")
	}
	var out *store.Pin
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		p, err := scanPin(q.QueryRow(ctx, `SELECT `+pinCols+` FROM pins WHERE upstream = ? AND kind = ? AND name = ?`+s.e.ForUpdate(), upstream, kind, name))
		if isNoRows(err) {
			return notFound("pin", pinID(upstream, kind, name))
		}
		if err != nil {
			return err
		}
		switch hash {
		case p.Hash:
			if p.OfferedHash == "" {
				out = p
				return nil
			}
			p.OfferedHash, p.OfferedDefinition, p.OfferedAt, p.Rejected = "", nil, time.Time{}, false
		case p.OfferedHash:
			out = p
			return nil
		default:
			p.OfferedHash, p.OfferedDefinition, p.OfferedAt, p.Rejected = hash, def, ts(at), false
		}
		_, err = q.Exec(ctx, `UPDATE pins SET offered_hash = ?, offered_definition = ?, offered_at = ?, rejected = ? WHERE upstream = ? AND kind = ? AND name = ?`,
			p.OfferedHash, nullBytes(p.OfferedDefinition), p.OfferedAt, p.Rejected, upstream, kind, name)
		out = p
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// offered reads a pin with an offer for ApprovePin and RejectPin, locked.
func (s *Store) offered(ctx context.Context, q Q, upstream, kind, name, hash string) (*store.Pin, error) {
	p, err := scanPin(q.QueryRow(ctx, `SELECT `+pinCols+` FROM pins WHERE upstream = ? AND kind = ? AND name = ?`+s.e.ForUpdate(), upstream, kind, name))
	switch {
	case isNoRows(err):
		return nil, notFound("pin", pinID(upstream, kind, name))
	case err != nil:
		return nil, err
	case p.OfferedHash == "":
		return nil, notFound("offered change of pin", pinID(upstream, kind, name))
	case hash != "" && hash != p.OfferedHash:
		return nil, conflict("the offered definition of pin " + pinID(upstream, kind, name) + " is " + p.OfferedHash + ", not " + quote(hash) + ": it changed since it was reviewed")
	}
	return p, nil
}

// ApprovePin pins the offered definition.
func (s *Store) ApprovePin(ctx context.Context, upstream, kind, name, hash string, at time.Time) (_ *store.Pin, err error) {
	defer wrap(&err, "approving pin %s", pinID(upstream, kind, name))
	var out *store.Pin
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		p, err := s.offered(ctx, q, upstream, kind, name, hash)
		if err != nil {
			return err
		}
		p.Hash, p.Definition, p.PinnedAt = p.OfferedHash, p.OfferedDefinition, ts(at)
		p.OfferedHash, p.OfferedDefinition, p.OfferedAt, p.Rejected = "", nil, time.Time{}, false
		_, err = q.Exec(ctx, `UPDATE pins SET hash = ?, definition = ?, pinned_at = ?, offered_hash = '', offered_definition = NULL, offered_at = NULL, rejected = ? WHERE upstream = ? AND kind = ? AND name = ?`,
			p.Hash, p.Definition, p.PinnedAt, false, upstream, kind, name)
		out = p
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RejectPin marks the offered definition rejected.
func (s *Store) RejectPin(ctx context.Context, upstream, kind, name, hash string) (_ *store.Pin, err error) {
	defer wrap(&err, "rejecting pin %s", pinID(upstream, kind, name))
	var out *store.Pin
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		p, err := s.offered(ctx, q, upstream, kind, name, hash)
		if err != nil {
			return err
		}
		p.Rejected = true
		_, err = q.Exec(ctx, `UPDATE pins SET rejected = ? WHERE upstream = ? AND kind = ? AND name = ?`, true, upstream, kind, name)
		out = p
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
