package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/store"
)

// QueueReader reads the offline queue for GET /api/queue…; *queue.Queue
// implements it.
type QueueReader interface {
	// Get returns an entry with its result; tenant "" reads any tenant's
	// entry, so the handler checks the tenant itself.
	Get(ctx context.Context, tenant, id string) (*queue.Entry, error)
	List(ctx context.Context, f queue.Filter) ([]queue.Entry, error)
}

// Queue listing bounds.
const (
	DefaultQueueLimit = 100
	MaxQueueLimit     = 1000
	// maxQueueIDLen bounds an entry id in a path; queue ids are 27
	// characters.
	maxQueueIDLen = 64
)

// QueueURIPrefix starts a queued call's resource URI on /mcp (the
// gateway's QueueURIPrefix); answers carry the URI so a REST client can
// hand it to an MCP client.
const QueueURIPrefix = "mcpedge://queue/"

// QueuedCall is a queued call as the REST API shows it: never its
// arguments (the caller sent them) nor its idempotency key; its result
// only from GET /api/queue/{id}.
type QueuedCall struct {
	ID          string     `json:"id"`
	URI         string     `json:"uri"`
	State       string     `json:"state"`
	Target      string     `json:"target"`
	Tool        string     `json:"tool"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	Result      any        `json:"result,omitempty"`
	Size        int64      `json:"size"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	DoneAt      *time.Time `json:"done_at,omitempty"`
}

func queuedCall(e *queue.Entry) QueuedCall {
	c := QueuedCall{ID: e.ID, URI: QueueURIPrefix + e.ID, State: string(e.State), Target: e.Target, Tool: e.Tool,
		Attempts: e.Attempts, LastError: e.LastError, Size: e.Size, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if len(e.Result) > 0 {
		c.Result = jsonRaw(e.Result)
	}
	if !e.NextAttempt.IsZero() {
		t := e.NextAttempt
		c.NextAttempt = &t
	}
	if !e.DoneAt.IsZero() {
		t := e.DoneAt
		c.DoneAt = &t
	}
	return c
}

// jsonRaw is a stored JSON result written as is.
type jsonRaw []byte

func (j jsonRaw) MarshalJSON() ([]byte, error) { return j, nil }

// ValidQueueID reports whether s can be a queue entry id: 1 to 64 ASCII
// letters, digits, '-' or '_'. Anything else is refused before the queue
// is asked.
func ValidQueueID(s string) bool {
	if s == "" || len(s) > maxQueueIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// queueCaller returns the tenant whose queued calls the caller may read:
// anyone who may list tools (viewers and up; mcp:list or mcp:call for a
// scoped credential), like reading lattices. The tenant is the
// principal's, never a parameter: operators too see only their own
// tenant's calls here (the whole queue is `mcpedge queue ls` on the
// gateway's machine). The anonymous principal of single-user mode reads
// tenant "": that is the tenant its calls are queued under on /mcp, where
// single-user mode has no tenant.
func (h *handler) queueCaller(r *http.Request) (tenant string, err error) {
	p := principal.From(r.Context())
	if !p.CanList() {
		return "", errorf(CodeForbidden, "reading queued calls needs the viewer role or stronger and, for a credential limited to scopes, %s or %s", principal.ScopeList, principal.ScopeCall)
	}
	if h.queue == nil {
		return "", errorf(CodeUnavailable, "the offline queue is not open on this gateway ([queue] enabled = false, or it could not be opened: see the gateway's log and /readyz)")
	}
	if p.Kind == principal.KindAnonymous {
		return "", nil
	}
	return p.TenantID, nil
}

func queueErr(err error, id string) error {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return errorf(CodeNotFound, "no queued call %q", id)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return AsError(err)
	}
	return &Error{Code: CodeUnavailable, Message: "the offline queue could not be read; see the gateway's log", Err: err}
}

// getQueued answers GET /api/queue/{id}: the caller's tenant's entry with
// its result; another tenant's id answers 404 exactly like a missing one.
func (h *handler) getQueued(w http.ResponseWriter, r *http.Request) error {
	tenant, err := h.queueCaller(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !ValidQueueID(id) {
		return invalid("%q is not a queued call id (ids are like q2al…: letters, digits, '-' and '_', at most %d)", clip(id), maxQueueIDLen)
	}
	if len(r.URL.Query()) > 0 {
		return invalid("GET /api/queue/{id} takes no query parameters")
	}
	e, err := h.queue.Get(r.Context(), tenant, id)
	if err != nil {
		return queueErr(err, id)
	}
	writeJSON(w, http.StatusOK, queuedCall(e))
	return nil
}

var queueQueryParams = []string{"state", "target", "after", "limit"}

// listQueued answers GET /api/queue: the caller's tenant's entries, oldest
// first, without results.
func (h *handler) listQueued(w http.ResponseWriter, r *http.Request) error {
	tenant, err := h.queueCaller(r)
	if err != nil {
		return err
	}
	qv := r.URL.Query()
	for k, vs := range qv {
		if !slices.Contains(queueQueryParams, k) {
			return invalid("unknown query parameter %q; use %s", clip(k), strings.Join(queueQueryParams, ", "))
		}
		if len(vs) > 1 {
			return invalid("query parameter %q given %d times; give it once", k, len(vs))
		}
	}
	f := queue.Filter{Tenant: tenant, ExactTenant: true, Target: qv.Get("target"), State: queue.State(qv.Get("state")), After: qv.Get("after")}
	if f.State != "" && !f.State.Valid() {
		return invalid("state must be pending, delivering, done or failed, got %q", clip(string(f.State)))
	}
	if f.After != "" && !ValidQueueID(f.After) {
		return invalid("after must be a queued call id (next_after of the previous page), got %q", clip(f.After))
	}
	if len(f.Target) > 256 {
		return invalid("target is longer than 256 bytes")
	}
	limit, err := queryInt(qv, "limit")
	if err != nil {
		return err
	}
	switch {
	case limit == 0:
		f.Limit = DefaultQueueLimit
	default:
		f.Limit = int(min(limit, MaxQueueLimit))
	}
	es, err := h.queue.List(r.Context(), f)
	if err != nil {
		return queueErr(err, "")
	}
	out := make([]QueuedCall, 0, len(es))
	for i := range es {
		out = append(out, queuedCall(&es[i]))
	}
	next := f.After
	if len(es) > 0 {
		next = es[len(es)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "next_after": next})
	return nil
}

// QueueWriter changes queued calls for POST /api/queue/{id}/retry and
// DELETE /api/queue/{id}; *queue.Queue implements it. A QueueReader that
// is not one answers those endpoints 503.
type QueueWriter interface {
	Retry(ctx context.Context, id string) error
	Purge(ctx context.Context, id string) error
}

// queueChange is a retry or purge of one of the caller's tenant's queued
// calls: it needs the admin role (admin:write for a scoped credential),
// the call must be the caller's tenant's (another tenant's id answers 404
// like a missing one), and it is audited as action.
func (h *handler) queueChange(w http.ResponseWriter, r *http.Request, action string, do func(QueueWriter, string) error) error {
	p := principal.From(r.Context())
	if !p.Can(principal.RoleAdmin, principal.ScopeAdminWrite) {
		return errorf(CodeForbidden, "retrying or purging queued calls needs the admin role or stronger and, for a credential limited to scopes, %s", principal.ScopeAdminWrite)
	}
	tenant, err := h.queueCaller(r)
	if err != nil {
		return err
	}
	qw, ok := h.queue.(QueueWriter)
	if !ok {
		return errorf(CodeUnavailable, "this gateway's offline queue can not be changed over the API")
	}
	id := r.PathValue("id")
	if !ValidQueueID(id) {
		return invalid("%q is not a queued call id (ids are like q2al…: letters, digits, '-' and '_', at most %d)", clip(id), maxQueueIDLen)
	}
	if len(r.URL.Query()) > 0 {
		return invalid("%s %s takes no query parameters", r.Method, r.URL.Path)
	}
	e, err := h.queue.Get(r.Context(), tenant, id)
	if err != nil {
		return queueErr(err, id)
	}
	err = do(qw, id)
	outcome := OutcomeOK
	switch {
	case errors.Is(err, queue.ErrState):
		outcome = OutcomeError
		err = errorf(CodeConflict, "%s", strings.TrimPrefix(err.Error(), queue.ErrState.Error()+": "))
	case err != nil:
		outcome = OutcomeError
		err = queueErr(err, id)
	}
	if h.ops.audit != nil {
		ae := &store.AuditEntry{
			Time: h.ops.now().UTC(), TenantID: p.TenantID, Actor: p.ID, ActorKind: p.Kind,
			Action: action, Target: "queue:" + id, Outcome: outcome, ClientIP: h.clientIP(r),
		}
		ae.Detail, _ = json.Marshal(map[string]any{"tool": e.Tool, "target": e.Target, "state": string(e.State)})
		h.ops.audit.Record(context.WithoutCancel(r.Context()), ae)
	}
	if err != nil {
		return err
	}
	if action == "queue.purge" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	e, err = h.queue.Get(r.Context(), tenant, id)
	if err != nil {
		return queueErr(err, id)
	}
	writeJSON(w, http.StatusOK, queuedCall(e))
	return nil
}

// retryQueued answers POST /api/queue/{id}/retry: a failed or pending
// call goes back in line, due now, its attempts reset.
func (h *handler) retryQueued(w http.ResponseWriter, r *http.Request) error {
	return h.queueChange(w, r, "queue.retry", func(q QueueWriter, id string) error { return q.Retry(r.Context(), id) })
}

// purgeQueued answers DELETE /api/queue/{id}: the call is removed in any
// state (one being delivered finishes, its result dropped).
func (h *handler) purgeQueued(w http.ResponseWriter, r *http.Request) error {
	return h.queueChange(w, r, "queue.purge", func(q QueueWriter, id string) error { return q.Purge(r.Context(), id) })
}
