package latticesvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// StoreFile is the name of the registry file earlier versions of mcpedge
// kept in the data directory. It is imported into the store once (see
// Options.ImportTenant) and then renamed to StoreFile + ".imported".
const StoreFile = "lattices.json"

// storeVersion is the file's format version.
const storeVersion = 1

// maxStoreBytes bounds the file read at start.
const maxStoreBytes = 1 << 30

// fileFormat is the JSON layout of lattices.json.
type fileFormat struct {
	Version  int               `json:"version"`
	Lattices []json.RawMessage `json:"lattices"`
}

// legacyEntry is one definition read from lattices.json.
type legacyEntry struct {
	id      string
	name    string
	def     Def
	created time.Time
}

// readStore reads and validates the file; a missing file is an empty store.
func readStore(path string) ([]*legacyEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStoreBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxStoreBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxStoreBytes)
	}
	var ff fileFormat
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ff); err != nil {
		return nil, fmt.Errorf("%s is not a valid lattice store: %v", path, describeJSONErr(data, err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%s is not a valid lattice store: data after the JSON object", path)
	}
	if ff.Version != storeVersion {
		return nil, fmt.Errorf("%s has format version %d; this mcpedge reads version %d", path, ff.Version, storeVersion)
	}
	seen := map[string]bool{}
	var out []*legacyEntry
	for i, raw := range ff.Lattices {
		e, err := decodeFileEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: lattices[%d]: %v", path, i, err)
		}
		if seen[e.id] {
			return nil, fmt.Errorf("%s: lattices[%d]: duplicate id %s", path, i, e.id)
		}
		seen[e.id] = true
		out = append(out, e)
	}
	return out, nil
}

// decodeFileEntry checks one stored definition with the same rules as a
// create request, against the engine's own limits rather than the plan's
// (a definition stored under a larger plan still loads; using it reports
// the plan's limit).
func decodeFileEntry(raw json.RawMessage) (*legacyEntry, error) {
	o, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	if err := o.only("id", "name", "created", "dims", "boundary", "blocked"); err != nil {
		return nil, err
	}
	id, ok, err := o.str("id")
	if err != nil {
		return nil, err
	}
	if !ok || !validID(id) {
		return nil, fmt.Errorf("id %q is not a lattice id", truncate(id, 40))
	}
	name, _, err := o.str("name")
	if err != nil {
		return nil, err
	}
	cs, ok, err := o.str("created")
	if err != nil {
		return nil, err
	}
	created, perr := time.Parse(time.RFC3339Nano, cs)
	if !ok || perr != nil {
		return nil, fmt.Errorf("created %q is not an RFC 3339 time", truncate(cs, 40))
	}
	def, err := o.def(storedDefLimits, false)
	if err != nil {
		return nil, err
	}
	if _, ok := def.points(); !ok {
		return nil, fmt.Errorf("dims %v have more than 2^62 points", def.Dims)
	}
	return &legacyEntry{id: id, name: name, def: def, created: created.UTC()}, nil
}

// storedDefLimits are the decoding limits for stored definitions.
var storedDefLimits = Limits{MaxInlineBlockedCells: 1 << 24}

// describeJSONErr adds the line and column to a JSON syntax or type error.
func describeJSONErr(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err.Error()
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// The store holds a definition as JSON in the shape of a create request
// without its name (which has a column of its own): {"dims": […],
// "boundary": "open", "blocked": {"cells": […], "random": {…}}}. A
// definition imported from lattices.json also keeps its original creation
// time as "created", since the store stamps every new row with the time
// of the insert.
type specJSON struct {
	Dims     []int64     `json:"dims"`
	Boundary string      `json:"boundary"`
	Blocked  *BlockedSet `json:"blocked,omitempty"`
	Created  *time.Time  `json:"created,omitempty"`
}

func encodeSpec(d Def, created *time.Time) ([]byte, error) {
	sj := specJSON{Dims: d.Dims, Boundary: boundaryName(d.Periodic), Created: created}
	if len(d.Cells) > 0 || d.Random != nil {
		sj.Blocked = &BlockedSet{Cells: d.Cells}
		if r := d.Random; r != nil {
			sj.Blocked.Random = &RandomJSON{Density: r.Density, Seed: r.Seed}
		}
	}
	return json.Marshal(sj)
}

// decodeSpec checks a stored definition with the same rules as a create
// request, against the engine's own limits rather than the plan's (a
// definition stored under a larger plan still reads; using it reports the
// plan's limit). created is the time kept in the definition, if any.
func decodeSpec(raw []byte) (d Def, created time.Time, err error) {
	o, err := parseObject(raw)
	if err != nil {
		return Def{}, time.Time{}, err
	}
	if err := o.only("dims", "boundary", "blocked", "created"); err != nil {
		return Def{}, time.Time{}, err
	}
	if cs, ok, err := o.str("created"); err != nil {
		return Def{}, time.Time{}, err
	} else if ok {
		if created, err = time.Parse(time.RFC3339Nano, cs); err != nil {
			return Def{}, time.Time{}, fmt.Errorf("created %q is not an RFC 3339 time", truncate(cs, 40))
		}
	}
	if d, err = o.def(storedDefLimits, false); err != nil {
		return Def{}, time.Time{}, err
	}
	if _, ok := d.points(); !ok {
		return Def{}, time.Time{}, fmt.Errorf("dims %v have more than 2^62 points", d.Dims)
	}
	return d, created.UTC(), nil
}

// memLattices keeps definitions in memory when no store is configured. It
// keeps the store's contract (tenant scoping, ErrNotFound, ErrConflict,
// creation order), so the service has one code path.
type memLattices struct {
	mu   sync.Mutex
	rows []store.Lattice // creation order
}

var _ store.Lattices = (*memLattices)(nil)

func (m *memLattices) find(tenantID, id string) int {
	return slices.IndexFunc(m.rows, func(l store.Lattice) bool { return l.ID == id && l.TenantID == tenantID })
}

func (m *memLattices) CreateLattice(ctx context.Context, l *store.Lattice) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.ID == "" {
		l.ID = store.NewID()
	}
	if slices.ContainsFunc(m.rows, func(x store.Lattice) bool { return x.ID == l.ID }) {
		return fmt.Errorf("lattice id %q: %w", l.ID, store.ErrConflict)
	}
	l.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	row := *l
	row.Spec = bytes.Clone(l.Spec)
	m.rows = append(m.rows, row)
	return nil
}

func (m *memLattices) GetLattice(ctx context.Context, tenantID, id string) (*store.Lattice, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(tenantID, id)
	if i < 0 {
		return nil, fmt.Errorf("lattice %q: %w", id, store.ErrNotFound)
	}
	l := m.rows[i]
	return &l, nil // Spec is never modified in place, so sharing it is safe
}

func (m *memLattices) ListLattices(ctx context.Context, tenantID string) ([]store.Lattice, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Lattice
	for _, l := range m.rows {
		if l.TenantID == tenantID {
			out = append(out, l)
		}
	}
	return out, nil
}

func (m *memLattices) DeleteLattice(ctx context.Context, tenantID, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(tenantID, id)
	if i < 0 {
		return fmt.Errorf("lattice %q: %w", id, store.ErrNotFound)
	}
	m.rows = slices.Delete(m.rows, i, i+1)
	return nil
}

func (m *memLattices) CountLattices(ctx context.Context, tenantID string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, l := range m.rows {
		if l.TenantID == tenantID {
			n++
		}
	}
	return n, nil
}

// warn adds to Persistence().Warning and logs.
func (s *Service) warn(msg string) {
	if s.warning != "" {
		s.warning += "; "
	}
	s.warning += msg
	s.log.Warn("lattice persistence: " + msg)
}

// importTimeout bounds the one-time import at start.
const importTimeout = 2 * time.Minute

// importFile imports <dir>/lattices.json, written by an earlier mcpedge,
// into the store under tenant, keeping ids, names and creation times, and
// then renames it to lattices.json.imported. Ids already in the tenant
// are skipped, so an import cut short (a crash before the rename) is
// finished by the next start. A file that cannot be read, or an import
// that fails, leaves the file as it is and makes the tenant's stored
// lattices unavailable (store_unavailable, naming the file and the
// problem) until a restart imports it, so that nobody works on a
// registry with lattices silently missing; other tenants are unaffected.
func (s *Service) importFile(dir, tenant string) {
	if dir == "" {
		return
	}
	file := filepath.Join(dir, StoreFile)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return
	}
	switch {
	case !s.persisted:
		s.warn(file + " is not imported: no store is configured (the file is left as it is)")
		return
	case tenant == "":
		s.warn(file + " is not imported: no tenant to import it into is configured (the file is left as it is)")
		return
	}
	s.importTenant = tenant
	fail := func(msg string, args ...any) {
		s.importErr = errorf(CodeStoreUnavailable, "stored lattices are unavailable: "+msg+"; the file is left as it is — fix or move it away and restart; inline lattices still work", args...)
		s.log.Error("lattice import failed", "file", file, "tenant", tenant, "err", s.importErr.Error())
	}
	entries, err := readStore(file)
	if err != nil {
		fail("%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), importTimeout)
	defer cancel()
	imported, present := 0, 0
	for _, e := range entries {
		_, err := s.store.GetLattice(ctx, tenant, e.id)
		if err == nil {
			present++
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			fail("importing %s into the store failed: %v", file, err)
			return
		}
		created := e.created
		spec, err := encodeSpec(e.def, &created)
		if err == nil {
			err = s.store.CreateLattice(ctx, &store.Lattice{ID: e.id, TenantID: tenant, Name: e.name, Spec: spec})
		}
		if errors.Is(err, store.ErrConflict) {
			if _, gerr := s.store.GetLattice(ctx, tenant, e.id); gerr == nil {
				present++ // another process imported it meanwhile
				continue
			}
			fail("importing %s into the store failed: id %s is taken by another tenant", file, e.id)
			return
		}
		if err != nil {
			fail("importing %s into the store failed: %v", file, err)
			return
		}
		imported++
	}
	to := file + ".imported"
	if err := os.Rename(file, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Everything is in the store; the next start skips what is there.
		s.log.Warn("lattices imported, but the file could not be renamed", "file", file, "err", err.Error())
		to = file
	}
	s.log.Info("lattices imported into the store", "file", file, "tenant", tenant, "imported", imported, "already_present", present, "renamed_to", to)
}
