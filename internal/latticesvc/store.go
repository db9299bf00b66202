package latticesvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// StoreFile is the name of the registry file in the data directory. It
// moves to the tenant store (SQLite/PostgreSQL) when tenancy lands.
const StoreFile = "lattices.json"

// storeVersion is the format version written to the file.
const storeVersion = 1

// maxStoreBytes bounds the file read at start.
const maxStoreBytes = 1 << 30

// store is the registry file. A file that cannot be read or parsed is
// never overwritten: err is set and every operation on stored lattices
// reports it until the operator fixes or moves the file and restarts.
type store struct {
	file    string // "" = memory only
	err     error  // stored lattices unavailable
	warning string // why persistence is off
	loaded  []*entry
}

// fileFormat is the JSON layout of lattices.json.
type fileFormat struct {
	Version  int               `json:"version"`
	Lattices []json.RawMessage `json:"lattices"`
}

// fileEntry is one definition in the file: the create request's fields
// plus id and created.
type fileEntry struct {
	ID       string      `json:"id"`
	Name     string      `json:"name,omitempty"`
	Created  time.Time   `json:"created"`
	Dims     []int64     `json:"dims"`
	Boundary string      `json:"boundary"`
	Blocked  *BlockedSet `json:"blocked,omitempty"`
}

func openStore(dir string, log *slog.Logger) *store {
	st := &store{}
	if dir == "" {
		st.warning = "no data directory is configured (server.data_dir); stored lattices are kept in memory only"
		log.Warn("lattice persistence is off: " + st.warning)
		return st
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		st.warning = fmt.Sprintf("data directory %s cannot be created (%v); stored lattices are kept in memory only", dir, err)
		log.Warn("lattice persistence is off: " + st.warning)
		return st
	}
	st.file = filepath.Join(dir, StoreFile)
	entries, err := readStore(st.file)
	if err != nil {
		st.err = errorf(CodeStoreUnavailable, "stored lattices are unavailable: %v; fix or move the file away and restart (it is never overwritten while it cannot be read); inline lattices still work", err)
		log.Error("lattice store unusable", "file", st.file, "err", err.Error())
		return st
	}
	st.loaded = entries
	log.Info("lattice store loaded", "file", st.file, "lattices", len(entries))
	return st
}

func (st *store) usable() error {
	if st.err != nil {
		return st.err
	}
	return nil
}

// readStore reads and validates the file; a missing file is an empty store.
func readStore(path string) ([]*entry, error) {
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
	var out []*entry
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
func decodeFileEntry(raw json.RawMessage) (*entry, error) {
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
	return &entry{id: id, name: name, def: def, created: created.UTC()}, nil
}

// storedDefLimits are the decoding limits for stored definitions.
var storedDefLimits = Limits{MaxInlineBlockedCells: 1 << 24}

// save writes es atomically: a temporary file in the same directory,
// fsync, rename over the old file, fsync of the directory.
func (st *store) save(es []*entry) error {
	// One lattice per line: readable, and diffs stay small.
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "{\"version\": %d, \"lattices\": [", storeVersion)
	for i, e := range es {
		fe := fileEntry{ID: e.id, Name: e.name, Created: e.created, Dims: e.def.Dims, Boundary: boundaryName(e.def.Periodic)}
		if len(e.def.Cells) > 0 || e.def.Random != nil {
			fe.Blocked = &BlockedSet{Cells: e.def.Cells}
			if r := e.def.Random; r != nil {
				fe.Blocked.Random = &RandomJSON{Density: r.Density, Seed: r.Seed}
			}
		}
		line, err := json.Marshal(fe)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n  ")
		buf.Write(line)
	}
	buf.WriteString("\n]}\n")
	return writeFileAtomic(st.file, buf.Bytes())
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable. Not every platform can sync a
	// directory; the data is already safe in the renamed file.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

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
