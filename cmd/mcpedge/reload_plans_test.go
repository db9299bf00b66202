package main

import (
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadAppliesPlans: a plan changed in the file takes effect at the
// next reload, with no restart and no restart warning; a [store] change in
// the same file is named, key by key, as needing a restart.
func TestReloadAppliesPlans(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[plans.enterprise]\nkey_per_minute = 60000\nkey_burst = 1000\n")
	p := startServe(t, env, "--config", cfgPath)
	calls := func(n int) (refused int) {
		for range n {
			st, _, _ := rawInit(t, p.URL+"/mcp", testAdminKey, nil)
			switch st {
			case http.StatusOK:
			case http.StatusTooManyRequests:
				refused++
			default:
				t.Fatalf("initialize: HTTP %d", st)
			}
		}
		return refused
	}
	if r := calls(6); r != 0 {
		t.Fatalf("%d of 6 refused under the generous plan", r)
	}
	if err := os.WriteFile(cfgPath, []byte("[plans.enterprise]\nkey_per_minute = 1\nkey_burst = 2\n[audit]\narguments = \"full\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the reload", func() bool {
		return strings.Count(p.stderr.String(), `"msg":"configuration reloaded"`) >= 1
	})
	if r := calls(6); r < 3 {
		t.Errorf("%d of 6 refused after the plan was cut to a burst of 2: the reload did not apply the plan", r)
	}
	if strings.Contains(p.stderr.String(), "restart to apply") {
		t.Errorf("a plan or audit.arguments change asked for a restart:\n%s", p.stderr.String())
	}

	// A [limits] change cannot be applied live: the warning names the key.
	if err := os.WriteFile(cfgPath, []byte("[plans.enterprise]\nkey_per_minute = 1\nkey_burst = 2\n[audit]\narguments = \"full\"\n[limits]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the restart warning", func() bool {
		return strings.Contains(p.stderr.String(), "[limits] changed; restart to apply them: limits.trusted_proxies")
	})
}
