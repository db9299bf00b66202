package admin

import (
	"net/http"
	"net/url"
	"strconv"
)

func (h *handler) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	ws, err := h.ops.ListWebhooks(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": nonNil(ws)})
	return nil
}

func (h *handler) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var s WebhookSpec
	if err := h.decode(w, r, &s); err != nil {
		return err
	}
	nw, err := h.ops.CreateWebhook(r.Context(), r.PathValue("tenant"), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/tenants/"+url.PathEscape(r.PathValue("tenant"))+"/webhooks/"+nw.Endpoint.ID)
	writeJSON(w, http.StatusCreated, nw)
	return nil
}

func (h *handler) updateWebhook(w http.ResponseWriter, r *http.Request) error {
	var p WebhookPatch
	if err := h.decode(w, r, &p); err != nil {
		return err
	}
	e, err := h.ops.UpdateWebhook(r.Context(), r.PathValue("tenant"), r.PathValue("id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e)
	return nil
}

func (h *handler) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := h.ops.DeleteWebhook(r.Context(), r.PathValue("tenant"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) rotateWebhook(w http.ResponseWriter, r *http.Request) error {
	nw, err := h.ops.RotateWebhookSecret(r.Context(), r.PathValue("tenant"), r.PathValue("id"), r.URL.Query().Get("overlap"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nw)
	return nil
}

func (h *handler) testWebhook(w http.ResponseWriter, r *http.Request) error {
	res, err := h.ops.TestWebhook(r.Context(), r.PathValue("tenant"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (h *handler) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return invalid("limit must be a number from 0 to 1000")
		}
		limit = n
	}
	ds, err := h.ops.WebhookDeliveries(r.Context(), r.PathValue("tenant"), r.PathValue("id"), q.Get("state"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": nonNil(ds)})
	return nil
}

func (h *handler) getWebhookDelivery(w http.ResponseWriter, r *http.Request) error {
	d, err := h.ops.WebhookDelivery(r.Context(), r.PathValue("tenant"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (h *handler) retryWebhookDelivery(w http.ResponseWriter, r *http.Request) error {
	if err := h.ops.RetryWebhookDelivery(r.Context(), r.PathValue("tenant"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
