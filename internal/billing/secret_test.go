package billing

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewNamesWhereTheSecretIsMissing(t *testing.T) {
	c := testConfig("")
	_, err := New(Options{Config: c, Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "STRIPE_SECRET_KEY") {
		t.Errorf("New without the key = %v, want an error naming STRIPE_SECRET_KEY", err)
	}
	_, err = New(Options{Config: c, Getenv: func(k string) string {
		if k == "STRIPE_SECRET_KEY" {
			return testKey
		}
		return ""
	}})
	if err == nil || !strings.Contains(err.Error(), "STRIPE_WEBHOOK_SECRET") || strings.Contains(err.Error(), testKey) {
		t.Errorf("New without the webhook secret = %v", err)
	}
	dir := t.TempDir()
	c.SecretKeyFile = filepath.Join(dir, "missing.key")
	_, err = New(Options{Config: c, Getenv: func(string) string { return "x" }})
	if err == nil || !strings.Contains(err.Error(), "secret_key_file") || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("New with a missing key file = %v", err)
	}
	if err := os.WriteFile(c.SecretKeyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Config: c, Getenv: func(string) string { return testWhsec }})
	if err != nil || s.secretKey != testKey {
		t.Errorf("New with a key file: %v (key read: %v)", err, s != nil && s.secretKey == testKey)
	}
	c.Enabled = false
	if _, err := New(Options{Config: c}); err == nil {
		t.Error("New of a disabled billing succeeded")
	}
}

// The key never reaches the log or an error, not even when Stripe (here a
// hostile stand-in) echoes it back, and not at debug level.
func TestSecretKeyNeverLoggedNorInErrors(t *testing.T) {
	f := newFixture(t, "")
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	// A normal round through stripe-mock, with stripe-go logging at debug.
	if _, err := f.svc.Round(ctx); err != nil {
		t.Fatal(err)
	}
	f.usage(acme, f.clock(), "ok", 2)
	if _, err := f.svc.Report(ctx); err != nil {
		t.Fatal(err)
	}
	// Then a Stripe that puts the credential it got into its error.
	f.rec.Answer = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: %s (%s)"}}`, r.Header.Get("Authorization"), testWhsec)
		return true
	}
	f.tenant("beta", "pro", false)
	_, serr := f.svc.Sync(ctx)
	f.usage(acme, f.clock(), "ok", 1)
	_, rerr := f.svc.Report(ctx)
	f.svc.Round(ctx)
	for _, err := range []error{serr, rerr} {
		if err == nil {
			t.Fatal("a refused key did not fail")
		}
		if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), testWhsec) {
			t.Errorf("a secret is in the error: %v", err)
		}
		if !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("the error does not show where the secret was cut: %v", err)
		}
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "stripe:") {
		t.Errorf("stripe-go's messages did not reach the log (the test would prove nothing):\n%s", logs)
	}
	if strings.Contains(logs, testKey) || strings.Contains(logs, testWhsec) {
		t.Errorf("a secret is in the log:\n%s", logs)
	}
	if !strings.Contains(logs, "[redacted]") {
		t.Errorf("the log does not show the echoed key cut out:\n%s", logs)
	}
}
