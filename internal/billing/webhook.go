package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/mcpedge/mcpedge/internal/store"
)

// MaxWebhookBytes bounds a webhook's body (Stripe's events are far
// smaller).
const MaxWebhookBytes = 1 << 20

// object is what billing reads of an event's data.object: an invoice or
// a subscription.
type object struct {
	ID       string
	Object   string
	Customer string
	Status   string
	Price    string // the subscription's first item's price
}

// parseObject reads an event's data.object. customer may be an id or an
// expanded customer object.
func parseObject(raw []byte) (*object, error) {
	var o struct {
		ID       string          `json:"id"`
		Object   string          `json:"object"`
		Customer json.RawMessage `json:"customer"`
		Status   string          `json:"status"`
		Items    *struct {
			Data []struct {
				Price *struct {
					ID string `json:"id"`
				} `json:"price"`
			} `json:"data"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("data.object: %w", err)
	}
	out := &object{ID: o.ID, Object: o.Object, Status: o.Status}
	if len(o.Customer) > 0 && string(o.Customer) != "null" {
		if err := json.Unmarshal(o.Customer, &out.Customer); err != nil {
			var c struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(o.Customer, &c); err != nil {
				return nil, errors.New("data.object.customer: want an id or a customer object")
			}
			out.Customer = c.ID
		}
	}
	if o.Items != nil && len(o.Items.Data) > 0 && o.Items.Data[0].Price != nil {
		out.Price = o.Items.Data[0].Price.ID
	}
	return out, nil
}

// Handler receives Stripe's webhooks (POST /api/billing/stripe): it
// verifies the Stripe-Signature header against the endpoint's signing
// secret and the timestamp against the tolerance (stripe-go's webhook
// package), handles each event id once (a replay answers 200 and changes
// nothing), and answers 500 when handling failed so that Stripe retries.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBytes))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("the body is unreadable or larger than %d bytes", MaxWebhookBytes)})
			return
		}
		code, msg := s.handleWebhook(r.Context(), body, r.Header.Get("Stripe-Signature"))
		if code != http.StatusOK {
			s.log.Warn("Stripe webhook refused", "status", code, "reason", msg, "client", r.RemoteAddr)
			writeJSON(w, code, map[string]string{"error": msg})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"received": true, "note": msg})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// handleWebhook verifies and handles one webhook; it returns the HTTP
// status and a short message.
func (s *Service) handleWebhook(ctx context.Context, body []byte, sig string) (int, string) {
	ev, err := webhook.ConstructEventWithOptions(body, sig, s.whsec, webhook.ConstructEventOptions{
		Tolerance: s.o.Config.WebhookTolerance.D(),
		// The endpoint's API version is set in Stripe's dashboard;
		// billing reads only fields every version has.
		IgnoreAPIVersionMismatch: true,
	})
	switch {
	case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
		return http.StatusBadRequest, "missing or malformed Stripe-Signature header"
	case errors.Is(err, webhook.ErrTooOld):
		return http.StatusBadRequest, fmt.Sprintf("the signed timestamp is older than the tolerance (%s)", s.o.Config.WebhookTolerance)
	case errors.Is(err, webhook.ErrNoValidSignature):
		return http.StatusBadRequest, "no valid signature (wrong signing secret?)"
	case err != nil:
		return http.StatusBadRequest, "the signed payload is not a Stripe event: " + clip(s.redact(err).Error(), 200)
	}
	if ev.ID == "" || ev.Data == nil {
		return http.StatusBadRequest, "the event has no id or no data"
	}
	var obj *object
	if handled(string(ev.Type)) {
		if obj, err = parseObject(ev.Data.Raw); err != nil {
			return http.StatusBadRequest, clip(err.Error(), 200)
		}
	}
	fresh, err := s.o.Store.RecordBillingEvent(ctx, ev.ID, string(ev.Type), s.now())
	if err != nil {
		s.log.Error("recording a Stripe event failed", "event", ev.ID, "error", err)
		return http.StatusInternalServerError, "the event could not be recorded; retry"
	}
	if !fresh {
		return http.StatusOK, "already handled"
	}
	if obj == nil {
		return http.StatusOK, "ignored: " + clip(string(ev.Type), 64)
	}
	note, err := s.handleEvent(ctx, string(ev.Type), time.Unix(ev.Created, 0).UTC(), obj)
	if err != nil {
		// Forget the event so that Stripe's retry is handled.
		if uerr := s.o.Store.UnrecordBillingEvent(context.WithoutCancel(ctx), ev.ID); uerr != nil {
			s.log.Error("forgetting a failed Stripe event failed: its retry will be taken for a replay", "event", ev.ID, "error", uerr)
		}
		s.log.Error("handling a Stripe event failed", "event", ev.ID, "type", ev.Type, "error", err)
		return http.StatusInternalServerError, "the event could not be handled; retry"
	}
	return http.StatusOK, note
}

func handled(typ string) bool {
	switch typ {
	case "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed",
		"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed":
		return true
	}
	return false
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// handleEvent applies one event to its customer's account and the
// tenant's plan.
func (s *Service) handleEvent(ctx context.Context, typ string, created time.Time, o *object) (string, error) {
	if o.Customer == "" {
		return "ignored: no customer", nil
	}
	a, err := s.o.Store.GetBillingAccountByCustomer(ctx, o.Customer)
	if errors.Is(err, store.ErrNotFound) {
		return "ignored: not a customer of this gateway", nil
	}
	if err != nil {
		return "", err
	}
	t, err := s.o.Store.GetTenant(ctx, a.TenantID)
	if err != nil {
		return "", err
	}
	isSub := typ != "invoice.paid" && typ != "invoice.payment_succeeded" && typ != "invoice.payment_failed"
	if isSub && a.SubscriptionID != "" && o.ID != a.SubscriptionID {
		return "ignored: another subscription of the customer", nil
	}
	var stale bool
	up, err := s.o.Store.UpdateBillingAccount(ctx, a.TenantID, func(x *store.BillingAccount) error {
		stale = created.Before(x.StateAt)
		if stale {
			return nil // an older event arriving after a newer one changes nothing
		}
		switch typ {
		case "invoice.paid", "invoice.payment_succeeded":
			x.Status, x.PastDueSince = statusActive, time.Time{}
		case "invoice.payment_failed":
			x.Status = statusPastDue
			if x.PastDueSince.IsZero() {
				x.PastDueSince = created
			}
		default:
			x.Status = o.Status
			if typ == "customer.subscription.deleted" || x.Status == "" {
				x.Status = statusCanceled
			}
			switch x.Status {
			case statusActive, statusTrialing:
				x.PastDueSince = time.Time{}
			case statusPastDue, statusUnpaid:
				if x.PastDueSince.IsZero() {
					x.PastDueSince = created
				}
			}
			if plan := s.planOfPrice(o.Price); plan != "" && o.Price != x.PriceID {
				x.Plan, x.PriceID = plan, o.Price
			}
		}
		x.StateAt = created
		return nil
	})
	if err != nil {
		return "", err
	}
	if stale {
		return "ignored: older than the state it would change", nil
	}
	data := map[string]any{"status": up.Status, "plan": up.Plan, "customer": up.CustomerID, "subscription": up.SubscriptionID}
	if !up.PastDueSince.IsZero() {
		data["past_due_since"] = up.PastDueSince
		data["grace_ends"] = s.GraceEnds(up)
	}
	if up.Status != a.Status || !up.PastDueSince.Equal(a.PastDueSince) || up.Plan != a.Plan {
		s.audit(ctx, a.TenantID, "stripe", "billing.status", t.Name, "ok", map[string]any{"event": typ, "from": a.Status, "to": up.Status, "plan": up.Plan})
	}
	switch typ {
	case "invoice.paid", "invoice.payment_succeeded":
		s.notify(ctx, EventInvoicePaid, t.Name, data)
	case "invoice.payment_failed":
		s.notify(ctx, EventInvoiceFailed, t.Name, data)
	default:
		s.notify(ctx, EventSubscriptionChanged, t.Name, data)
	}
	if up.Plan != a.Plan && !up.Degraded && t.Plan == a.Plan {
		// The subscription moved to another plan's price in Stripe (the
		// customer portal, the dashboard): the tenant follows.
		if err := s.setPlan(ctx, t, up.Plan, "stripe", "subscription moved to price "+up.PriceID, up.Status); err != nil {
			return "", err
		}
	}
	if err := s.apply(ctx, a.TenantID, "stripe"); err != nil {
		return "", err
	}
	return "applied", nil
}

// planOfPrice is the configured plan whose price is price ("" if none).
func (s *Service) planOfPrice(price string) string {
	if price == "" {
		return ""
	}
	for plan, p := range s.o.Config.Prices {
		if p == price {
			return plan
		}
	}
	return ""
}
