package sqlbase

// Secrets at rest.
//
// The secrets table holds the gateway's own keys (the API-key HMAC key,
// the JWT signing key): whoever reads them can forge sessions and test
// API keys offline, so they are sealed with a sealbox.Box (AES-256-GCM)
// whose master key is not in the database. The box's key ring (ids,
// salts, check values, message counts; no key material) is the table
// seal_keys of the same database, so every replica on one PostgreSQL
// shares it and needs only the same master key.
//
// A row's sealed column says whether value is a ciphertext. Rows written
// in the clear (by mcpedge before migration 2, or by a store opened
// without a master key, as tests do) are sealed in place by SealSecrets
// and by the first GetOrCreateSecret that reads them. Sealing in place is
// a compare-and-set (UPDATE … WHERE sealed = false AND value = the
// plaintext read), so processes doing it at once never seal twice or
// overwrite each other: the first update wins, the others change nothing,
// and all of them go on with the same plaintext.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// SecretAD is the additional data a secret's value is sealed with: no
// tenant (the gateway's secrets are global), and the table, the secret's
// name and the field, so a ciphertext copied to another secret's row
// does not open there.
func SecretAD(name string) sealbox.AD {
	return sealbox.AD{Record: "secrets/" + name + "/value"}
}

// SealSecrets attaches box to the key ring in this database (creating the
// first key when the ring is empty; refusing, with an error naming the
// key's source, a master key that does not match it), seals the secrets
// still in the clear and checks that every sealed secret opens. From then
// on GetOrCreateSecret writes sealed values and opens them. A store is
// sealed once.
func (s *Store) SealSecrets(ctx context.Context, box *sealbox.Box) error {
	if s.box.Load() != nil {
		return errors.New("store: secrets are already sealed with a master key")
	}
	if err := box.Attach(ctx, keyRing{s}); err != nil {
		return fmt.Errorf("store: the key ring of the secrets: %w", err)
	}
	if !s.box.CompareAndSwap(nil, box) {
		return errors.New("store: secrets are already sealed with a master key")
	}
	rows, err := s.secretRows(ctx)
	if err != nil {
		return fmt.Errorf("store: reading the secrets: %w", err)
	}
	for _, r := range rows {
		if !r.sealed {
			if err := s.sealInPlace(ctx, box, r.name, r.value); err != nil {
				return err
			}
			continue
		}
		if _, err := box.Open(ctx, SecretAD(r.name), r.value); err != nil {
			return fmt.Errorf("store: secret %q does not open with the master key given: %w", r.name, err)
		}
	}
	return nil
}

type secretRow struct {
	name   string
	value  []byte
	sealed bool
}

func (s *Store) secretRows(ctx context.Context) ([]secretRow, error) {
	return collect(ctx, s.e, func(r Row) (*secretRow, error) {
		var v secretRow
		return &v, r.Scan(&v.name, &v.value, &v.sealed)
	}, `SELECT name, value, sealed FROM secrets ORDER BY name`)
}

// sealInPlace replaces the plaintext value of secret name with its
// ciphertext, unless another process changed the row since plain was
// read (then that process sealed it, and nothing is done).
func (s *Store) sealInPlace(ctx context.Context, box *sealbox.Box, name string, plain []byte) error {
	_, err := s.replaceSecret(ctx, box, name, plain, false, plain)
	return err
}

// replaceSecret seals plain for name and stores it in place of old (a
// value with the sealed flag wasSealed); it reports whether the row was
// changed, false when another process changed it first.
func (s *Store) replaceSecret(ctx context.Context, box *sealbox.Box, name string, plain []byte, wasSealed bool, old []byte) (bool, error) {
	ct, err := box.Seal(ctx, SecretAD(name), plain)
	if err != nil {
		return false, fmt.Errorf("store: sealing secret %q: %w", name, err)
	}
	var n int64
	err = s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `UPDATE secrets SET value = ?, sealed = ? WHERE name = ? AND sealed = ? AND value = ?`,
			ct, true, name, wasSealed, old)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: sealing secret %q: %w", name, err)
	}
	return n == 1, nil
}

// openSecret returns the plaintext of a row read from the secrets table.
func (s *Store) openSecret(ctx context.Context, name string, value []byte, sealed bool) ([]byte, error) {
	box := s.box.Load()
	switch {
	case len(value) == 0:
		// Never written by a store (a generator's empty value is
		// refused): the row was tampered with.
		return nil, fmt.Errorf("secret %q is empty in the database", name)
	case sealed && box == nil:
		return nil, fmt.Errorf("secret %q is sealed and this store was opened without a master key", name)
	case sealed:
		pt, err := box.Open(ctx, SecretAD(name), value)
		if err != nil {
			return nil, fmt.Errorf("opening secret %q: %w", name, err)
		}
		return pt, nil
	case box != nil:
		// Written in the clear after SealSecrets ran (by a process
		// without a master key): seal it now.
		if err := s.sealInPlace(ctx, box, name, value); err != nil {
			return nil, err
		}
	}
	return value, nil
}

// GetOrCreateSecret calls gen outside any transaction (it may be slow, and
// it may run in several processes at once); the first insert wins and
// every caller returns the stored value, never its own candidate. With a
// master key the candidate is sealed before it is inserted, and what is
// read back is opened: the plaintext never reaches the database and the
// ciphertext never reaches the caller.
func (s *Store) GetOrCreateSecret(ctx context.Context, name string, gen func() ([]byte, error)) (_ []byte, err error) {
	defer wrap(&err, "getting secret %q", name)
	var (
		v      []byte
		sealed bool
	)
	err = s.e.QueryRow(ctx, `SELECT value, sealed FROM secrets WHERE name = ?`, name).Scan(&v, &sealed)
	if err == nil {
		return s.openSecret(ctx, name, v, sealed)
	}
	if !isNoRows(err) {
		return nil, err
	}
	candidate, err := gen()
	if err != nil {
		return nil, fmt.Errorf("generating secret %q: %w", name, err)
	}
	if len(candidate) == 0 {
		return nil, invalid("secret %q: the generator returned no bytes", name)
	}
	stored, isSealed := candidate, false
	if box := s.box.Load(); box != nil {
		if stored, err = box.Seal(ctx, SecretAD(name), candidate); err != nil {
			return nil, fmt.Errorf("sealing secret %q: %w", name, err)
		}
		isSealed = true
	}
	err = s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
		if _, err := q.Exec(ctx, `INSERT INTO secrets (name, value, sealed, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
			name, stored, isSealed, s.now()); err != nil {
			return err
		}
		return q.QueryRow(ctx, `SELECT value, sealed FROM secrets WHERE name = ?`, name).Scan(&v, &sealed)
	})
	if err != nil {
		return nil, err
	}
	return s.openSecret(ctx, name, v, sealed)
}

// RekeySecrets implements store.SealedSecrets. Secrets that another
// process changes meanwhile (another rekey) are left to it.
func (s *Store) RekeySecrets(ctx context.Context) (keyID uint32, resealed int, err error) {
	box := s.box.Load()
	if box == nil {
		return 0, 0, errors.New("store: rekeying secrets needs the master key (the store was opened without one)")
	}
	if keyID, err = box.Rotate(ctx); err != nil {
		return 0, 0, fmt.Errorf("store: adding a key to the secrets' key ring: %w", err)
	}
	rows, err := s.secretRows(ctx)
	if err != nil {
		return keyID, 0, fmt.Errorf("store: reading the secrets: %w", err)
	}
	for _, r := range rows {
		plain := r.value
		if r.sealed {
			if id, err := sealbox.KeyID(r.value); err == nil && id == keyID {
				continue
			}
			if plain, err = box.Open(ctx, SecretAD(r.name), r.value); err != nil {
				return keyID, resealed, fmt.Errorf("store: opening secret %q: %w", r.name, err)
			}
		}
		changed, err := s.replaceSecret(ctx, box, r.name, plain, r.sealed, r.value)
		if err != nil {
			return keyID, resealed, err
		}
		if changed {
			resealed++
		}
	}
	return keyID, resealed, nil
}

// SecretRing implements store.SealedSecrets.
func (s *Store) SecretRing(ctx context.Context) (_ *store.SecretRing, err error) {
	defer wrap(&err, "reading the secrets' key ring")
	recs, err := keyRing{s}.Keys(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.secretRows(ctx)
	if err != nil {
		return nil, err
	}
	var maxMsgs uint64
	if box := s.box.Load(); box != nil {
		if ks := box.Keys(); len(ks) > 0 {
			maxMsgs = ks[0].MaxMessages
		}
	}
	out := &store.SecretRing{Keys: []store.SecretKey{}, Secrets: len(rows)}
	count := map[uint32]int{}
	for _, r := range rows {
		if !r.sealed {
			out.Plaintext++
			continue
		}
		if id, err := sealbox.KeyID(r.value); err == nil {
			count[id]++
		}
	}
	for _, r := range recs {
		out.Keys = append(out.Keys, store.SecretKey{ID: r.ID, Created: r.Created, Messages: r.Used, MaxMessages: maxMsgs, Secrets: count[r.ID]})
	}
	slices.SortFunc(out.Keys, func(a, b store.SecretKey) int { return cmp.Compare(a.ID, b.ID) })
	if n := len(out.Keys); n > 0 {
		out.Keys[n-1].Active = true
	}
	return out, nil
}

// keyRing is the sealbox.Store of the secrets: table seal_keys.
type keyRing struct{ s *Store }

var _ sealbox.Store = keyRing{}

func (k keyRing) Keys(ctx context.Context) ([]sealbox.KeyRecord, error) {
	return collect(ctx, k.s.e, func(r Row) (*sealbox.KeyRecord, error) {
		var (
			rec      sealbox.KeyRecord
			id, used int64
		)
		if err := r.Scan(&id, &rec.Salt, &rec.Check, &used, timeCol{&rec.Created}); err != nil {
			return nil, err
		}
		if id <= 0 || id > 1<<32-1 || used < 0 {
			return nil, fmt.Errorf("seal_keys holds an invalid row (id %d, used %d)", id, used)
		}
		rec.ID, rec.Used = uint32(id), uint64(used)
		return &rec, nil
	}, `SELECT id, salt, check_value, used, created_at FROM seal_keys ORDER BY id`)
}

func (k keyRing) AddKey(ctx context.Context, r sealbox.KeyRecord) error {
	return k.s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO seal_keys (id, salt, check_value, used, created_at) VALUES (?, ?, ?, 0, ?)`,
			int64(r.ID), r.Salt, r.Check, ts(r.Created))
		if k.s.e.IsUnique(err) {
			return fmt.Errorf("key %d: %w", r.ID, sealbox.ErrKeyExists)
		}
		return err
	})
}

// Reserve is one atomic UPDATE … RETURNING: serialized by SQLite's write
// lock, and by the row lock on PostgreSQL.
func (k keyRing) Reserve(ctx context.Context, id uint32, n uint64) (before uint64, err error) {
	if n > 1<<40 {
		return 0, fmt.Errorf("reserving %d messages at once", n)
	}
	err = k.s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
		var used int64
		err := q.QueryRow(ctx, `UPDATE seal_keys SET used = used + ? WHERE id = ? RETURNING used`, int64(n), int64(id)).Scan(&used)
		if isNoRows(err) {
			return fmt.Errorf("no key %d in the key ring", id)
		}
		if err != nil {
			return err
		}
		before = uint64(used) - n
		return nil
	})
	return before, err
}

// SecretBox returns the box the store's secrets are sealed with (nil
// before SealSecrets), so that other records the gateway seals with the
// same key ring (webhook endpoint secrets) need no key of their own.
func (s *Store) SecretBox() *sealbox.Box { return s.box.Load() }
