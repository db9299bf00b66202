package sqlbase

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const verdictCols = `upstream, kind, name, hash, rules, rules_version, text, state, seen_at, decided_at, findings`

// maxVerdictText bounds the judged text kept with a verdict.
const maxVerdictText = 8 << 10

// maxVerdictFindings and maxFindingText bound the findings kept.
const (
	maxVerdictFindings = 64
	maxFindingText     = 1 << 10
)

func scanVerdict(r Row) (*store.GuardVerdict, error) {
	var v store.GuardVerdict
	var rules, findings string
	err := r.Scan(&v.Upstream, &v.Kind, &v.Name, &v.Hash, &rules, &v.RulesVersion, &v.Text, &v.State, timeCol{&v.SeenAt}, timeCol{&v.DecidedAt}, &findings)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(rules), &v.Rules); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(findings), &v.Findings); err != nil {
		return nil, err
	}
	if len(v.Findings) == 0 {
		v.Findings = nil
	}
	return &v, nil
}

func validVerdictKey(upstream, kind, name string) error {
	switch {
	case upstream == "":
		return invalid("guard verdict: the upstream is required")
	case kind != store.PinTool && kind != store.PinPrompt && kind != store.PinTemplate && kind != store.KindResource:
		return invalid("guard verdict kind %q: want tool, prompt, template or resource", kind)
	case name == "":
		return invalid("guard verdict: the name is required")
	}
	return nil
}

// ListGuardVerdicts returns an upstream's quarantined items ("": every
// upstream's).
func (s *Store) ListGuardVerdicts(ctx context.Context, upstream string) (_ []store.GuardVerdict, err error) {
	defer wrap(&err, "listing guard verdicts")
	if upstream == "" {
		return collect(ctx, s.e, scanVerdict, `SELECT `+verdictCols+` FROM guard_verdicts ORDER BY upstream, kind, name`)
	}
	return collect(ctx, s.e, scanVerdict, `SELECT `+verdictCols+` FROM guard_verdicts WHERE upstream = ? ORDER BY kind, name`, upstream)
}

// GetGuardVerdict returns one quarantined item.
func (s *Store) GetGuardVerdict(ctx context.Context, upstream, kind, name string) (_ *store.GuardVerdict, err error) {
	defer wrap(&err, "reading guard verdict")
	v, err := scanVerdict(s.e.QueryRow(ctx, `SELECT `+verdictCols+` FROM guard_verdicts WHERE upstream = ? AND kind = ? AND name = ?`, upstream, kind, name))
	if isNoRows(err) {
		return nil, notFound("guard verdict", pinID(upstream, kind, name))
	}
	return v, err
}

// QuarantineItem records a quarantined item; the same hash keeps the
// stored verdict and its decision.
func (s *Store) QuarantineItem(ctx context.Context, in *store.GuardVerdict) (_ *store.GuardVerdict, err error) {
	defer wrap(&err, "recording the quarantine of %s", pinID(in.Upstream, in.Kind, in.Name))
	if err := validVerdictKey(in.Upstream, in.Kind, in.Name); err != nil {
		return nil, err
	}
	if in.Hash == "" {
		return nil, invalid("the hash is required")
	}
	v := *in
	v.State, v.DecidedAt, v.SeenAt = store.VerdictQuarantined, time.Time{}, ts(v.SeenAt)
	if v.SeenAt.IsZero() {
		v.SeenAt = s.now()
	}
	if v.Rules == nil {
		v.Rules = []string{}
	}
	if len(v.Text) > maxVerdictText {
		v.Text = clipUTF8(v.Text, maxVerdictText)
	}
	v.Findings = slices.Clone(v.Findings[:min(len(v.Findings), maxVerdictFindings)])
	for i := range v.Findings {
		f := &v.Findings[i]
		if len(f.Explain) > maxFindingText {
			f.Explain = clipUTF8(f.Explain, maxFindingText)
		}
		if len(f.Match) > maxFindingText {
			f.Match = clipUTF8(f.Match, maxFindingText)
		}
	}
	rules, err := json.Marshal(v.Rules)
	if err != nil {
		return nil, err
	}
	findings := []byte("[]")
	if len(v.Findings) > 0 {
		if findings, err = json.Marshal(v.Findings); err != nil {
			return nil, err
		}
	}
	var out *store.GuardVerdict
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		cur, err := scanVerdict(q.QueryRow(ctx, `SELECT `+verdictCols+` FROM guard_verdicts WHERE upstream = ? AND kind = ? AND name = ?`+s.e.ForUpdate(), v.Upstream, v.Kind, v.Name))
		switch {
		case isNoRows(err):
			_, err = q.Exec(ctx, `INSERT INTO guard_verdicts (`+verdictCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				v.Upstream, v.Kind, v.Name, v.Hash, string(rules), v.RulesVersion, v.Text, v.State, v.SeenAt, time.Time{}, string(findings))
		case err != nil:
			return err
		case cur.Hash == v.Hash:
			out = cur
			return nil
		default:
			_, err = q.Exec(ctx, `UPDATE guard_verdicts SET hash = ?, rules = ?, rules_version = ?, text = ?, state = ?, seen_at = ?, decided_at = NULL, findings = ? WHERE upstream = ? AND kind = ? AND name = ?`,
				v.Hash, string(rules), v.RulesVersion, v.Text, v.State, v.SeenAt, string(findings), v.Upstream, v.Kind, v.Name)
		}
		out = &v
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DecideGuardVerdict approves or rejects a quarantined item.
func (s *Store) DecideGuardVerdict(ctx context.Context, upstream, kind, name, hash, state string, at time.Time) (_ *store.GuardVerdict, err error) {
	defer wrap(&err, "deciding guard verdict %s", pinID(upstream, kind, name))
	if state != store.VerdictApproved && state != store.VerdictRejected {
		return nil, invalid("state %q: want %s or %s", state, store.VerdictApproved, store.VerdictRejected)
	}
	at = ts(at)
	if at.IsZero() {
		at = s.now()
	}
	var out *store.GuardVerdict
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		v, err := scanVerdict(q.QueryRow(ctx, `SELECT `+verdictCols+` FROM guard_verdicts WHERE upstream = ? AND kind = ? AND name = ?`+s.e.ForUpdate(), upstream, kind, name))
		switch {
		case isNoRows(err):
			return notFound("guard verdict", pinID(upstream, kind, name))
		case err != nil:
			return err
		case hash != "" && hash != v.Hash:
			return conflict("the quarantined definition of " + pinID(upstream, kind, name) + " is " + v.Hash + ", not " + quote(hash) + ": it changed since it was reviewed")
		}
		v.State, v.DecidedAt = state, at
		_, err = q.Exec(ctx, `UPDATE guard_verdicts SET state = ?, decided_at = ? WHERE upstream = ? AND kind = ? AND name = ?`, state, at, upstream, kind, name)
		out = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// clipUTF8 cuts s to at most n bytes, at a character boundary.
func clipUTF8(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
