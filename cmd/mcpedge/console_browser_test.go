package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestConsoleInABrowser drives the web console in Debian's headless
// chromium through the real binary: sign in with a key, see the overview,
// call a tool from the catalog's schema-built form, create a key (shown
// once) and revoke it, filter the audit log and verify it; create a tenant
// with an admin key, a user and a rule, look at the virtual servers,
// plans, queue and pins, run a path query on a new lattice, see the
// devices; then sign in as that tenant's admin,
// who sees only its own tenant. It records every request the pages
// make and fails on one to another origin. Screenshots go to
// $MCPEDGE_SCREENSHOTS, or a folder under the system temp dir (logged).
func TestConsoleInABrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") != "" {
			t.Fatal("chromium is not installed (scripts/test.sh installs it) and MCPEDGE_REQUIRE_SERVICES is set")
		}
		t.Skip("chromium is not installed: the console's browser test needs Debian's chromium (scripts/test.sh installs it)")
	}
	shots := os.Getenv("MCPEDGE_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "mcpedge-console-screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	env := secEnv(t)
	cfgPath := writeConfig(t, everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "ev")
	base := p.URL

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root in a container
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1100, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute) // the whole session, on a loaded machine
	defer cancelT()

	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("starting chromium: %v", err)
	}
	var mu sync.Mutex
	var requests []string
	if err := chromedp.Listen(ctx, func(ev any) {
		var u string
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u = e.Request.URL
		case network.EventRequestWillBeSent:
			u = e.Request.URL
		default:
			return
		}
		mu.Lock()
		requests = append(requests, u)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100: PNG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	text := func(sel any) string {
		t.Helper()
		var s string
		var err error
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		switch sel := sel.(type) {
		case chromedp.ID:
			s, err = chromedp.Run(tctx, chromedp.Text(sel))
		case string:
			s, err = chromedp.Run(tctx, chromedp.Text(sel))
		}
		if err != nil {
			t.Fatalf("reading %v: %v", sel, err)
		}
		return s
	}

	// do runs steps within 30 s and, when they fail, shows where the
	// browser is and what it shows.
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML("html"))
			t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, html)
		}
	}
	// Sign in with a key: / leads to the sign-in page, then the overview.
	do("signing in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("key")),
		shot("signin"),
		chromedp.SendKeys(chromedp.ID("key"), testAdminKey),
		chromedp.Submit(chromedp.ID("key")),
		chromedp.WaitVisible(chromedp.ID("upstreams")),
		shot("overview"),
	)
	// MCPEDGE_README_SCREENSHOT=1 also saves the overview as the README's
	// picture (docs/console-overview.png).
	if os.Getenv("MCPEDGE_README_SCREENSHOT") != "" {
		do("the README's screenshot",
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				buf, err := chromedp.FullScreenshot(100)(ctx, tg)
				if err != nil {
					return err
				}
				return os.WriteFile(filepath.Join("..", "..", "docs", "console-overview.png"), buf, 0o644)
			}),
		)
	}
	if ready, who := text(chromedp.ID("ready")), text(chromedp.ID("who")); ready != "ready" || !strings.Contains(who, "operator") {
		t.Fatalf("overview: ready %q, who %q", ready, who)
	}
	if up := text(chromedp.ID("upstreams")); !strings.Contains(up, "ev") {
		t.Fatalf("overview upstreams: %q", up)
	}

	// Call a tool from the catalog, with the field the form built from its
	// schema, and see its result.
	do("calling a tool",
		chromedp.Navigate(base+"/ui/catalog?q=ev__echo"),
		chromedp.WaitVisible(chromedp.ID("arg-ev__echo-0")),
		chromedp.SendKeys(chromedp.ID("arg-ev__echo-0"), "hello from chromium"),
		chromedp.Submit(chromedp.ID("arg-ev__echo-0")),
		chromedp.WaitVisible(chromedp.ID("result")),
		shot("catalog-result"),
	)
	if result := text(chromedp.ID("result")); !strings.Contains(result, "hello from chromium") {
		t.Fatalf("tool result: %q", result)
	}

	// Create a key, shown once, that works; revoke it, and it is refused.
	do("creating a key",
		chromedp.Navigate(base+"/ui/keys"),
		chromedp.WaitVisible(chromedp.ID("key-name")),
		chromedp.SendKeys(chromedp.ID("key-name"), "browser-key"),
		chromedp.Submit(chromedp.ID("key-name")),
		chromedp.WaitVisible(chromedp.ID("new-key")),
		shot("keys-created"),
	)
	secret := strings.TrimSpace(text(chromedp.ID("new-key")))
	if code, body := apiDo(t, http.MethodGet, base+"/api/me", secret, ""); code != http.StatusOK {
		t.Fatalf("the key the console showed: %d %s", code, body)
	}
	row := `//tr[td[1][normalize-space()="browser-key"]]`
	do("revoking the key",
		chromedp.Click(row+`//button[normalize-space()="Revoke"]`),
		chromedp.WaitNotPresent(row+`//button`),
		shot("keys-revoked"),
	)
	if state := text(row + `/td[4]`); state != "revoked" {
		t.Fatalf("the key's state after revoking: %q", state)
	}
	if code, _ := apiDo(t, http.MethodGet, base+"/api/me", secret, ""); code != http.StatusUnauthorized {
		t.Fatalf("the revoked key: %d", code)
	}

	// The audit log, filtered, and verified.
	do("audit",
		chromedp.Navigate(base+"/ui/audit?action=key.&since="),
		chromedp.WaitVisible(chromedp.ID("audit")),
	)
	if entries := text(chromedp.ID("audit")); !strings.Contains(entries, "key.create") || !strings.Contains(entries, "key.revoke") || strings.Contains(entries, "tool.call") {
		t.Fatalf("filtered audit entries:\n%s", entries)
	}
	do("verify",
		chromedp.Click(`//button[normalize-space()="Verify the chain"]`),
		chromedp.WaitVisible(chromedp.ID("verified")),
		shot("audit"),
	)
	if verified := text(chromedp.ID("verified")); !strings.Contains(verified, "intact") {
		t.Fatalf("verify: %q", verified)
	}

	// The administration views, as the operator: create a tenant, give it
	// an admin key (shown once), a user and a rule; look at its virtual
	// servers, the plans, the queue, the pins and the devices.
	do("creating a tenant",
		chromedp.Navigate(base+"/ui/tenants"),
		chromedp.WaitVisible(chromedp.ID("tenant-name")),
		chromedp.SendKeys(chromedp.ID("tenant-name"), "globex"),
		chromedp.Submit(chromedp.ID("tenant-name")),
		chromedp.WaitVisible(`tr[data-tenant="globex"]`),
		chromedp.WaitVisible(chromedp.ID("flash")),
		shot("tenants"),
	)
	do("creating the tenant's admin key",
		chromedp.Navigate(base+"/ui/keys?tenant=globex"),
		chromedp.WaitVisible(chromedp.ID("key-name")),
		chromedp.SendKeys(chromedp.ID("key-name"), "globex-admin"),
		chromedp.SetValue(chromedp.ID("key-role"), "admin"),
		chromedp.Submit(chromedp.ID("key-name")),
		chromedp.WaitVisible(chromedp.ID("new-key")),
	)
	globexKey := strings.TrimSpace(text(chromedp.ID("new-key")))
	do("adding a user",
		chromedp.Navigate(base+"/ui/users?tenant=globex"),
		chromedp.WaitVisible(chromedp.ID("user-name")),
		chromedp.SendKeys(chromedp.ID("user-name"), "gina"),
		chromedp.Submit(chromedp.ID("user-name")),
		chromedp.WaitVisible(`tr[data-user="gina"]`),
		shot("users"),
	)
	do("adding a rule",
		chromedp.Navigate(base+"/ui/rules?tenant=globex"),
		chromedp.WaitVisible(chromedp.ID("rule-tool")),
		chromedp.SendKeys(chromedp.ID("rule-tool"), "ev__get*"),
		chromedp.SendKeys(chromedp.ID("rule-roles"), "viewer"),
		chromedp.Submit(chromedp.ID("rule-tool")),
		chromedp.WaitVisible(`tr[data-rule="ev__get*"]`),
		shot("rules"),
	)
	do("the other views",
		chromedp.Navigate(base+"/ui/servers?tenant=globex"),
		chromedp.WaitVisible(`tr[data-server="all"]`),
		shot("servers"),
		chromedp.Navigate(base+"/ui/plans"),
		chromedp.WaitVisible(`tr[data-plan="free"]`),
		shot("plans"),
		chromedp.Navigate(base+"/ui/queue"),
		chromedp.WaitVisible(chromedp.ID("queue")),
		shot("queue"),
		chromedp.Navigate(base+"/ui/pins"),
		chromedp.WaitVisible(chromedp.ID("quarantine")),
		shot("pins"),
	)
	if pins := text(chromedp.ID("pins")); !strings.Contains(pins, "echo") {
		t.Fatalf("the pins of ev are not listed: %q", pins)
	}
	do("a lattice and a path",
		chromedp.Navigate(base+"/ui/lattices"),
		chromedp.WaitVisible(chromedp.ID("lat-dims")),
		chromedp.SendKeys(chromedp.ID("lat-name"), "floor"),
		chromedp.SendKeys(chromedp.ID("lat-dims"), "30, 20"),
		chromedp.Submit(chromedp.ID("lat-dims")),
		chromedp.WaitVisible(`tr[data-lattice="floor"]`),
		chromedp.Click(`tr[data-lattice="floor"] a`),
		chromedp.WaitVisible(chromedp.ID("path-from")),
		chromedp.Submit(chromedp.ID("path-from")),
		chromedp.WaitVisible(chromedp.ID("path-result")),
		chromedp.WaitVisible(`svg.lattice polyline`),
		shot("lattice-path"),
	)
	if res := text(chromedp.ID("path-result")); !strings.Contains(res, "Reachable in 48 steps") || !strings.Contains(res, "Clean memory") {
		t.Fatalf("the path query: %q", res)
	}
	do("the devices",
		chromedp.Navigate(base+"/ui/devices"),
		chromedp.WaitVisible(chromedp.ID("devices")),
	)
	if devices := text(chromedp.ID("devices")); !strings.Contains(devices, "No devices") {
		t.Fatalf("devices of a gateway no device enrolled with: %q", devices)
	}

	// The tenant's admin signs in and sees its tenant only.
	do("signing in as the tenant's admin",
		chromedp.Navigate(base+"/ui/"),
		chromedp.Click(`//button[normalize-space()="Sign out"]`),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), globexKey),
		chromedp.Submit(chromedp.ID("key")),
		chromedp.WaitVisible(chromedp.ID("ready")),
		chromedp.Navigate(base+"/ui/tenants"),
		chromedp.WaitVisible(`tr[data-tenant="globex"]`),
		shot("tenant-admin"),
	)
	if who := text(chromedp.ID("who")); !strings.Contains(who, "globex") || strings.Contains(who, "operator") {
		t.Fatalf("the tenant admin is shown as %q", who)
	}
	if tenants := text(chromedp.ID("tenants")); strings.Contains(tenants, "default") || strings.Contains(tenants, "ops") {
		t.Fatalf("the tenant admin sees other tenants: %q", tenants)
	}
	if nav := text(`nav`); strings.Contains(nav, "Pins") {
		t.Fatalf("the tenant admin's navigation offers the operators' views: %q", nav)
	}
	do("opening another tenant's keys",
		chromedp.Navigate(base+"/ui/keys?tenant=default"),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if keys := text(chromedp.ID("keys")); strings.Contains(keys, "browser-key") {
		t.Fatalf("the tenant admin sees another tenant's keys: %q", keys)
	}
	do("the tenant's audit log",
		chromedp.Navigate(base+"/ui/audit?since="),
		chromedp.WaitVisible(chromedp.ID("audit")),
	)
	if entries := text(chromedp.ID("audit")); strings.Contains(entries, "key.revoke") || !strings.Contains(entries, "user.create") {
		t.Fatalf("the tenant admin's audit log:\n%s", entries)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(requests) < 8 {
		t.Fatalf("only %d requests recorded: %v", len(requests), requests)
	}
	for _, u := range requests {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("a request left for another origin: %s", u)
		}
	}
	t.Logf("%d requests, all to %s", len(requests), base)
}
