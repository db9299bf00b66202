// Package latticesvc puts the lattice engine (internal/lattice) behind the
// gateway: a Service with a registry of named lattice definitions kept in
// the store and scoped by tenant, per-plan limits and a timeout on every
// operation, an in-process MCP server with the lattice_* tools
// (NewMCPServer), and a REST API under /api/ (RESTHandler). See
// docs/lattice.md.
package latticesvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/lattice"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Limits are the per-plan limits until plans exist (config [lattice]).
type Limits struct {
	// MaxPoints caps the points of one lattice.
	MaxPoints int64
	// MaxInlineBlockedCells caps the explicit blocked cells of one
	// definition (0: explicit cells are refused).
	MaxInlineBlockedCells int
	// MaxPathPoints caps a returned path (longer ones are reported by
	// length only) and the point set of one transform.
	MaxPathPoints int
	// OperationTimeout bounds one operation.
	OperationTimeout time.Duration
	// MaxLattices caps the stored definitions (0: storing is refused).
	MaxLattices int
	// MemoryBudget is the clean-memory budget of one search in bytes
	// (0: DefaultMemoryBudget). Searches whose dense scratch does not fit
	// use sparse A*, which stops with memory_budget when it would pass it.
	MemoryBudget int64
}

// Default limits, the same as the config defaults.
const (
	DefaultMaxPoints             = int64(1) << 32
	DefaultMaxInlineBlockedCells = 1 << 16
	DefaultMaxPathPoints         = 1 << 16
	DefaultOperationTimeout      = 10 * time.Second
	DefaultMaxLattices           = 1000
	// DefaultMemoryBudget is the budget of one search: well under the
	// gateway's 256 MiB soft memory limit with a few searches at once.
	DefaultMemoryBudget = 128 << 20
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxPoints:             DefaultMaxPoints,
		MaxInlineBlockedCells: DefaultMaxInlineBlockedCells,
		MaxPathPoints:         DefaultMaxPathPoints,
		OperationTimeout:      DefaultOperationTimeout,
		MaxLattices:           DefaultMaxLattices,
	}
}

func (l Limits) normalised() Limits {
	d := DefaultLimits()
	if l.MaxPoints <= 0 || l.MaxPoints > lattice.MaxTotalPoints {
		l.MaxPoints = d.MaxPoints
	}
	l.MaxInlineBlockedCells = max(l.MaxInlineBlockedCells, 0)
	if l.MaxPathPoints <= 0 {
		l.MaxPathPoints = d.MaxPathPoints
	}
	if l.OperationTimeout <= 0 {
		l.OperationTimeout = d.OperationTimeout
	}
	l.MaxLattices = max(l.MaxLattices, 0)
	if l.MemoryBudget <= 0 {
		l.MemoryBudget = DefaultMemoryBudget
	}
	return l
}

// engine returns the engine limits a lattice is built with. The cell cap
// is checked by the service itself (so that 0 can mean "none").
func (l Limits) engine() lattice.Limits {
	return lattice.Limits{
		MaxPoints:       l.MaxPoints,
		MaxBlockedCells: max(l.MaxInlineBlockedCells, 1),
		MemoryBudget:    l.MemoryBudget,
		MaxPathPoints:   int64(l.MaxPathPoints),
	}
}

// Options configure a Service. Every field is optional.
type Options struct {
	// Store keeps the definitions, scoped by tenant; several gateways may
	// share one. nil keeps them in memory only, lost at exit (logged as a
	// warning, reported by Persistence, and persisted is false in
	// responses).
	Store store.Lattices
	// DefaultTenant is the tenant id of calls without a principal:
	// single-user mode (auth off, or mcpedge stdio). With a Store and no
	// DefaultTenant such calls can not use stored lattices
	// (tenant_required); without a Store, "" is a tenant like any other.
	// Calls with a principal always use the principal's tenant.
	DefaultTenant string
	// DataDir is where an earlier mcpedge kept lattices.json. If that file
	// exists, ImportTenant is set and there is a Store, New imports it into
	// the store once (see Persistence).
	DataDir string
	// ImportTenant is the tenant id that lattices.json is imported into.
	ImportTenant string
	// Limits are the configured limits, the [lattice] table (see
	// SetLimits; zero: DefaultLimits).
	Limits Limits
	// PlanLimits returns a plan's limits. A MaxPoints or OperationTimeout
	// above 0 replaces the configured value for callers on that plan; 0,
	// and every other field, keeps it. nil: the configured limits apply to
	// every plan. It is called once per operation, so it should be cheap.
	PlanLimits func(plan string) Limits
	// Audit, if set, receives a "lattice.not_found" entry for every lookup
	// by id that finds nothing in the caller's tenant (an id of another
	// tenant answers exactly like one that does not exist).
	Audit  func(ctx context.Context, e *store.AuditEntry)
	Logger *slog.Logger
	// Version is reported as the MCP server's version.
	Version string
	// MaxConcurrent bounds searches running at once (0: GOMAXPROCS); a
	// search waits for a slot within its operation timeout.
	MaxConcurrent int
	// CatalyticRegionBytes is the size of the region catalytic searches
	// borrow from (0: 16 MiB). It is allocated on first use.
	CatalyticRegionBytes int
}

// Service is the lattice engine with a registry of stored definitions. It
// is safe for concurrent use. It keeps no copy of the definitions: every
// use reads the store, so gateways sharing one store always agree.
type Service struct {
	log           *slog.Logger
	version       string
	lim           atomic.Pointer[Limits]
	planLimits    func(string) Limits
	audit         func(context.Context, *store.AuditEntry)
	store         store.Lattices
	persisted     bool   // store is the configured Store, not memory
	warning       string // why persistence is off
	defaultTenant string
	importTenant  string
	importErr     error // lattices.json could not be imported: importTenant's stored lattices are unavailable
	createMu      sync.Mutex
	sem           chan struct{}

	regionMu    chan struct{} // one catalytic search at a time
	region      []byte
	regionBytes int
}

// New creates the service and, if there is one to import, imports
// lattices.json into the store. It never fails: without a store the
// service keeps definitions in memory, and a file that can not be
// imported makes the import tenant's stored lattices unavailable (inline
// lattices still work) without changing the file; both are logged and
// reported by Persistence.
func New(opts Options) *Service {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := opts.MaxConcurrent
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	rb := opts.CatalyticRegionBytes
	if rb <= 0 {
		rb = 16 << 20
	}
	s := &Service{
		log: log, version: opts.Version,
		planLimits: opts.PlanLimits, audit: opts.Audit,
		store: opts.Store, persisted: opts.Store != nil, defaultTenant: opts.DefaultTenant,
		sem:         make(chan struct{}, n),
		regionMu:    make(chan struct{}, 1),
		regionBytes: rb,
	}
	if s.version == "" {
		s.version = "dev"
	}
	s.SetLimits(opts.Limits)
	if s.store == nil {
		s.store = &memLattices{}
		s.warn("no store is configured; stored lattices are kept in memory only")
	}
	s.importFile(opts.DataDir, opts.ImportTenant)
	return s
}

// SetLimits replaces the configured limits. A zero Limits means
// DefaultLimits(); otherwise zero fields take their defaults, except
// MaxInlineBlockedCells and MaxLattices, where 0 means none. Operations
// already running keep the limits they started with.
func (s *Service) SetLimits(l Limits) {
	if l == (Limits{}) {
		l = DefaultLimits()
	}
	n := l.normalised()
	s.lim.Store(&n)
}

// Limits returns the configured limits (before any plan's are applied).
func (s *Service) Limits() Limits { return *s.lim.Load() }

// Persistence describes where definitions are kept.
type Persistence struct {
	// Stored is true when definitions are kept in the configured store,
	// false when in memory only.
	Stored bool
	// Err is why the import tenant's stored lattices are unavailable
	// (lattices.json could not be read or imported), or nil.
	Err error
	// Warning says why persistence is off, or why lattices.json was not
	// imported, or "".
	Warning string
}

// Persistence reports where definitions are kept.
func (s *Service) Persistence() Persistence {
	return Persistence{Stored: s.persisted, Err: s.importErr, Warning: s.warning}
}

// Error is a service error: a stable code, the HTTP status that fits and a
// message for people. MCP tools report it as an isError result.
type Error struct {
	Code    string
	Status  int
	Message string
	Err     error // the cause, if any
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Error codes.
const (
	CodeInvalidArgument   = "invalid_argument"
	CodeInvalidID         = "invalid_id"
	CodeInvalidSpec       = "invalid_spec"
	CodeInvalidDensity    = "invalid_density"
	CodeDimension         = "dimension_mismatch"
	CodeOutOfBounds       = "out_of_bounds"
	CodeBlockedEndpoint   = "blocked_endpoint"
	CodeInvalidTransform  = "invalid_transform"
	CodeNotFound          = "not_found"
	CodeTenantRequired    = "tenant_required"
	CodeTooManyPoints     = "too_many_points"
	CodeTooManyCells      = "too_many_blocked_cells"
	CodeTooManyLattices   = "too_many_lattices"
	CodeTooManyInRequest  = "too_many_points_in_request"
	CodeMemoryBudget      = "memory_budget"
	CodeTimeout           = "timeout"
	CodeCanceled          = "canceled"
	CodeStoreUnavailable  = "store_unavailable"
	CodeStoreWrite        = "store_write_failed"
	CodeInternal          = "internal"
	CodeUnsupportedMedia  = "unsupported_media_type"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeBodyTooLarge      = "body_too_large"
	CodeInvalidJSON       = "invalid_json"
	codeStatusUnavailable = http.StatusServiceUnavailable
)

var codeStatus = map[string]int{
	CodeInvalidArgument:  http.StatusBadRequest,
	CodeInvalidID:        http.StatusBadRequest,
	CodeInvalidSpec:      http.StatusBadRequest,
	CodeInvalidDensity:   http.StatusBadRequest,
	CodeDimension:        http.StatusBadRequest,
	CodeOutOfBounds:      http.StatusBadRequest,
	CodeBlockedEndpoint:  http.StatusBadRequest,
	CodeInvalidTransform: http.StatusBadRequest,
	CodeInvalidJSON:      http.StatusBadRequest,
	CodeNotFound:         http.StatusNotFound,
	CodeTenantRequired:   http.StatusForbidden,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeBodyTooLarge:     http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeTooManyPoints:    http.StatusUnprocessableEntity,
	CodeTooManyCells:     http.StatusUnprocessableEntity,
	CodeTooManyLattices:  http.StatusUnprocessableEntity,
	CodeTooManyInRequest: http.StatusUnprocessableEntity,
	CodeMemoryBudget:     http.StatusUnprocessableEntity,
	CodeTimeout:          http.StatusGatewayTimeout,
	CodeCanceled:         codeStatusUnavailable,
	CodeStoreUnavailable: codeStatusUnavailable,
	CodeStoreWrite:       http.StatusInternalServerError,
	CodeInternal:         http.StatusInternalServerError,
}

func errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Status: codeStatus[code], Message: fmt.Sprintf(format, args...)}
}

func wrapErr(code string, err error, format string, args ...any) *Error {
	e := errorf(code, format, args...)
	e.Err = err
	return e
}

// engineErr maps an engine error (or a context error of an operation run
// under ctx, whose parent is parent) to an *Error.
func (s *Service) engineErr(parent context.Context, err error, lim callLimits) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil:
		return wrapErr(CodeTimeout, err, "the operation took longer than %s and was stopped", lim.timeout())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return wrapErr(CodeCanceled, err, "the operation was canceled: %s", msg)
	case errors.Is(err, lattice.ErrTooManyPoints):
		return wrapErr(CodeTooManyPoints, err, "%s", lim.tooManyPoints(msg))
	case errors.Is(err, lattice.ErrDensity):
		return wrapErr(CodeInvalidDensity, err, "%s: blocked.random.density must be in [0, 1]", msg)
	case errors.Is(err, lattice.ErrDimension):
		return wrapErr(CodeDimension, err, "%s", msg)
	case errors.Is(err, lattice.ErrOutOfBounds):
		return wrapErr(CodeOutOfBounds, err, "%s", msg)
	case errors.Is(err, lattice.ErrBlockedEndpoint):
		return wrapErr(CodeBlockedEndpoint, err, "%s: choose an open point", msg)
	case errors.Is(err, lattice.ErrMemoryBudget):
		return wrapErr(CodeMemoryBudget, err, "%s", msg)
	case errors.Is(err, lattice.ErrTransform):
		return wrapErr(CodeInvalidTransform, err, "%s", msg)
	case errors.Is(err, lattice.ErrInvalidSpec):
		return wrapErr(CodeInvalidSpec, err, "%s", msg)
	case errors.Is(err, lattice.ErrInvalidOption):
		return wrapErr(CodeInvalidArgument, err, "%s", msg)
	}
	s.log.Error("lattice operation failed", "err", msg)
	return wrapErr(CodeInternal, err, "internal error: %s", msg)
}

// Def is a lattice definition.
type Def struct {
	Dims     []int64
	Periodic bool
	Cells    [][]int64
	Random   *lattice.RandomBlock
}

func (d Def) spec() lattice.Spec {
	return lattice.Spec{Dims: d.Dims, Periodic: d.Periodic, Blocked: lattice.Blocking{Cells: d.Cells, Random: d.Random}}
}

// points returns the product of the dimensions, or false past 2^62.
func (d Def) points() (int64, bool) {
	p := uint64(1)
	for _, n := range d.Dims {
		hi, lo := bits.Mul64(p, uint64(max(n, 0)))
		if hi != 0 || lo > uint64(lattice.MaxTotalPoints) {
			return 0, false
		}
		p = lo
	}
	return int64(p), true
}

// checkPlan checks d against the plan's limits and builds its lattice.
func checkPlan(d Def, lim Limits) (*lattice.Lattice, error) {
	if len(d.Cells) > lim.MaxInlineBlockedCells {
		return nil, errorf(CodeTooManyCells, "%d explicit blocked cells; the limit is %d (lattice.max_inline_blocked_cells)", len(d.Cells), lim.MaxInlineBlockedCells)
	}
	return lattice.New(d.spec(), lim.engine())
}

// Target names the lattice of an operation: a stored one by ID, or Def.
type Target struct {
	ID  string
	Def *Def

	stored *stored // ID, already looked up
}

// stored is a definition read from the store.
type stored struct {
	id, name string
	def      Def
	created  time.Time
}

// resolve returns the lattice of t under lim.
func (s *Service) resolve(ctx context.Context, t Target, op string, lim callLimits) (*lattice.Lattice, error) {
	d := t.Def
	if d == nil {
		st := t.stored
		if st == nil {
			var err error
			if st, err = s.lookup(ctx, t.ID, op); err != nil {
				return nil, err
			}
		}
		d = &st.def
	}
	l, err := checkPlan(*d, lim.Limits)
	if err != nil {
		return nil, s.engineErr(context.Background(), err, lim)
	}
	return l, nil
}

// lookup reads the caller's stored lattice id; op names the operation for
// the audit log. Another tenant's id is not found, exactly like one that
// does not exist.
func (s *Service) lookup(ctx context.Context, id, op string) (*stored, error) {
	c := s.caller(ctx)
	tenant, err := s.tenantFor(c)
	if err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, errorf(CodeInvalidID, "%q is not a lattice id (they look like lat_ followed by 16 hex digits)", truncate(id, 40))
	}
	row, err := s.store.GetLattice(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		s.auditNotFound(ctx, c, op, id)
		return nil, errorf(CodeNotFound, "no lattice with id %s", id)
	}
	if err != nil {
		return nil, s.storeErr(ctx, err, "reading lattice %s", id)
	}
	return s.decodeRow(row)
}

// decodeRow decodes a definition read from the store.
func (s *Service) decodeRow(row *store.Lattice) (*stored, error) {
	d, created, err := decodeSpec(row.Spec)
	if err != nil {
		s.log.Error("stored lattice unreadable", "id", row.ID, "tenant", row.TenantID, "err", err.Error())
		return nil, wrapErr(CodeInternal, err, "stored lattice %s can not be read: %v", row.ID, err)
	}
	if created.IsZero() {
		created = row.CreatedAt
	}
	return &stored{id: row.ID, name: row.Name, def: d, created: created.UTC().Truncate(time.Millisecond)}, nil
}

// storeErr reports a failed store call: canceled by the caller, or the
// store is unavailable.
func (s *Service) storeErr(ctx context.Context, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if ctx.Err() != nil {
		return wrapErr(CodeCanceled, err, "%s was canceled: %v", what, err)
	}
	s.log.Error("lattice store failed", "op", what, "err", err.Error())
	return wrapErr(CodeStoreUnavailable, err, "%s failed: the store is unavailable: %v", what, err)
}

func validID(id string) bool {
	if len(id) != 20 || id[:4] != "lat_" {
		return false
	}
	for _, c := range []byte(id[4:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "lat_" + hex.EncodeToString(b[:])
}

// Info is a stored lattice as returned by the API.
type Info struct {
	ID           string      `json:"id"`
	Name         string      `json:"name,omitempty"`
	Dims         []int64     `json:"dims"`
	Boundary     string      `json:"boundary"`
	Blocked      *BlockedSet `json:"blocked,omitempty"`
	BlockedCells int         `json:"blocked_cells"`
	Points       int64       `json:"points"`
	Created      time.Time   `json:"created"`
	Persisted    bool        `json:"persisted"`
}

// BlockedSet is the canonical form of blocked cells in responses.
type BlockedSet struct {
	Cells  [][]int64   `json:"cells,omitempty"`
	Random *RandomJSON `json:"random,omitempty"`
}

// RandomJSON is random blocking in JSON.
type RandomJSON struct {
	Density float64 `json:"density"`
	Seed    uint64  `json:"seed"`
}

func boundaryName(periodic bool) string {
	if periodic {
		return "periodic"
	}
	return "open"
}

func (s *Service) info(e *stored, withCells bool) Info {
	pts, _ := e.def.points()
	in := Info{
		ID: e.id, Name: e.name, Dims: slices.Clone(e.def.Dims), Boundary: boundaryName(e.def.Periodic),
		BlockedCells: len(e.def.Cells), Points: pts, Created: e.created, Persisted: s.persisted,
	}
	if len(e.def.Cells) > 0 || e.def.Random != nil {
		in.Blocked = &BlockedSet{}
		if withCells && len(e.def.Cells) > 0 {
			in.Blocked.Cells = e.def.Cells
		}
		if r := e.def.Random; r != nil {
			in.Blocked.Random = &RandomJSON{Density: r.Density, Seed: r.Seed}
		}
		if in.Blocked.Cells == nil && in.Blocked.Random == nil {
			in.Blocked = nil
		}
	}
	return in
}

// Create validates d against the caller's plan and stores it in the
// caller's tenant.
func (s *Service) Create(ctx context.Context, name string, d Def) (Info, error) {
	c := s.caller(ctx)
	lim := s.limitsFor(c)
	tenant, err := s.tenantFor(c)
	if err != nil {
		return Info{}, err
	}
	if lim.MaxLattices == 0 {
		return Info{}, errorf(CodeTooManyLattices, "storing lattices is turned off (lattice.max_lattices = 0); pass the lattice inline instead")
	}
	if _, err := checkPlan(d, lim.Limits); err != nil {
		return Info{}, s.engineErr(context.Background(), err, lim)
	}
	spec, err := encodeSpec(d, nil)
	if err != nil {
		return Info{}, wrapErr(CodeInternal, err, "internal error: %v", err)
	}
	// Counting and inserting under one lock makes the limit exact within
	// a gateway; gateways sharing a store may pass it by a create or two
	// racing each other.
	s.createMu.Lock()
	defer s.createMu.Unlock()
	n, err := s.store.CountLattices(ctx, tenant)
	if err != nil {
		return Info{}, s.storeErr(ctx, err, "counting lattices")
	}
	if n >= lim.MaxLattices {
		return Info{}, errorf(CodeTooManyLattices, "%d lattices are stored, the limit (lattice.max_lattices); delete some first", n)
	}
	row := &store.Lattice{ID: newID(), TenantID: tenant, Name: name, Spec: spec}
	for range 3 {
		err = s.store.CreateLattice(ctx, row)
		if !errors.Is(err, store.ErrConflict) {
			break
		}
		row.ID = newID() // taken (by any tenant): draw again
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Info{}, wrapErr(CodeStoreWrite, err, "the lattice could not be stored: tenant %s does not exist in the store", tenant)
	case err != nil && ctx.Err() != nil:
		return Info{}, wrapErr(CodeCanceled, err, "storing the lattice was canceled: %v", err)
	case err != nil:
		s.log.Error("storing a lattice failed", "tenant", tenant, "err", err.Error())
		return Info{}, wrapErr(CodeStoreWrite, err, "the lattice could not be stored: %v", err)
	}
	return s.info(&stored{id: row.ID, name: name, def: d, created: row.CreatedAt.UTC().Truncate(time.Millisecond)}, true), nil
}

// Get returns the caller's stored lattice with its full definition.
func (s *Service) Get(ctx context.Context, id string) (Info, error) {
	e, err := s.lookup(ctx, id, "get")
	if err != nil {
		return Info{}, err
	}
	return s.info(e, true), nil
}

// List returns the caller's stored lattices, oldest first, without
// explicit cells.
func (s *Service) List(ctx context.Context) ([]Info, error) {
	tenant, err := s.tenantFor(s.caller(ctx))
	if err != nil {
		return nil, err
	}
	rows, err := s.store.ListLattices(ctx, tenant)
	if err != nil {
		return nil, s.storeErr(ctx, err, "listing lattices")
	}
	out := make([]Info, 0, len(rows))
	for i := range rows {
		e, err := s.decodeRow(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, s.info(e, false))
	}
	return out, nil
}

// Delete removes the caller's stored lattice.
func (s *Service) Delete(ctx context.Context, id string) error {
	c := s.caller(ctx)
	tenant, err := s.tenantFor(c)
	if err != nil {
		return err
	}
	if !validID(id) {
		return errorf(CodeInvalidID, "%q is not a lattice id (they look like lat_ followed by 16 hex digits)", truncate(id, 40))
	}
	err = s.store.DeleteLattice(ctx, tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.auditNotFound(ctx, c, "delete", id)
		return errorf(CodeNotFound, "no lattice with id %s", id)
	case err != nil && ctx.Err() != nil:
		return wrapErr(CodeCanceled, err, "deleting lattice %s was canceled: %v", id, err)
	case err != nil:
		s.log.Error("deleting a lattice failed", "id", id, "tenant", tenant, "err", err.Error())
		return wrapErr(CodeStoreWrite, err, "lattice %s could not be deleted: %v", id, err)
	}
	return nil
}

// PathRequest asks for a shortest path.
type PathRequest struct {
	From, To   []int64
	Catalytic  bool
	Algorithm  string
	LengthOnly bool
}

// PathResult is the answer of Path.
type PathResult struct {
	LatticeID   string     `json:"lattice_id,omitempty"`
	Reachable   bool       `json:"reachable"`
	Length      int64      `json:"length"`
	Path        [][]int64  `json:"path,omitempty"`
	PathOmitted string     `json:"path_omitted,omitempty"`
	Algorithm   string     `json:"algorithm"`
	Visited     int64      `json:"visited"`
	DurationMS  float64    `json:"duration_ms"`
	Memory      MemoryJSON `json:"memory"`
}

// MemoryJSON is the memory account of a search.
type MemoryJSON struct {
	CleanBytes                   int64   `json:"clean_bytes"`
	BorrowedBytes                int64   `json:"borrowed_bytes"`
	ExplicitAdjacencyBytes       float64 `json:"explicit_adjacency_bytes"`
	ExplicitAdjacencyMatrixBytes float64 `json:"explicit_adjacency_matrix_bytes"`
	ExplicitExact                bool    `json:"explicit_exact"`
	AccountedPeakBytes           int64   `json:"accounted_peak_bytes"`
	ScratchBytes                 int64   `json:"scratch_bytes"`
	BudgetBytes                  int64   `json:"budget_bytes"`
	Catalytic                    bool    `json:"catalytic"`
	CatalyticNote                string  `json:"catalytic_note,omitempty"`
	ReductionVsAdjacencyList     float64 `json:"reduction_vs_adjacency_list"`
}

// acquire takes a search slot within ctx.
func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) release() { <-s.sem }

// Path finds a shortest path on t's lattice (a stored one of the caller's
// tenant, or an inline one) within the caller's operation timeout.
func (s *Service) Path(ctx context.Context, t Target, r PathRequest) (PathResult, error) {
	lim := s.limitsFor(s.caller(ctx))
	l, err := s.resolve(ctx, t, "path", lim)
	if err != nil {
		return PathResult{}, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, lim.OperationTimeout)
	defer cancel()
	if err := s.acquire(ctx); err != nil {
		return PathResult{}, s.engineErr(parent, err, lim)
	}
	defer s.release()
	opts := lattice.PathOptions{Algorithm: r.Algorithm, LengthOnly: r.LengthOnly}
	if r.Catalytic {
		select {
		case s.regionMu <- struct{}{}:
		case <-ctx.Done():
			return PathResult{}, s.engineErr(parent, ctx.Err(), lim)
		}
		defer func() { <-s.regionMu }()
		if s.region == nil {
			s.region = lattice.SyntheticRegion(s.regionBytes)
		}
		opts.Catalytic, opts.Borrow = true, s.region
	}
	res, err := l.ShortestPath(ctx, r.From, r.To, opts)
	if err != nil {
		return PathResult{}, s.engineErr(parent, err, lim)
	}
	m := res.Memory
	out := PathResult{
		LatticeID: t.ID, Reachable: res.Reachable, Length: res.Length, Path: res.Path, PathOmitted: res.PathOmitted,
		Algorithm: res.Algorithm, Visited: res.Visited, DurationMS: float64(res.Duration.Microseconds()) / 1000,
		Memory: MemoryJSON{
			CleanBytes: m.CleanBytes, BorrowedBytes: m.BorrowedBytes,
			ExplicitAdjacencyBytes: m.Explicit.ListBytes, ExplicitAdjacencyMatrixBytes: m.Explicit.MatrixBytes,
			ExplicitExact: m.Explicit.Exact, AccountedPeakBytes: m.AccountedPeakBytes, ScratchBytes: m.ScratchBytes,
			BudgetBytes: m.BudgetBytes, Catalytic: m.Catalytic, CatalyticNote: m.CatalyticNote,
			ReductionVsAdjacencyList: m.ReductionVsAdjacencyList,
		},
	}
	switch {
	case r.LengthOnly && out.Reachable:
		out.PathOmitted = "length_only was set"
	case strings.Contains(out.PathOmitted, "longer than the limit"):
		out.PathOmitted += " (lattice.max_path_points)"
	}
	return out, nil
}

// TransformSpec describes a transform (see the Transform schema).
type TransformSpec struct {
	Kind         string // rotate, reflect, translate, permute, xor, compose
	Plane        [2]int
	QuarterTurns int
	Axis         int
	Offset       []int64
	Order        []int
	Mask         []int64
	Steps        []TransformSpec
}

func buildTransform(l *lattice.Lattice, ts TransformSpec) (lattice.Transform, error) {
	switch ts.Kind {
	case "rotate":
		return l.Rotation(ts.Plane[0], ts.Plane[1], ts.QuarterTurns)
	case "reflect":
		return l.Reflection(ts.Axis)
	case "translate":
		return l.Translation(ts.Offset)
	case "permute":
		return l.AxisPermutation(ts.Order)
	case "xor":
		return l.XORMask(ts.Mask)
	case "compose":
		steps := make([]lattice.Transform, 0, len(ts.Steps))
		for i, st := range ts.Steps {
			t, err := buildTransform(l, st)
			if err != nil {
				return nil, fmt.Errorf("step %d: %w", i, err)
			}
			steps = append(steps, t)
		}
		return lattice.Compose(steps...), nil
	}
	return nil, fmt.Errorf("%w: unknown kind %q", lattice.ErrTransform, ts.Kind)
}

// TransformResult is the answer of Transform.
type TransformResult struct {
	LatticeID    string    `json:"lattice_id,omitempty"`
	Points       [][]int64 `json:"points"`
	Transform    string    `json:"transform"`
	Inverse      string    `json:"inverse"`
	InverseCheck bool      `json:"inverse_check"`
}

// Transform applies ts to points on t's lattice and checks that its inverse
// gives the points back.
func (s *Service) Transform(ctx context.Context, t Target, points [][]int64, ts TransformSpec) (TransformResult, error) {
	lim := s.limitsFor(s.caller(ctx))
	if len(points) > lim.MaxPathPoints {
		return TransformResult{}, errorf(CodeTooManyInRequest, "%d points; at most %d may be transformed at once (lattice.max_path_points)", len(points), lim.MaxPathPoints)
	}
	l, err := s.resolve(ctx, t, "transform", lim)
	if err != nil {
		return TransformResult{}, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, lim.OperationTimeout)
	defer cancel()
	tr, err := buildTransform(l, ts)
	if err != nil {
		return TransformResult{}, s.engineErr(parent, err, lim)
	}
	work := make([][]int64, len(points))
	for i, p := range points {
		work[i] = slices.Clone(p)
	}
	if err := tr.Apply(work); err != nil {
		return TransformResult{}, s.engineErr(parent, err, lim)
	}
	if err := ctx.Err(); err != nil {
		return TransformResult{}, s.engineErr(parent, err, lim)
	}
	check := lattice.CheckInverse(tr, points) == nil
	if !check {
		s.log.Error("lattice transform failed its inverse check", "transform", tr.String())
	}
	return TransformResult{LatticeID: t.ID, Points: work, Transform: tr.String(), Inverse: tr.Inverse().String(), InverseCheck: check}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
