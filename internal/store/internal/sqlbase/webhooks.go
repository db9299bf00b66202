package sqlbase

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Webhooks: tables webhook_endpoints, webhook_deliveries and
// webhook_attempts (migration 0009).
//
// A claim is a compare-and-set per delivery (UPDATE … WHERE the lease is
// still free), not a lock held across the attempt: on SQLite the write
// lock serializes claims, on PostgreSQL the UPDATE re-reads the row after
// waiting for a concurrent claimer, so of two processes claiming the same
// row exactly one changes it.

const endpointCols = `id, tenant_id, url, description, events, all_tenants, disabled, secrets, created_at, updated_at`

func scanEndpoint(r Row) (*store.WebhookEndpoint, error) {
	var e store.WebhookEndpoint
	if err := r.Scan(&e.ID, &e.TenantID, &e.URL, &e.Description, listCol{&e.Events}, &e.AllTenants, &e.Disabled, &e.Secrets,
		timeCol{&e.CreatedAt}, timeCol{&e.UpdatedAt}); err != nil {
		return nil, err
	}
	return &e, nil
}

func checkEndpoint(e *store.WebhookEndpoint) error {
	switch {
	case e.TenantID == "":
		return invalid("webhook endpoint: tenant must not be empty")
	case e.URL == "":
		return invalid("webhook endpoint: url must not be empty")
	case len(e.Secrets) == 0:
		return invalid("webhook endpoint: secrets must not be empty")
	}
	return nil
}

func (s *Store) CreateWebhookEndpoint(ctx context.Context, e *store.WebhookEndpoint) (err error) {
	defer wrap(&err, "creating webhook endpoint")
	if err := checkEndpoint(e); err != nil {
		return err
	}
	id, now := e.ID, s.now()
	if id == "" {
		id = store.NewID()
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO webhook_endpoints (`+endpointCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, e.TenantID, e.URL, e.Description, jsonList(e.Events), e.AllTenants, e.Disabled, e.Secrets, now, now)
		return err
	})
	switch {
	case s.e.IsUnique(err):
		return conflict("webhook endpoint " + quote(id))
	case s.e.IsForeignKey(err):
		return notFound("tenant", e.TenantID)
	case err != nil:
		return err
	}
	e.ID, e.CreatedAt, e.UpdatedAt = id, now, now
	if e.Events == nil {
		e.Events = []string{}
	}
	return nil
}

func (s *Store) GetWebhookEndpoint(ctx context.Context, tenantID, id string) (_ *store.WebhookEndpoint, err error) {
	defer wrap(&err, "getting webhook endpoint")
	q, args := `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = ?`, []any{id}
	if tenantID != "" {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	e, err := scanEndpoint(s.e.QueryRow(ctx, q, args...))
	if isNoRows(err) {
		return nil, notFound("webhook endpoint", id)
	}
	return e, err
}

func (s *Store) ListWebhookEndpoints(ctx context.Context, tenantID string) (_ []store.WebhookEndpoint, err error) {
	defer wrap(&err, "listing webhook endpoints")
	if tenantID == "" {
		return collect(ctx, s.e, scanEndpoint, `SELECT `+endpointCols+` FROM webhook_endpoints ORDER BY created_at, id`)
	}
	return collect(ctx, s.e, scanEndpoint, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
}

func (s *Store) UpdateWebhookEndpoint(ctx context.Context, e *store.WebhookEndpoint) (err error) {
	defer wrap(&err, "updating webhook endpoint")
	if err := checkEndpoint(e); err != nil {
		return err
	}
	now := s.now()
	var n int64
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `UPDATE webhook_endpoints SET url = ?, description = ?, events = ?, all_tenants = ?, disabled = ?, secrets = ?, updated_at = ? WHERE id = ? AND tenant_id = ?`,
			e.URL, e.Description, jsonList(e.Events), e.AllTenants, e.Disabled, e.Secrets, now, e.ID, e.TenantID)
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("webhook endpoint", e.ID)
	}
	e.UpdatedAt = now
	return nil
}

func (s *Store) DeleteWebhookEndpoint(ctx context.Context, tenantID, id string) (err error) {
	defer wrap(&err, "deleting webhook endpoint")
	var n int64
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = ? AND tenant_id = ?`, id, tenantID)
		return err
	})
	if err == nil && n == 0 {
		return notFound("webhook endpoint", id)
	}
	return err
}

const deliveryCols = `id, endpoint_id, tenant_id, event_id, event_type, state, attempts, next_at, lease_owner, lease_until, last_status, last_error, last_attempt_at, created_at, done_at`

func scanDelivery(r Row, payload bool) (*store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	dest := []any{&d.ID, &d.EndpointID, &d.TenantID, &d.EventID, &d.EventType, &d.State, &d.Attempts, timeCol{&d.NextAt}, &d.LeaseOwner,
		timeCol{&d.LeaseUntil}, &d.LastStatus, &d.LastError, timeCol{&d.LastAttemptAt}, timeCol{&d.CreatedAt}, timeCol{&d.DoneAt}}
	if payload {
		dest = append(dest, &d.Payload)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	return &d, nil
}

func (s *Store) EnqueueWebhookDeliveries(ctx context.Context, ds []store.WebhookDelivery) (_ []store.WebhookDelivery, err error) {
	defer wrap(&err, "enqueueing %d webhook deliveries", len(ds))
	for _, d := range ds {
		if d.EndpointID == "" || d.EventID == "" || d.EventType == "" || len(d.Payload) == 0 {
			return nil, invalid("webhook delivery: endpoint, event id, event type and payload must be set")
		}
	}
	var out []store.WebhookDelivery
	err = s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
		out = out[:0]
		now := s.now()
		for _, d := range ds {
			id := store.NewID()
			next := ts(d.NextAt)
			if next.IsZero() {
				next = now
			}
			// The endpoint's tenant is copied from its row, which also
			// skips an endpoint deleted meanwhile.
			n, err := q.Exec(ctx, `INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_id, event_type, payload, state, attempts, next_at, lease_owner, last_status, last_error, created_at)
				SELECT ?, id, tenant_id, ?, ?, ?, ?, 0, ?, '', 0, '', ? FROM webhook_endpoints WHERE id = ?
				ON CONFLICT (endpoint_id, event_id) DO NOTHING`,
				id, d.EventID, d.EventType, d.Payload, store.DeliveryPending, next, now, d.EndpointID)
			if err != nil {
				return err
			}
			if n == 1 {
				nd := d
				nd.ID, nd.State, nd.Attempts, nd.NextAt, nd.CreatedAt = id, store.DeliveryPending, 0, next, now
				nd.LeaseOwner, nd.LeaseUntil, nd.LastStatus, nd.LastError, nd.LastAttemptAt, nd.DoneAt = "", time.Time{}, 0, "", time.Time{}, time.Time{}
				if err := q.QueryRow(ctx, `SELECT tenant_id FROM webhook_deliveries WHERE id = ?`, id).Scan(&nd.TenantID); err != nil {
					return err
				}
				out = append(out, nd)
			}
		}
		return nil
	})
	return out, err
}

func (s *Store) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) (_ []store.WebhookDelivery, err error) {
	defer wrap(&err, "claiming webhook deliveries")
	switch {
	case owner == "":
		return nil, invalid("claim: owner must not be empty")
	case lease <= 0:
		return nil, invalid("claim: lease must be positive")
	case limit <= 0:
		return nil, invalid("claim: limit must be positive")
	}
	now = ts(now)
	until := now.Add(lease)
	cands, err := collect(ctx, s.e, func(r Row) (*string, error) {
		var id string
		return &id, r.Scan(&id)
	}, `SELECT id FROM webhook_deliveries WHERE state = ? AND next_at <= ? AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at, id LIMIT ?`,
		store.DeliveryPending, now, now, limit)
	if err != nil {
		return nil, err
	}
	var out []store.WebhookDelivery
	for _, id := range cands {
		var d *store.WebhookDelivery
		err := s.e.Tx(ctx, TxOptions{}, func(q Q) error {
			d = nil
			n, err := q.Exec(ctx, `UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ? AND state = ? AND next_at <= ? AND (lease_until IS NULL OR lease_until <= ?)`,
				owner, until, id, store.DeliveryPending, now, now)
			if err != nil || n == 0 {
				return err
			}
			d, err = scanDelivery(q.QueryRow(ctx, `SELECT `+deliveryCols+`, payload FROM webhook_deliveries WHERE id = ?`, id), true)
			return err
		})
		if err != nil {
			return out, err
		}
		if d != nil {
			out = append(out, *d)
		}
	}
	return out, nil
}

func (s *Store) ClaimWebhookDelivery(ctx context.Context, id, owner string, now time.Time, lease time.Duration) (_ *store.WebhookDelivery, err error) {
	defer wrap(&err, "claiming webhook delivery %s", id)
	if owner == "" || lease <= 0 {
		return nil, invalid("claim: an owner and a positive lease must be given")
	}
	now = ts(now)
	var d *store.WebhookDelivery
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ? AND state = ? AND (lease_until IS NULL OR lease_until <= ?)`,
			owner, now.Add(lease), id, store.DeliveryPending, now)
		if err != nil {
			return err
		}
		if n == 0 {
			var state string
			err := q.QueryRow(ctx, `SELECT state FROM webhook_deliveries WHERE id = ?`, id).Scan(&state)
			if isNoRows(err) {
				return notFound("webhook delivery", id)
			}
			if err != nil {
				return err
			}
			return conflict("webhook delivery " + quote(id) + " is " + state + " or leased")
		}
		d, err = scanDelivery(q.QueryRow(ctx, `SELECT `+deliveryCols+`, payload FROM webhook_deliveries WHERE id = ?`, id), true)
		return err
	})
	return d, err
}

func (s *Store) FinishWebhookDelivery(ctx context.Context, d *store.WebhookDelivery, a store.WebhookAttempt) (err error) {
	defer wrap(&err, "finishing webhook delivery %s", d.ID)
	switch d.State {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead:
	default:
		return invalid("webhook delivery state %q: want pending, delivered or dead", d.State)
	}
	if d.LeaseOwner == "" || a.N <= 0 {
		return invalid("webhook delivery: a lease owner and an attempt number must be given")
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var owner string
		err := q.QueryRow(ctx, `SELECT lease_owner FROM webhook_deliveries WHERE id = ?`+s.e.ForUpdate(), d.ID).Scan(&owner)
		if isNoRows(err) {
			return notFound("webhook delivery", d.ID)
		}
		if err != nil {
			return err
		}
		if owner != d.LeaseOwner {
			return conflict("webhook delivery " + quote(d.ID) + " is leased to another process")
		}
		if _, err := q.Exec(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = ?, next_at = ?, lease_owner = '', lease_until = NULL, last_status = ?, last_error = ?, last_attempt_at = ?, done_at = ? WHERE id = ?`,
			d.State, a.N, ts(d.NextAt), a.Status, a.Error, ts(a.At), ts(d.DoneAt), d.ID); err != nil {
			return err
		}
		_, err = q.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, n, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (delivery_id, n) DO UPDATE SET at = excluded.at, status = excluded.status, error = excluded.error, duration_ms = excluded.duration_ms`,
			d.ID, a.N, ts(a.At), a.Status, a.Error, a.DurationMS)
		return err
	})
}

func (s *Store) GetWebhookDelivery(ctx context.Context, tenantID, id string) (_ *store.WebhookDelivery, _ []store.WebhookAttempt, err error) {
	defer wrap(&err, "getting webhook delivery")
	q, args := `SELECT `+deliveryCols+`, payload FROM webhook_deliveries WHERE id = ?`, []any{id}
	if tenantID != "" {
		q += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	d, err := scanDelivery(s.e.QueryRow(ctx, q, args...), true)
	if isNoRows(err) {
		return nil, nil, notFound("webhook delivery", id)
	}
	if err != nil {
		return nil, nil, err
	}
	as, err := collect(ctx, s.e, func(r Row) (*store.WebhookAttempt, error) {
		var a store.WebhookAttempt
		return &a, r.Scan(&a.DeliveryID, &a.N, timeCol{&a.At}, &a.Status, &a.Error, &a.DurationMS)
	}, `SELECT delivery_id, n, at, status, error, duration_ms FROM webhook_attempts WHERE delivery_id = ? ORDER BY n`, id)
	return d, as, err
}

func (s *Store) ListWebhookDeliveries(ctx context.Context, f store.WebhookDeliveryFilter) (_ []store.WebhookDelivery, err error) {
	defer wrap(&err, "listing webhook deliveries")
	q, args := `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE 1 = 1`, []any{}
	if f.TenantID != "" {
		q += ` AND tenant_id = ?`
		args = append(args, f.TenantID)
	}
	if f.EndpointID != "" {
		q += ` AND endpoint_id = ?`
		args = append(args, f.EndpointID)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	switch {
	case f.Limit < 0:
		return nil, invalid("limit must not be negative")
	case f.Limit == 0:
		f.Limit = 100
	case f.Limit > 1000:
		f.Limit = 1000
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	return collect(ctx, s.e, func(r Row) (*store.WebhookDelivery, error) { return scanDelivery(r, false) }, q, append(args, f.Limit)...)
}

func (s *Store) RetryWebhookDelivery(ctx context.Context, tenantID, id string, at time.Time) (err error) {
	defer wrap(&err, "retrying webhook delivery")
	if at.IsZero() {
		at = s.now()
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var state string
		sel, args := `SELECT state FROM webhook_deliveries WHERE id = ?`, []any{id}
		if tenantID != "" {
			sel += ` AND tenant_id = ?`
			args = append(args, tenantID)
		}
		err := q.QueryRow(ctx, sel+s.e.ForUpdate(), args...).Scan(&state)
		if isNoRows(err) {
			return notFound("webhook delivery", id)
		}
		if err != nil {
			return err
		}
		if state != store.DeliveryDead {
			return conflict("webhook delivery " + quote(id) + " is " + state + ", not dead")
		}
		_, err = q.Exec(ctx, `UPDATE webhook_deliveries SET state = ?, next_at = ?, done_at = NULL, lease_owner = '', lease_until = NULL WHERE id = ?`,
			store.DeliveryPending, ts(at), id)
		return err
	})
}

func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time) (n int64, err error) {
	defer wrap(&err, "pruning webhook deliveries")
	if before.IsZero() {
		return 0, invalid("prune webhook deliveries: a time must be given")
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		if _, err := q.Exec(ctx, `DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE state <> ? AND done_at < ?)`,
			store.DeliveryPending, ts(before)); err != nil {
			return err
		}
		var err error
		n, err = q.Exec(ctx, `DELETE FROM webhook_deliveries WHERE state <> ? AND done_at < ?`, store.DeliveryPending, ts(before))
		return err
	})
	return n, err
}
