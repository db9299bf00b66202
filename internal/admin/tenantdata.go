package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/tenantexport"
)

// Audit actions of tenant export and erasure.
const (
	ActionTenantExport = "tenant.export"
	ActionTenantErase  = audit.ActionTenantErase
)

// TenantQueue is the offline queue's part in a tenant's export and
// erasure; *queue.Queue implements it. Each process reaches only its own
// queue file: entries queued by other replicas are sealed with the
// tenant's data key, which erasure destroys (docs/design/erasure.md).
type TenantQueue interface {
	// ExportQueue calls emit for each of the tenant's entries, with its
	// arguments and result.
	ExportQueue(ctx context.Context, tenantID string, emit func(row any) error) error
	// PurgeTenant removes every entry of the tenant and returns how many.
	PurgeTenant(ctx context.Context, tenantID string) (int, error)
}

// ExportTenant writes the archive of everything the gateway holds about
// the tenant ref (id or name) to w (package tenantexport) and returns its
// manifest. Operator admins export any tenant; a tenant's own admins and
// owners export only their tenant: naming any other, whether it exists or
// not, is refused with 403. The export needs admin:read and is always
// audited (tenant.export, with what it held), as it discloses the
// tenant's data. start, if set, is called with the tenant once the
// caller is allowed and before the first byte is written (the REST API
// sets its headers there).
func (o *Ops) ExportTenant(ctx context.Context, ref string, w io.Writer, start func(*store.Tenant)) (m *tenantexport.Manifest, err error) {
	c := o.begin(ctx, ActionTenantExport)
	defer c.end(&err)
	if err := c.authenticated(); err != nil {
		return nil, err
	}
	c.target = "tenant:" + clip(ref)
	var t *store.Tenant
	if operatorAdmin(c.p) {
		if t, err = c.tenant(ref, read); err != nil {
			return nil, o.erasedErr(ctx, ref, err)
		}
	} else {
		own, err := o.st.GetTenant(ctx, c.p.TenantID)
		if err != nil {
			return nil, storeErr(err, "your tenant")
		}
		if ref != own.ID && ref != own.Name {
			return nil, c.forbid("you may export only your own tenant (%s)", own.Name)
		}
		c.tenantID = own.ID
		if err := c.need(read); err != nil {
			return nil, err
		}
		t = own
	}
	c.tenantID, c.target = t.ID, "tenant:"+t.ID
	if !c.p.AtLeast(principal.RoleAdmin) {
		return nil, c.forbid("exporting a tenant needs the admin role or stronger (you are %s)", c.p.Role)
	}
	// Include what this process recorded and counted so far.
	if err := o.flushAudit(ctx); err != nil {
		o.log.Warn("export: writing this process's audit entries first", "err", err)
	}
	if o.flushUsage != nil {
		if err := o.flushUsage(ctx); err != nil {
			o.log.Warn("export: flushing this replica's usage counts", "err", err)
		}
	}
	if start != nil {
		start(t)
	}
	opts := tenantexport.Options{Now: o.now}
	if o.tenantQueue != nil {
		opts.Queue, opts.QueueName = o.tenantQueue, "the offline queue of the exporting process"
	}
	m, err = tenantexport.Write(ctx, w, o.st, t, opts)
	if err != nil {
		c.detail["stopped"] = err.Error()
		if ctx.Err() != nil {
			return nil, errorf(CodeUnavailable, "export of tenant %s stopped: %v", t.Name, context.Cause(ctx))
		}
		return nil, err
	}
	records := map[string]int64{}
	for _, f := range m.Files {
		if f.Records > 0 {
			records[f.Name] = f.Records
		}
	}
	c.detail["name"], c.detail["records"] = t.Name, records
	return m, nil
}

// flushAudit waits until the audit entries this process recorded are in
// the store (when the Recorder can say: *audit.Logger).
func (o *Ops) flushAudit(ctx context.Context) error {
	if f, ok := o.audit.(interface{ Flush(context.Context) error }); ok {
		return f.Flush(ctx)
	}
	return nil
}

// erasedErr turns "not found" for a tenant that was erased into a
// message that says so (still 404).
func (o *Ops) erasedErr(ctx context.Context, ref string, err error) error {
	if !IsCode(err, CodeNotFound) {
		return err
	}
	if er, gerr := o.st.GetErasure(ctx, ref); gerr == nil {
		return &Error{Code: CodeNotFound, Message: "tenant " + quote(er.Name) + " was erased at " + er.ErasedAt.Format(time.RFC3339), Err: store.ErrErased}
	}
	return err
}

// EraseTenant removes the tenant ref and everything it owns, as
// DeleteTenant does, and also erases the personal fields of its audit
// entries and destroys its data key (docs/design/erasure.md). Operator
// admins only; never the caller's own tenant nor the last operator
// tenant. The erasure and its audit entry (tenant.erase) commit together
// in the store; then this process's offline queue loses the tenant's
// entries (other replicas' entries can no longer be opened). A tenant
// erased before: 404 saying when.
func (o *Ops) EraseTenant(ctx context.Context, ref string) (er *store.Erasure, err error) {
	c := o.begin(ctx, ActionTenantErase)
	defer c.end(&err)
	t, err := c.tenant(ref, write)
	if err != nil {
		return nil, o.erasedErr(ctx, ref, err)
	}
	c.target = "tenant:" + t.ID
	c.detail["name"] = t.Name
	if !operatorAdmin(c.p) {
		return nil, c.forbid("only administrators of an operator tenant may erase tenants")
	}
	if t.ID == c.p.TenantID {
		return nil, errorf(CodeConflict, "you can not erase the tenant you are signed in with")
	}
	if last, err := o.lastOperator(ctx, t); err != nil {
		return nil, err
	} else if last {
		return nil, errLastOperator(t.Name)
	}
	// Entries this process recorded about the tenant must be in the
	// store before it erases them.
	if err := o.flushAudit(ctx); err != nil {
		return nil, errorf(CodeUnavailable, "writing the audit log before the erasure: %v", err)
	}
	rec := &store.AuditEntry{
		Time: o.now().UTC().Truncate(time.Microsecond), TenantID: t.ID, Actor: c.p.ID, ActorKind: c.p.Kind,
		Action: ActionTenantErase, Target: c.target, Outcome: OutcomeOK, ClientIP: ClientIPFrom(c.ctx),
		Detail: []byte(`{"name":` + jsonString(t.Name) + `}`), PIISalt: audit.NewPIISalt(),
	}
	if rec.ActorKind == "" {
		rec.ActorKind = principal.KindAnonymous
	}
	er, err = o.st.EraseTenant(context.WithoutCancel(ctx), t.ID, rec, audit.Seal)
	if err != nil {
		return nil, o.erasedErr(ctx, ref, storeErr(err, "tenant \""+clip(ref)+"\""))
	}
	c.credsAudit = true // the store appended the entry with the erasure
	if o.tenantQueue != nil {
		n, qerr := o.tenantQueue.PurgeTenant(context.WithoutCancel(ctx), t.ID)
		if qerr != nil {
			o.log.Warn("erasure: removing the tenant's offline-queue entries failed (they can no longer be opened: the tenant's key is destroyed)", "tenant", t.Name, "err", qerr)
		}
		er.Rows["queue_entries"] = int64(n)
	}
	return er, nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

func quote(s string) string { return strconv.Quote(clip(s)) }

// exportTenant streams the archive. Errors before its first byte are the
// usual JSON errors; one after it (the store failed halfway) aborts the
// response, so the client gets a truncated archive that
// tenantexport.Check refuses, never one that looks whole.
func (h *handler) exportTenant(w http.ResponseWriter, r *http.Request) error {
	started := false
	_, err := h.ops.ExportTenant(r.Context(), r.PathValue("tenant"), w, func(t *store.Tenant) {
		started = true
		hd := w.Header()
		hd.Set("Content-Type", "application/zip")
		hd.Set("Content-Disposition", `attachment; filename="`+ExportFileName(t.Name, h.ops.now())+`"`)
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
	})
	if err != nil && started {
		panic(http.ErrAbortHandler)
	}
	return err
}

// ExportFileName is the archive's suggested file name:
// mcpedge-export-NAME-YYYYMMDDTHHMMSSZ.zip.
func ExportFileName(tenant string, now time.Time) string {
	return "mcpedge-export-" + tenant + "-" + now.UTC().Format("20060102T150405Z") + ".zip"
}
