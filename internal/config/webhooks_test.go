package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestWebhooksDefaults(t *testing.T) {
	c, ps := parseT(t, "", nil)
	if ps != nil {
		t.Fatal(ps)
	}
	if w := c.Webhooks; !w.Enabled || w.Timeout != DefaultWebhookTimeout || w.RetryFor != DefaultWebhookRetryFor || w.Workers != DefaultWebhookWorkers || len(w.AllowPrivate) != 0 {
		t.Errorf("default [webhooks] = %+v", w)
	}
}

func TestWebhooksValid(t *testing.T) {
	c, ps := parseT(t, "[webhooks]\nenabled = false\nallow_private = [\"127.0.0.1\", \"10.0.0.0/8\"]\ntimeout = \"2s\"\nretry_for = \"1h\"\nbackoff_min = \"1s\"\nbackoff_max = \"1m\"\nworkers = 2\npoll_interval = \"500ms\"\nretention = \"48h\"\nsecret_overlap = \"0s\"\n", nil)
	if ps != nil {
		t.Fatal(ps)
	}
	w := c.Webhooks
	if w.Enabled || w.Timeout.D() != 2*time.Second || w.RetryFor.D() != time.Hour || w.BackoffMin.D() != time.Second || w.BackoffMax.D() != time.Minute ||
		w.Workers != 2 || w.PollInterval.D() != 500*time.Millisecond || w.Retention.D() != 48*time.Hour || w.SecretOverlap != 0 {
		t.Errorf("[webhooks] = %+v", w)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	if len(w.AllowPrivate) != 2 || w.AllowPrivate[0] != want[0] || w.AllowPrivate[1] != want[1] {
		t.Errorf("allow_private = %v, want %v", w.AllowPrivate, want)
	}
}

func TestWebhooksProblems(t *testing.T) {
	for src, want := range map[string]string{
		"[webhooks]\ntimeout = \"1ms\"\n":                           `webhooks.timeout: must be between 100ms and 2m0s, got 1ms`,
		"[webhooks]\nretry_for = \"10s\"\n":                         `webhooks.retry_for: must be between`,
		"[webhooks]\nbackoff_min = \"10s\"\nbackoff_max = \"5s\"\n": `webhooks.backoff_max: must be between 10s`,
		"[webhooks]\nworkers = 0\n":                                 `webhooks.workers: must be between 1 and 64, got 0`,
		"[webhooks]\nallow_private = [\"10.1.0.0/8\"]\n":            `webhooks.allow_private[0]`,
		"[webhooks]\nallow_private = [\"nope\"]\n":                  `webhooks.allow_private[0]`,
		"[webhooks]\nurl = \"x\"\n":                                 `url`,
	} {
		_, ps := parseT(t, src, nil)
		if got := strings.Join(ps, "\n"); !strings.Contains(got, want) {
			t.Errorf("%q: problems %q do not contain %q", src, got, want)
		}
	}
}
