package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"slices"
	"time"
)

// The inner layer, what the outer layer encrypts: a sequence of named
// entries, then a zero byte.
//
//	entry: name length (1 byte, 1…255) | name | frame* | 0 (4 bytes)
//	frame: length (4 bytes, big-endian, 1…maxFrame) | bytes
//
// The first entry is manifest.json, the last checksums.json (the SHA-256
// of every other entry). Entries are streamed: a table's rows are written
// as PostgreSQL's COPY produces them, so their size is not known up front.

// Entry names.
const (
	entryManifest  = "manifest.json"
	entryChecksums = "checksums.json"
	entrySQLite    = "store.sqlite"
	entryQueue     = "queue.sqlite"
	entryTable     = "table/" // + table name: its rows in COPY text format
)

const (
	maxFrame    = 1 << 20
	maxManifest = 4 << 20
)

// Engines, in the manifest.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// A Manifest describes a backup; it is the first entry of the archive.
type Manifest struct {
	// Format is the archive's format version (FormatVersion).
	Format int `json:"format"`
	// Engine is the store's engine: EngineSQLite or EnginePostgres.
	Engine string `json:"engine"`
	// SchemaVersion is the store's schema migration version.
	SchemaVersion int `json:"schema_version"`
	// Created is when the snapshot was taken.
	Created time.Time `json:"created"`
	// Mcpedge is the version of the mcpedge that made it.
	Mcpedge string `json:"mcpedge"`
	// Tables are the store's tables (every table of its schema) with
	// their row counts, in the order a restore loads them.
	Tables []Table `json:"tables"`
	// Sequences are a PostgreSQL store's sequences and their values.
	Sequences []Sequence `json:"sequences,omitempty"`
	// Queue describes the offline queue database, when the backup has
	// one.
	Queue *Queue `json:"queue,omitempty"`
}

// A Table is one table of a backup.
type Table struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
	// Columns are a PostgreSQL table's columns, in COPY order.
	Columns []string `json:"columns,omitempty"`
}

// A Sequence is one PostgreSQL sequence; Value is nil when it was never
// used.
type Sequence struct {
	Name  string `json:"name"`
	Value *int64 `json:"value"`
}

// Queue describes the offline queue database of a backup.
type Queue struct {
	// UserVersion is its PRAGMA user_version (the queue's schema).
	UserVersion int     `json:"user_version"`
	Tables      []Table `json:"tables"`
}

// identRE is what a table or sequence name must look like: mcpedge's
// names, and nothing a statement could be built from.
var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (m *Manifest) validate() error {
	if m.Format != FormatVersion {
		return fmt.Errorf("manifest format %d, want %d", m.Format, FormatVersion)
	}
	switch m.Engine {
	case EngineSQLite, EnginePostgres:
	default:
		return fmt.Errorf("unknown engine %q", m.Engine)
	}
	if m.SchemaVersion < 1 {
		return fmt.Errorf("schema version %d", m.SchemaVersion)
	}
	seen := map[string]bool{}
	for _, t := range m.Tables {
		if !identRE.MatchString(t.Name) || seen[t.Name] || t.Rows < 0 {
			return fmt.Errorf("table %q (%d rows): not a valid table", t.Name, t.Rows)
		}
		seen[t.Name] = true
		if (m.Engine == EnginePostgres) != (len(t.Columns) > 0) {
			return fmt.Errorf("table %q: columns are listed for PostgreSQL tables only, and always", t.Name)
		}
		for _, c := range t.Columns {
			if !identRE.MatchString(c) {
				return fmt.Errorf("table %q: column %q", t.Name, c)
			}
		}
	}
	if !seen["schema_migrations"] {
		return errors.New("no schema_migrations table")
	}
	for _, s := range m.Sequences {
		if !identRE.MatchString(s.Name) {
			return fmt.Errorf("sequence %q", s.Name)
		}
	}
	if m.Queue != nil {
		for _, t := range m.Queue.Tables {
			if !identRE.MatchString(t.Name) || t.Rows < 0 {
				return fmt.Errorf("queue table %q", t.Name)
			}
		}
	}
	return nil
}

// table returns the manifest's table named name.
func (m *Manifest) table(name string) (Table, bool) {
	i := slices.IndexFunc(m.Tables, func(t Table) bool { return t.Name == name })
	if i < 0 {
		return Table{}, false
	}
	return m.Tables[i], true
}

// archiveWriter writes entries and records their checksums.
type archiveWriter struct {
	w     io.Writer
	names []string
	sums  map[string]string
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	return &archiveWriter{w: w, sums: map[string]string{}}
}

// entry writes one entry whose bytes fn writes.
func (a *archiveWriter) entry(name string, fn func(io.Writer) error) error {
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("entry name %q", name)
	}
	if _, err := a.w.Write(append([]byte{byte(len(name))}, name...)); err != nil {
		return err
	}
	fw := &frameWriter{w: a.w, h: sha256.New()}
	if err := fn(fw); err != nil {
		return err
	}
	if err := fw.flush(); err != nil {
		return err
	}
	if _, err := a.w.Write([]byte{0, 0, 0, 0}); err != nil {
		return err
	}
	a.names = append(a.names, name)
	a.sums[name] = hex.EncodeToString(fw.h.Sum(nil))
	return nil
}

// finish writes checksums.json and the end of the archive.
func (a *archiveWriter) finish() error {
	b, err := json.Marshal(checksums{SHA256: a.sums})
	if err != nil {
		return err
	}
	if err := a.entry(entryChecksums, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return err
	}
	_, err = a.w.Write([]byte{0})
	return err
}

type checksums struct {
	SHA256 map[string]string `json:"sha256"`
}

// frameWriter cuts an entry's bytes into frames of up to maxFrame.
type frameWriter struct {
	w   io.Writer
	h   hash.Hash
	buf []byte
}

func (f *frameWriter) Write(p []byte) (int, error) {
	f.h.Write(p)
	n := len(p)
	for len(p) > 0 {
		m := min(len(p), maxFrame-len(f.buf))
		f.buf = append(f.buf, p[:m]...)
		p = p[m:]
		if len(f.buf) == maxFrame {
			if err := f.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (f *frameWriter) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	if _, err := f.w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f.buf)))); err != nil {
		return err
	}
	_, err := f.w.Write(f.buf)
	f.buf = f.buf[:0]
	return err
}

// archiveReader reads entries in order and checks them against
// checksums.json at the end.
type archiveReader struct {
	r    *bufio.Reader
	cur  *frameReader
	sums map[string]string
	done bool
}

func newArchiveReader(r io.Reader) *archiveReader {
	return &archiveReader{r: bufio.NewReaderSize(r, 64<<10), sums: map[string]string{}}
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// next returns the next entry; the previous one's body is read to its end
// first. At checksums.json it checks every entry and returns io.EOF.
func (a *archiveReader) next() (string, io.Reader, error) {
	if a.done {
		return "", nil, io.EOF
	}
	if a.cur != nil {
		if _, err := io.Copy(io.Discard, a.cur); err != nil {
			return "", nil, err
		}
		a.sums[a.cur.name] = hex.EncodeToString(a.cur.h.Sum(nil))
		a.cur = nil
	}
	n, err := a.r.ReadByte()
	if err != nil {
		return "", nil, a.eof(err)
	}
	if n == 0 {
		return "", nil, corrupt("the archive ends without its checksums")
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(a.r, name); err != nil {
		return "", nil, a.eof(err)
	}
	if !validEntry(string(name)) {
		return "", nil, corrupt("unknown entry %q", name)
	}
	if _, ok := a.sums[string(name)]; ok {
		return "", nil, corrupt("entry %q appears twice", name)
	}
	a.cur = &frameReader{a: a, name: string(name), h: sha256.New()}
	if string(name) == entryChecksums {
		return "", nil, a.checkSums()
	}
	return string(name), a.cur, nil
}

func (a *archiveReader) eof(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("the archive is cut short")
	}
	return err
}

func validEntry(name string) bool {
	switch name {
	case entryManifest, entryChecksums, entrySQLite, entryQueue:
		return true
	}
	if len(name) > len(entryTable) && name[:len(entryTable)] == entryTable {
		return identRE.MatchString(name[len(entryTable):])
	}
	return false
}

func (a *archiveReader) checkSums() error {
	b, err := io.ReadAll(io.LimitReader(a.cur, maxManifest+1))
	if err != nil {
		return err
	}
	if len(b) > maxManifest {
		return corrupt("checksums.json is too large")
	}
	a.cur = nil
	var c checksums
	if err := json.Unmarshal(b, &c); err != nil {
		return corrupt("checksums.json: %v", err)
	}
	if end, err := a.r.ReadByte(); err != nil || end != 0 {
		return corrupt("no end after checksums.json")
	}
	if len(c.SHA256) != len(a.sums) {
		return corrupt("checksums.json lists %d entries, the archive has %d", len(c.SHA256), len(a.sums))
	}
	for name, sum := range a.sums {
		if c.SHA256[name] != sum {
			return corrupt("entry %q does not match its checksum", name)
		}
	}
	// The outer layer must end here too.
	if _, err := a.r.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return corrupt("data after the archive's end")
		}
		return err
	}
	a.done = true
	return io.EOF
}

// frameReader reads one entry's frames.
type frameReader struct {
	a    *archiveReader
	name string
	h    hash.Hash
	left int  // bytes left in the current frame
	end  bool // the entry's terminator was read
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.end {
		return 0, io.EOF
	}
	for f.left == 0 {
		var lb [4]byte
		if _, err := io.ReadFull(f.a.r, lb[:]); err != nil {
			return 0, f.a.eof(err)
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n == 0 {
			f.end = true
			return 0, io.EOF
		}
		if n > maxFrame {
			return 0, corrupt("entry %q: a frame of %d bytes", f.name, n)
		}
		f.left = int(n)
	}
	n, err := f.a.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	f.h.Write(p[:n])
	if err != nil {
		return n, f.a.eof(err)
	}
	return n, nil
}

// readManifest reads and checks the first entry.
func readManifest(a *archiveReader) (*Manifest, error) {
	name, body, err := a.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, corrupt("the archive has no manifest")
		}
		return nil, err
	}
	if name != entryManifest {
		return nil, corrupt("the first entry is %q, not the manifest", name)
	}
	b, err := io.ReadAll(io.LimitReader(body, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, corrupt("the manifest is too large")
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, corrupt("the manifest: %v", err)
	}
	if err := m.validate(); err != nil {
		return nil, corrupt("the manifest: %v", err)
	}
	return &m, nil
}

func jsonTo(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
