package main

import (
	"strings"
	"testing"
)

// TestMeasureWebhooks runs the webhook dispatch case small: every event
// is delivered and the report has its table (no time is asserted).
func TestMeasureWebhooks(t *testing.T) {
	o := &options{webhookEvents: 200, binDir: t.TempDir()}
	r, err := measureWebhooks(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.errorMsg != "" || r.received != 200 {
		t.Fatalf("%+v", r)
	}
	if s := renderWebhooks(r); !strings.Contains(s, "| deliver (claim, sign, POST, record) |") {
		t.Errorf("report:\n%s", s)
	}
}
