package gateway

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/fsutil"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// keepOfflineLocked decides what happens to an upstream's catalog when its
// connection is lost (every target's, for an upstream with targets). By
// default its items are withdrawn: offering tools that certainly cannot
// be called helps nobody. An upstream that keeps its catalog
// ([config.Upstream.KeepsCatalog]: keep_catalog, or by default one with
// deferrable tools or a response cache) stays listed with the catalog it
// had, so that an edge device that lost its network still shows its
// clients the tools whose calls are queued or answered from the cache;
// other calls fail fast with CodeUpstreamUnavailable. The kept catalog is
// replaced as soon as the upstream is back. It reports whether the
// catalog is kept. g.mu must be held.
func (g *Gateway) keepOfflineLocked(name string) bool {
	gr, reg := g.groups[name], g.regs[name]
	if gr == nil || reg == nil || !gr.cfg.KeepsCatalog() {
		return false
	}
	if !reg.offline {
		reg.offline = true
		g.log.Warn("upstream down: its last catalog stays listed (keep_catalog); calls fail, are queued or answered from the cache until it is back",
			"upstream", name, "tools", len(reg.tools))
	}
	return true
}

// listedCatalog is the catalog clients are offered for u's upstream: the
// live one, or the one kept while the upstream is down (u's own catalog
// is empty then).
func (g *Gateway) listedCatalog(u *upstream.Upstream) *upstream.Catalog {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if r := g.regs[groupName(u)]; r != nil && r.catalog != nil {
		return r.catalog
	}
	return u.Catalog()
}

// Saved catalogs: with a catalog directory (SetCatalogDir; `mcpedge
// serve` uses <data_dir>/catalogs), the catalog of every upstream that
// keeps its catalog is saved whenever it is registered, and at start an
// upstream that has not connected yet lists its saved catalog, kept as if
// it had just gone down. A device that restarts while its network is away
// still shows its clients the tools whose calls it can queue.

// maxSavedCatalog bounds a saved catalog file read at start.
const maxSavedCatalog = 16 << 20

// savedCatalogVersion is the file format's version.
const savedCatalogVersion = 1

type savedCatalog struct {
	Version   int                     `json:"version"`
	Upstream  string                  `json:"upstream"`
	Saved     time.Time               `json:"saved"`
	Init      *mcp.InitializeResult   `json:"init"`
	Tools     []*mcp.Tool             `json:"tools,omitempty"`
	Prompts   []*mcp.Prompt           `json:"prompts,omitempty"`
	Resources []*mcp.Resource         `json:"resources,omitempty"`
	Templates []*mcp.ResourceTemplate `json:"templates,omitempty"`
}

// catalogStore saves catalogs, one write at a time, skipping unchanged ones.
type catalogStore struct {
	dir       string
	restoring bool // set (under g.mu) while a saved catalog is registered: not saved again
	mu        sync.Mutex
	last      map[string][32]byte // upstream -> hash of the last file written
	// pending is the newest catalog of each upstream not written yet.
	// Writers run on goroutines that may start in any order: each writes
	// whatever is newest, so an older catalog never overwrites a newer one.
	pmu     sync.Mutex
	pending map[string][]byte
}

// SetCatalogDir turns saved catalogs on (dir) or off (""). Call it before
// [Gateway.Start].
func (g *Gateway) SetCatalogDir(dir string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if dir == "" {
		g.catalogs = nil
		return
	}
	g.catalogs = &catalogStore{dir: dir, last: map[string][32]byte{}, pending: map[string][]byte{}}
	prepareCatalogDir(dir, g.log)
}

// staleTempAge is how old a leftover temporary file in the catalog
// directory must be to be removed at setup: older than any save in
// progress (a save writes one small file), so that a second gateway
// sharing the directory by mistake does not lose a file it is writing.
const staleTempAge = time.Minute

// prepareCatalogDir tightens an existing catalog directory to 0700 (the
// catalogs describe the upstreams' tools, which are no one else's
// business; the directory is created 0700, but one made by hand or by an
// older version may be looser) and removes the temporary files of saves
// that a crash interrupted. Problems are logged, not fatal: saving
// catalogs is a convenience, and a save reports its own errors.
func prepareCatalogDir(dir string, log *slog.Logger) {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return // created 0700 by the first save
	}
	if err != nil {
		log.Warn("catalog directory", "dir", dir, "err", err)
		return
	}
	if !fi.IsDir() {
		log.Warn("catalog directory is not a directory: catalogs will not be saved", "dir", dir)
		return
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			log.Warn("catalog directory is readable by others and could not be restricted", "dir", dir, "mode", fmt.Sprintf("%#o", perm), "err", err)
		} else {
			log.Warn("catalog directory was readable by others: restricted to its owner", "dir", dir, "was", fmt.Sprintf("%#o", perm), "now", "0700")
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Warn("catalog directory", "dir", dir, "err", err)
		return
	}
	removed := 0
	for _, e := range entries {
		if ok, _ := filepath.Match(".*-*.tmp", e.Name()); !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < staleTempAge {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			log.Warn("removing a leftover temporary catalog file", "file", filepath.Join(dir, e.Name()), "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		log.Info("removed leftover temporary catalog files of interrupted saves", "dir", dir, "files", removed)
	}
}

// syncDir makes a rename in dir durable: without it a power loss right
// after the rename can leave the directory without the new name (or
// with neither file) although the file's own data was synced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	if cerr := d.Close(); serr == nil {
		serr = cerr
	}
	return serr
}

// catalogRegisteredLocked saves the catalog just registered for name when
// the upstream keeps its catalog. g.mu must be held; the file is written
// in the background.
func (g *Gateway) catalogRegisteredLocked(name string, cat *upstream.Catalog) {
	cs, gr := g.catalogs, g.groups[name]
	if cs == nil || cs.restoring || gr == nil || !gr.cfg.KeepsCatalog() || gr.cfg.Transport == upstream.TransportBuiltin || cat.Init == nil {
		return
	}
	b, err := json.Marshal(savedCatalog{Version: savedCatalogVersion, Upstream: name, Saved: time.Now().UTC(), Init: cat.Init,
		Tools: cat.Tools, Prompts: cat.Prompts, Resources: cat.Resources, Templates: cat.Templates})
	if err != nil {
		g.log.Warn("saving the catalog", "upstream", name, "err", err)
		return
	}
	cs.pmu.Lock()
	cs.pending[name] = b
	cs.pmu.Unlock()
	go func() {
		if err := cs.save(name); err != nil {
			g.log.Warn("saving the catalog", "upstream", name, "err", err)
		}
	}()
}

// save writes the newest pending catalog of upstream name, if any.
func (cs *catalogStore) save(name string) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.pmu.Lock()
	b, ok := cs.pending[name]
	delete(cs.pending, name)
	cs.pmu.Unlock()
	if !ok {
		return nil // a writer that started earlier wrote it
	}
	// The hash leaves out the time of saving, so an unchanged catalog is
	// not written again on every reconnect.
	var s savedCatalog
	_ = json.Unmarshal(b, &s)
	s.Saved = time.Time{}
	plain, _ := json.Marshal(s)
	h := sha256.Sum256(plain)
	if cs.last[name] == h {
		return nil
	}
	if err := os.MkdirAll(cs.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(cs.dir, "."+name+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(cs.dir, name+".json")); err != nil {
		return err
	}
	if err := syncDir(cs.dir); err != nil {
		// The file is in place; only its durability across a power
		// loss is in doubt. Not remembered as saved, so the next
		// registration writes (and syncs) it again.
		return fmt.Errorf("syncing the catalog directory: %w", err)
	}
	cs.last[name] = h
	return nil
}

// restoreCatalogsLocked lists the saved catalog of every upstream that
// keeps its catalog and has none registered yet. g.mu must be held.
func (g *Gateway) restoreCatalogsLocked() {
	cs := g.catalogs
	if cs == nil {
		return
	}
	for name, gr := range g.groups {
		if g.regs[name] != nil || !gr.cfg.KeepsCatalog() || len(gr.targets) == 0 || gr.cfg.Transport == upstream.TransportBuiltin {
			continue
		}
		if catalogSource(gr) != nil {
			continue // connected already
		}
		path := filepath.Join(cs.dir, name+".json")
		b, err := fsutil.ReadBounded(path, maxSavedCatalog)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var cat *upstream.Catalog
		if err == nil {
			cat, err = decodeSavedCatalog(b, name)
		}
		if err != nil {
			g.log.Warn("saved catalog not used", "upstream", name, "file", path, "err", err)
			continue
		}
		cs.restoring = true
		g.registerLocked(name, gr.targets[0], cat)
		cs.restoring = false
		if reg := g.regs[name]; reg != nil {
			reg.offline = true
			g.log.Info("upstream not connected yet: listing its saved catalog (keep_catalog)", "upstream", name, "tools", len(reg.tools), "saved", cat.Fetched)
		}
	}
}

// decodeSavedCatalog checks a saved catalog file: its version, that it is
// the named upstream's, and that it has the initialize result a registered
// catalog needs.
func decodeSavedCatalog(b []byte, name string) (*upstream.Catalog, error) {
	var s savedCatalog
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("not a saved catalog: %w", err)
	}
	switch {
	case s.Version != savedCatalogVersion:
		return nil, fmt.Errorf("saved catalog version %d, this gateway reads version %d", s.Version, savedCatalogVersion)
	case s.Upstream != name:
		return nil, fmt.Errorf("the file holds the catalog of upstream %q", s.Upstream)
	case s.Init == nil:
		return nil, errors.New("the saved catalog has no initialize result")
	}
	for _, list := range [][]bool{nilsOf(s.Tools), nilsOf(s.Prompts), nilsOf(s.Resources), nilsOf(s.Templates)} {
		if slices.Contains(list, true) {
			return nil, errors.New("the saved catalog has a null item")
		}
	}
	return &upstream.Catalog{Init: s.Init, Tools: s.Tools, Prompts: s.Prompts, Resources: s.Resources, Templates: s.Templates, Fetched: s.Saved}, nil
}

func nilsOf[T any](l []*T) []bool {
	out := make([]bool, len(l))
	for i, x := range l {
		out[i] = x == nil
	}
	return out
}
