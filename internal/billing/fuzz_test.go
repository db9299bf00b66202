package billing

import (
	"net/http"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/billing/billingtest"
)

// FuzzParseObject: any data.object decodes or fails with an error, never
// a panic.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{
		invoice("cus_1"), subscription("sub_1", "cus_1", "active", "price_pro"),
		`{"customer":null}`, `{"customer":{"id":7}}`, `{"items":{"data":[{"price":null}]}}`, `[]`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseObject(b)
		if err == nil && o == nil {
			t.Fatal("nil object without an error")
		}
	})
}

// FuzzWebhook: whatever a correctly signed payload holds (so the fuzzer
// gets past the signature), the endpoint answers 200 or 400 and never
// panics.
func FuzzWebhook(f *testing.F) {
	now := time.Now()
	f.Add(billingtest.Event("evt_1", "invoice.payment_failed", now, invoice("cus_acme")), false)
	f.Add(billingtest.Event("evt_2", "customer.subscription.updated", now, subscription("sub_cus_acme", "cus_acme", "canceled", "price_ent")), false)
	f.Add([]byte(`{"id":"evt_3","type":"invoice.paid","data":{"object":{"customer":["x"]}}}`), false)
	f.Add([]byte(`{"id":"evt_4","type":"invoice.paid","created":-1,"data":null}`), true)
	f.Add([]byte(`not json`), true)
	fx := newFixture(f, "http://127.0.0.1:1")
	fx.account(fx.tenant("acme", "pro", false), "cus_acme")
	h := fx.svc.Handler()
	f.Fuzz(func(t *testing.T, payload []byte, badSig bool) {
		secret := testWhsec
		if badSig {
			secret = "whsec_wrong"
		}
		code, _ := post(t, h, payload, billingtest.Signature(payload, secret, time.Now()))
		if code != http.StatusOK && code != http.StatusBadRequest {
			t.Fatalf("status %d", code)
		}
		if badSig && code != http.StatusBadRequest {
			t.Fatal("a wrongly signed payload was taken")
		}
	})
}
