package admin

import (
	"context"
	"errors"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/webhook"
)

// Webhook endpoints and their delivery log (docs/platform.md "Webhooks").
// Endpoints are a tenant's: its admins and owners manage them and read
// their delivery log (an endpoint's URL may carry a token, and the log
// says what happened in the tenant); operator admins manage every
// tenant's. Only an operator tenant's endpoint may take every tenant's
// events (all_tenants).

// WebhookSpec is a new endpoint (POST /api/tenants/{tenant}/webhooks).
type WebhookSpec struct {
	URL         string   `json:"url"`
	Description string   `json:"description,omitempty"`
	Events      []string `json:"events"`
	AllTenants  bool     `json:"all_tenants,omitempty"`
	Disabled    bool     `json:"disabled,omitempty"`
}

// WebhookPatch changes an endpoint; absent fields stay as they are.
type WebhookPatch struct {
	URL         *string   `json:"url,omitempty"`
	Description *string   `json:"description,omitempty"`
	Events      *[]string `json:"events,omitempty"`
	AllTenants  *bool     `json:"all_tenants,omitempty"`
	Disabled    *bool     `json:"disabled,omitempty"`
}

// NewWebhook is an endpoint as created or rotated, with its new secret:
// the only time the secret is shown.
type NewWebhook struct {
	Endpoint *store.WebhookEndpoint `json:"endpoint"`
	Secret   string                 `json:"secret"`
}

// WebhookDeliveryDetail is one delivery with its attempts.
type WebhookDeliveryDetail struct {
	Delivery *store.WebhookDelivery `json:"delivery"`
	Attempts []store.WebhookAttempt `json:"attempts"`
	// Payload is the body sent on every attempt.
	Payload string `json:"payload"`
}

const maxDescription = 256

// MaxWebhooksPerTenant bounds a tenant's endpoints: every event of the
// tenant is one delivery per endpoint.
const MaxWebhooksPerTenant = 20

var errNoWebhooks = &Error{Code: CodeUnavailable, Message: "webhooks are not available here ([webhooks] enabled = false, or the store has no master key)"}

func (c *call) webhookTenant(tenantRef string, acc access) (*store.Tenant, error) {
	if c.o.webhooks == nil {
		return nil, errNoWebhooks
	}
	t, err := c.tenant(tenantRef, acc)
	if err != nil {
		return nil, err
	}
	if !c.p.AtLeast(principal.RoleAdmin) {
		return nil, c.forbid("webhooks need the admin role or stronger (you are %s)", c.p.Role)
	}
	return t, nil
}

func (c *call) checkAllTenants(t *store.Tenant, all bool) error {
	if all && (!t.Operator || !operatorAdmin(c.p)) {
		return invalid("all_tenants is only for an operator tenant's endpoints, set by its administrators")
	}
	return nil
}

func (c *call) endpoint(t *store.Tenant, id string) (*store.WebhookEndpoint, error) {
	c.target = "webhook:" + clip(id)
	e, err := c.o.st.GetWebhookEndpoint(c.ctx, t.ID, id)
	if err != nil {
		return nil, storeErr(err, "webhook endpoint \""+clip(id)+"\"")
	}
	return e, nil
}

// webhookErr turns the webhook service's refusal of the caller's input (a
// url, events) into 400; other errors pass as they are.
func webhookErr(err error) error {
	if errors.Is(err, webhook.ErrInvalid) {
		return invalid("%s", err.Error())
	}
	return err
}

// ListWebhooks lists a tenant's endpoints (without their secrets).
func (o *Ops) ListWebhooks(ctx context.Context, tenantRef string) (_ []store.WebhookEndpoint, err error) {
	c := o.beginRead(ctx, "webhook.list")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	return o.st.ListWebhookEndpoints(ctx, t.ID)
}

// CreateWebhook adds an endpoint and returns it with its signing secret.
func (o *Ops) CreateWebhook(ctx context.Context, tenantRef string, s WebhookSpec) (_ *NewWebhook, err error) {
	c := o.begin(ctx, "webhook.create")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	c.detail["events"], c.detail["all_tenants"] = s.Events, s.AllTenants
	if err := c.checkAllTenants(t, s.AllTenants); err != nil {
		return nil, err
	}
	if len(s.Description) > maxDescription {
		return nil, invalid("description must be at most %d bytes", maxDescription)
	}
	if have, err := o.st.ListWebhookEndpoints(ctx, t.ID); err != nil {
		return nil, err
	} else if len(have) >= MaxWebhooksPerTenant {
		return nil, errorf(CodeConflict, "tenant %s has %d webhook endpoints, the most it may have; remove one first", t.Name, len(have))
	}
	e, secret, err := o.webhooks.Create(ctx, t.ID, webhook.Spec{URL: s.URL, Description: s.Description, Events: s.Events, AllTenants: s.AllTenants, Disabled: s.Disabled})
	if err != nil {
		return nil, webhookErr(storeErr(err, "tenant"))
	}
	c.target = "webhook:" + e.ID
	return &NewWebhook{Endpoint: e, Secret: secret}, nil
}

// UpdateWebhook changes an endpoint.
func (o *Ops) UpdateWebhook(ctx context.Context, tenantRef, id string, p WebhookPatch) (_ *store.WebhookEndpoint, err error) {
	c := o.begin(ctx, "webhook.update")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	e, err := c.endpoint(t, id)
	if err != nil {
		return nil, err
	}
	sp := webhook.Spec{URL: e.URL, Description: e.Description, Events: e.Events, AllTenants: e.AllTenants, Disabled: e.Disabled}
	if p.URL != nil {
		sp.URL = *p.URL
	}
	if p.Description != nil {
		sp.Description = *p.Description
	}
	if p.Events != nil {
		sp.Events = *p.Events
	}
	if p.AllTenants != nil {
		sp.AllTenants = *p.AllTenants
	}
	if p.Disabled != nil {
		sp.Disabled = *p.Disabled
	}
	c.detail["events"], c.detail["all_tenants"], c.detail["disabled"] = sp.Events, sp.AllTenants, sp.Disabled
	if err := c.checkAllTenants(t, sp.AllTenants && !e.AllTenants); err != nil {
		return nil, err
	}
	if len(sp.Description) > maxDescription {
		return nil, invalid("description must be at most %d bytes", maxDescription)
	}
	if err := o.webhooks.Update(ctx, e, sp); err != nil {
		return nil, webhookErr(storeErr(err, "webhook endpoint \""+clip(id)+"\""))
	}
	return e, nil
}

// DeleteWebhook removes an endpoint and its delivery log.
func (o *Ops) DeleteWebhook(ctx context.Context, tenantRef, id string) (err error) {
	c := o.begin(ctx, "webhook.delete")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, write)
	if err != nil {
		return err
	}
	c.target = "webhook:" + clip(id)
	return storeErr(o.st.DeleteWebhookEndpoint(ctx, t.ID, id), "webhook endpoint \""+clip(id)+"\"")
}

// RotateWebhookSecret gives an endpoint a new secret; the old ones keep
// signing for overlap ("" : [webhooks] secret_overlap; "0s": they stop
// at once).
func (o *Ops) RotateWebhookSecret(ctx context.Context, tenantRef, id, overlap string) (_ *NewWebhook, err error) {
	c := o.begin(ctx, "webhook.rotate")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	var d time.Duration
	if overlap != "" {
		if d, err = time.ParseDuration(overlap); err != nil || d < 0 || d > 30*24*time.Hour {
			return nil, invalid("overlap %q must be a duration from 0s to 720h", clip(overlap))
		}
		if d == 0 {
			d = -1 // at once
		}
	}
	c.detail["overlap"] = overlap
	e, err := c.endpoint(t, id)
	if err != nil {
		return nil, err
	}
	secret, err := o.webhooks.Rotate(ctx, e, d)
	if err != nil {
		return nil, storeErr(err, "webhook endpoint \""+clip(id)+"\"")
	}
	return &NewWebhook{Endpoint: e, Secret: secret}, nil
}

// TestWebhook sends a signed test event to an endpoint now and returns the
// attempt's outcome (a failed test stays queued and is retried).
func (o *Ops) TestWebhook(ctx context.Context, tenantRef, id string) (_ *webhook.Result, err error) {
	c := o.begin(ctx, "webhook.test")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	e, err := c.endpoint(t, id)
	if err != nil {
		return nil, err
	}
	res, err := o.webhooks.Test(ctx, e)
	if err != nil {
		return nil, storeErr(err, "webhook endpoint \""+clip(id)+"\"")
	}
	c.detail["state"], c.detail["status"] = res.State, res.Status
	return res, nil
}

// WebhookDeliveries is an endpoint's delivery log, newest first
// (state: "", pending, delivered or dead).
func (o *Ops) WebhookDeliveries(ctx context.Context, tenantRef, id, state string, limit int) (_ []store.WebhookDelivery, err error) {
	c := o.beginRead(ctx, "webhook.deliveries")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	switch state {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead:
	default:
		return nil, invalid("state must be pending, delivered or dead, not %q", clip(state))
	}
	if limit < 0 || limit > 1000 {
		return nil, invalid("limit must be between 0 and 1000")
	}
	if _, err := c.endpoint(t, id); err != nil {
		return nil, err
	}
	return o.st.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{TenantID: t.ID, EndpointID: id, State: state, Limit: limit})
}

// WebhookDelivery is one delivery of a tenant's endpoint with its
// attempts and payload.
func (o *Ops) WebhookDelivery(ctx context.Context, tenantRef, deliveryID string) (_ *WebhookDeliveryDetail, err error) {
	c := o.beginRead(ctx, "webhook.delivery")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	d, as, err := o.st.GetWebhookDelivery(ctx, t.ID, deliveryID)
	if err != nil {
		return nil, storeErr(err, "webhook delivery \""+clip(deliveryID)+"\"")
	}
	return &WebhookDeliveryDetail{Delivery: d, Attempts: nonNilAttempts(as), Payload: string(d.Payload)}, nil
}

func nonNilAttempts(as []store.WebhookAttempt) []store.WebhookAttempt {
	if as == nil {
		return []store.WebhookAttempt{}
	}
	return as
}

// RetryWebhookDelivery sends a dead-lettered delivery again, now.
func (o *Ops) RetryWebhookDelivery(ctx context.Context, tenantRef, deliveryID string) (err error) {
	c := o.begin(ctx, "webhook.retry")
	defer c.end(&err)
	t, err := c.webhookTenant(tenantRef, write)
	if err != nil {
		return err
	}
	c.target = "webhook_delivery:" + clip(deliveryID)
	err = o.st.RetryWebhookDelivery(ctx, t.ID, deliveryID, o.now())
	if errors.Is(err, store.ErrConflict) {
		return errorf(CodeConflict, "webhook delivery %q is not dead-lettered", clip(deliveryID))
	}
	return storeErr(err, "webhook delivery \""+clip(deliveryID)+"\"")
}
