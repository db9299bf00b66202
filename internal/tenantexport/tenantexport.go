// Package tenantexport writes and checks the archive of everything mcpedge
// holds about one tenant (`mcpedge tenant export`, GET
// /api/tenants/{tenant}/export; docs/platform.md, "Tenant data export").
//
// # Format
//
// The archive is a ZIP file (deflate) of JSON Lines files, one per table,
// and a manifest:
//
//	tenant.jsonl           the tenant
//	users.jsonl            its users (no password hashes)
//	api_keys.jsonl         its API keys' metadata (no secrets, no hashes)
//	refresh_tokens.jsonl   its users' login sessions (no token hashes)
//	mcp_sessions.jsonl     its MCP client sessions' metadata
//	virtual_servers.jsonl  rules.jsonl  usage.jsonl  usage_hourly.jsonl
//	lattices.jsonl  devices.jsonl  enroll_tokens.jsonl
//	audit.jsonl            its audit entries, whole (each verifiable with audit.Seal)
//	queue.jsonl            its offline-queue entries on the exporting gateway, arguments and results included
//	manifest.json          last: format, version, tenant, time, and per file its SHA-256, records and bytes
//
// Every file is present, empty when the tenant has nothing there. Each
// line of a .jsonl file is one JSON object. The archive is written as it
// is read from the store, a file at a time: nothing is held in memory but
// one record (ZIP's data descriptors let a file be written before its
// size is known, and the manifest comes last for the same reason).
package tenantexport

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Format and Version name the archive format in its manifest.
const (
	Format  = "mcpedge-tenant-export"
	Version = 1
	// ManifestName is the manifest's file name in the archive.
	ManifestName = "manifest.json"
	// QueueFile is the offline queue's file.
	QueueFile = "queue.jsonl"
)

// Manifest describes an archive.
type Manifest struct {
	Format    string     `json:"format"`
	Version   int        `json:"version"`
	Tenant    TenantRef  `json:"tenant"`
	CreatedAt time.Time  `json:"created_at"`
	Files     []FileInfo `json:"files"`
	// Queue says whose offline queue queue.jsonl holds ("" when the
	// export had no queue to read: the file is empty).
	Queue string `json:"queue,omitempty"`
}

// TenantRef names the exported tenant.
type TenantRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// FileInfo describes one file of an archive.
type FileInfo struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"` // hex, of the file's bytes
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// Files are the data files of an archive, in order.
func Files() []string {
	var out []string
	for _, t := range store.ExportTables() {
		out = append(out, t+".jsonl")
	}
	return append(out, QueueFile)
}

// QueueSource exports the tenant's offline-queue entries: emit is called
// for each, in queue order.
type QueueSource interface {
	ExportQueue(ctx context.Context, tenantID string, emit func(row any) error) error
}

// Options of Write.
type Options struct {
	// Queue, if set, is the offline queue whose entries of the tenant go
	// to queue.jsonl; QueueName says which (for the manifest).
	Queue     QueueSource
	QueueName string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Write streams the archive of tenant t to w and returns its manifest.
// An error leaves w with a partial archive (a reader refuses it: it has no
// manifest or no central directory).
func Write(ctx context.Context, w io.Writer, st store.TenantData, t *store.Tenant, opts Options) (*Manifest, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m := &Manifest{Format: Format, Version: Version, Tenant: TenantRef{ID: t.ID, Name: t.Name}, CreatedAt: now().UTC(), Queue: opts.QueueName}
	zw := zip.NewWriter(w)
	aw := &archiveWriter{zw: zw, m: m, created: m.CreatedAt, pending: Files()}
	err := st.ExportTenant(ctx, t.ID, func(table string, row any) error {
		return aw.write(table+".jsonl", row)
	})
	if err != nil {
		return nil, fmt.Errorf("exporting tenant %s: %w", t.Name, err)
	}
	if opts.Queue != nil {
		err := opts.Queue.ExportQueue(ctx, t.ID, func(row any) error { return aw.write(QueueFile, row) })
		if err != nil {
			return nil, fmt.Errorf("exporting tenant %s's queue entries: %w", t.Name, err)
		}
	}
	if err := aw.finish(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	f, err := zw.CreateHeader(&zip.FileHeader{Name: ManifestName, Method: zip.Deflate, Modified: m.CreatedAt})
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// archiveWriter writes the data files in Files order, opening each when
// its first record comes (and empty files for those that got none).
type archiveWriter struct {
	zw      *zip.Writer
	m       *Manifest
	created time.Time
	pending []string // files not opened yet, in order
	cur     *fileWriter
}

type fileWriter struct {
	info FileInfo
	h    hash.Hash
	bw   *bufio.Writer
	enc  *json.Encoder
	cw   countWriter
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	*c.n += int64(n)
	return n, err
}

// open closes the current file and opens name, first creating the empty
// files that come before it.
func (a *archiveWriter) open(name string) error {
	i := slices.Index(a.pending, name)
	if i < 0 {
		return fmt.Errorf("tenant export: records of %s after later files (or of an unknown file)", name)
	}
	if err := a.close(); err != nil {
		return err
	}
	for _, skipped := range a.pending[:i] {
		if err := a.start(skipped); err != nil {
			return err
		}
		if err := a.close(); err != nil {
			return err
		}
	}
	a.pending = a.pending[i+1:]
	return a.start(name)
}

func (a *archiveWriter) start(name string) error {
	zf, err := a.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: a.created})
	if err != nil {
		return err
	}
	f := &fileWriter{info: FileInfo{Name: name}, h: sha256.New()}
	f.cw = countWriter{w: io.MultiWriter(zf, f.h), n: &f.info.Bytes}
	f.bw = bufio.NewWriterSize(f.cw, 32<<10)
	f.enc = json.NewEncoder(f.bw)
	f.enc.SetEscapeHTML(false)
	a.cur = f
	return nil
}

func (a *archiveWriter) close() error {
	f := a.cur
	if f == nil {
		return nil
	}
	a.cur = nil
	if err := f.bw.Flush(); err != nil {
		return err
	}
	f.info.SHA256 = hex.EncodeToString(f.h.Sum(nil))
	a.m.Files = append(a.m.Files, f.info)
	return nil
}

func (a *archiveWriter) write(name string, row any) error {
	if a.cur == nil || a.cur.info.Name != name {
		if err := a.open(name); err != nil {
			return err
		}
	}
	if err := a.cur.enc.Encode(row); err != nil {
		return fmt.Errorf("tenant export: writing %s: %w", name, err)
	}
	a.cur.info.Records++
	return nil
}

// finish closes the last file and writes the empty ones left.
func (a *archiveWriter) finish() error {
	if err := a.close(); err != nil {
		return err
	}
	for _, name := range a.pending {
		if err := a.start(name); err != nil {
			return err
		}
		if err := a.close(); err != nil {
			return err
		}
	}
	a.pending = nil
	return nil
}

// Limits of Check.
const (
	// MaxManifestBytes bounds manifest.json.
	MaxManifestBytes = 1 << 20
	// MaxLineBytes bounds one record of a data file.
	MaxLineBytes = 64 << 20
)

// ErrInvalid marks an archive that Check refuses.
var ErrInvalid = errors.New("not a valid tenant export")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Check reads an archive, as an auditor or the tenant would, and checks it
// against its manifest: the format and version, every file of Files
// present once and nothing else, each file's SHA-256, size and number of
// records, and that every record is one JSON object. It returns the
// manifest. A damaged, truncated or forged archive is an error that
// errors.Is ErrInvalid; it reads each file as a stream (memory is bounded
// by MaxLineBytes), never trusting sizes the archive claims.
func Check(r io.ReaderAt, size int64) (*Manifest, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, invalid("%v", err)
	}
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		if _, dup := byName[f.Name]; dup {
			return nil, invalid("file %q appears twice", clip(f.Name))
		}
		byName[f.Name] = f
	}
	mf := byName[ManifestName]
	if mf == nil {
		return nil, invalid("no %s", ManifestName)
	}
	rc, err := mf.Open()
	if err != nil {
		return nil, invalid("%s: %v", ManifestName, err)
	}
	mb, err := io.ReadAll(io.LimitReader(rc, MaxManifestBytes+1))
	rc.Close()
	if err != nil {
		return nil, invalid("%s: %v", ManifestName, err)
	}
	if len(mb) > MaxManifestBytes {
		return nil, invalid("%s is larger than %d bytes", ManifestName, MaxManifestBytes)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, invalid("%s: %v", ManifestName, err)
	}
	if m.Format != Format || m.Version != Version {
		return nil, invalid("format %q version %d, want %q version %d", clip(m.Format), m.Version, Format, Version)
	}
	want := Files()
	if len(m.Files) != len(want) {
		return nil, invalid("the manifest lists %d files, want %d", len(m.Files), len(want))
	}
	if len(byName) != len(want)+1 {
		return nil, invalid("the archive holds %d files, want %d and the manifest", len(byName)-1, len(want))
	}
	for i, fi := range m.Files {
		if fi.Name != want[i] {
			return nil, invalid("file %d of the manifest is %q, want %q", i+1, clip(fi.Name), want[i])
		}
		f := byName[fi.Name]
		if f == nil {
			return nil, invalid("%s is in the manifest but not in the archive", fi.Name)
		}
		if err := checkFile(f, fi); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

func checkFile(f *zip.File, fi FileInfo) error {
	rc, err := f.Open()
	if err != nil {
		return invalid("%s: %v", fi.Name, err)
	}
	defer rc.Close()
	h := sha256.New()
	var n int64
	// Read no more than the manifest says, plus one byte to notice more.
	lr := io.LimitReader(rc, fi.Bytes+1)
	br := bufio.NewReaderSize(io.TeeReader(lr, h), 64<<10)
	var records int64
	for {
		line, err := readLine(br)
		n += int64(len(line))
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				return invalid("%s: the last record does not end with a newline", fi.Name)
			}
			body := bytes.TrimSpace(line)
			if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
				return invalid("%s: record %d is not a JSON object", fi.Name, records+1)
			}
			records++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return invalid("%s: %v", fi.Name, err)
		}
	}
	if n != fi.Bytes {
		return invalid("%s has %d bytes, the manifest says %d", fi.Name, n, fi.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(fi.SHA256) {
		return invalid("%s has SHA-256 %s, the manifest says %s", fi.Name, got, clip(fi.SHA256))
	}
	if records != fi.Records {
		return invalid("%s has %d records, the manifest says %d", fi.Name, records, fi.Records)
	}
	return nil
}

// readLine reads one line (with its newline) of at most MaxLineBytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLineBytes {
			return nil, fmt.Errorf("a record is larger than %d bytes", MaxLineBytes)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
