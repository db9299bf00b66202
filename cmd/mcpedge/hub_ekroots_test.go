package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
	"github.com/mcpedge/mcpedge/internal/hub"
)

// TestHubEKRoots runs a hub with [hub_server] ek_roots set to a local
// CA's certificates and TPM edges (real binaries, real swtpm, the TPMs
// manufactured by swtpm_setup with EK certificates from swtpm_localca):
// a TPM with an EK certificate from that CA enrolls; a TPM without an EK
// certificate (a device that could be entirely software) and a TPM
// certified by another CA are refused ek_untrusted; a TPM that presents
// another TPM's (valid) EK certificate is refused ek_mismatch; a real
// TPM's EK and certificate presented with another TPM's AK pass the
// certificate check and fail the credential activation. A hub
// whose ek_roots cannot be used does not start; one without ek_roots says
// at start that EK certificates are not checked.
func TestHubEKRoots(t *testing.T) {
	ca := swtpmtest.NewLocalCA(t)
	good := swtpmtest.StartProvisioned(t, ca)
	foreign := swtpmtest.StartProvisioned(t, swtpmtest.NewLocalCA(t))
	bare := swtpmtest.Start(t)
	copied := swtpmtest.Start(t)

	// The copied TPM holds the good TPM's EK certificate where its own
	// would be, as a software device replaying a real TPM's certificate.
	k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: t.TempDir(), TPM: good.Addr})
	if err != nil {
		t.Fatal(err)
	}
	att, err := k.Attest([]byte("n"))
	k.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(att.EKCert) == 0 {
		t.Fatal("the provisioned TPM's attestation has no EK certificate")
	}
	copied.WriteNV(t, 0x01c00002, att.EKCert)

	dir := t.TempDir()
	roots := filepath.Join(dir, "tpm-roots.pem")
	if err := os.WriteFile(roots, ca.Bundle(t), 0o600); err != nil {
		t.Fatal(err)
	}

	// Unusable roots: serve refuses to start, naming the setting.
	for name, content := range map[string]string{"missing.pem": "", "key.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		p := filepath.Join(dir, name)
		if content != "" {
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg := writeConfig(t, "[hub_server]\nek_roots = \""+p+"\"\n")
		_, errOut, code := mcpedge(t, "", secEnv(t), "serve", "--listen", "127.0.0.1:0", "--config", cfg)
		if code == 0 || !strings.Contains(errOut, "[hub_server] ek_roots") || !strings.Contains(errOut, name) {
			t.Errorf("serve with ek_roots %s: exit %d\n%s", name, code, errOut)
		}
	}

	hubEnv := secEnv(t)
	hubCfg := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n[hub_server]\nek_roots = \""+roots+"\"\n")
	hp := startServe(t, hubEnv, "--config", hubCfg)
	if s := hp.stderr.String(); !strings.Contains(s, "TPM devices enroll only with an endorsement key certificate") || strings.Contains(s, "are not checked") {
		t.Errorf("the hub's start log does not say EK certificates are checked:\n%s", s)
	}
	cli(t, hubEnv, "tenant", "create", "edges", "--config", hubCfg, "--upstreams", "*")
	tok := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges", "--uses", "10"))

	stop := func(p *gatewayProc) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	}
	edge := func(tpm *swtpmtest.TPM) *gatewayProc {
		env := []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN="}
		return startServe(t, env, "--config", writeConfig(t, "[device]\ntpm = \""+tpm.Addr+"\"\n[hub]\nurl = \""+hp.URL+"\"\nenroll_token = \""+tok+"\"\n"))
	}
	devices := func() []attestedDevice {
		code, b := apiDo(t, http.MethodGet, hp.URL+hub.PathDevices, testAdminKey, "")
		var l struct{ Devices []attestedDevice }
		if code != 200 || json.Unmarshal(b, &l) != nil {
			t.Fatalf("devices: %d %s", code, b)
		}
		return l.Devices
	}

	// Refused: each edge keeps running (and retrying) but never enrolls.
	for _, tc := range []struct {
		name, code, reason string
		tpm                *swtpmtest.TPM
	}{
		{"a TPM without an EK certificate", hub.CodeEKUntrusted, "has no EK certificate", bare},
		{"a TPM certified by another CA", hub.CodeEKUntrusted, "does not chain to the configured EK roots", foreign},
		{"a TPM presenting another TPM's EK certificate", hub.CodeEKMismatch, "for another key", copied},
	} {
		before := len(hubDenials(t, hp.URL, "hub.enroll", ""))
		ep := edge(tc.tpm)
		waitFor(t, 30*time.Second, tc.name+": refused", func() bool {
			ds := hubDenials(t, hp.URL, "hub.enroll", "")
			return len(ds) > before && strings.HasPrefix(ds[len(ds)-1], tc.code+": ")
		})
		ds := hubDenials(t, hp.URL, "hub.enroll", "")
		last := ds[len(ds)-1]
		if !strings.Contains(last, tc.reason) {
			t.Errorf("%s: refusal %q, want one saying %q", tc.name, last, tc.reason)
		}
		waitFor(t, 20*time.Second, tc.name+": the edge logs the refusal", func() bool {
			return strings.Contains(ep.stderr.String(), "401 "+tc.code)
		})
		stop(ep)
		if n := len(devices()); n != 0 {
			t.Fatalf("%s: %d devices enrolled", tc.name, n)
		}
		t.Logf("%s: %s", tc.name, last)
	}

	// A real TPM's EK and certificate next to another TPM's AK (the
	// protocol spoken by hand): the certificate passes, and the hub's
	// challenge is one only the certified TPM can answer.
	real := newTPMHand(t, good.Addr)
	realAtt := real.attest(t, hubNonce(t, hp.URL))
	real.key.Close()
	fake := newTPMHand(t, bare.Addr)
	n := hubNonce(t, hp.URL)
	fatt := fake.attest(t, n)
	fatt.EKPublic, fatt.EKCert = realAtt.EKPublic, realAtt.EKCert
	code, b := apiDo(t, http.MethodPost, hp.URL+hub.PathEnroll, "", fake.request(t, hp.URL, true, n, fatt, tok, nil))
	var resp hub.SignInResponse
	if code != 200 || json.Unmarshal(b, &resp) != nil || resp.Activation == nil {
		t.Fatalf("enrollment with a certified EK and another TPM's AK: %d %s", code, b)
	}
	if _, err := fake.key.(devicekey.CredentialActivator).ActivateCredential(resp.Activation.CredentialBlob, resp.Activation.Secret); !errors.Is(err, devicekey.ErrActivation) {
		t.Fatalf("a TPM activated a credential made for the certified TPM's EK: %v", err)
	}
	n = hubNonce(t, hp.URL)
	fatt = fake.attest(t, n)
	fatt.EKPublic, fatt.EKCert = realAtt.EKPublic, realAtt.EKCert
	code, b = apiDo(t, http.MethodPost, hp.URL+hub.PathEnroll, "", fake.request(t, hp.URL, true, n, fatt, tok, make([]byte, 32)))
	if code != http.StatusUnauthorized || errCode(b) != hub.CodeActivationFailed {
		t.Fatalf("a guessed activation answer: %d %s", code, b)
	}
	fake.key.Close()

	// The TPM certified by the trusted CA enrolls, with activation.
	ep := edge(good)
	waitFor(t, 30*time.Second, "the certified TPM enrolled", func() bool { return len(devices()) == 1 })
	if d := devices()[0]; d.Kind != "tpm" || !d.Attested {
		t.Fatalf("the enrolled device: %+v", d)
	}
	stop(ep)

	// [hub_server] is read at start: a reload says a restart is needed.
	if err := os.WriteFile(hubCfg, []byte("[auth]\nrevocation_poll = \"500ms\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = hp.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the reload warning", func() bool {
		log := hp.stderr.String()
		return strings.Contains(log, "[hub_server]") && strings.Contains(log, "restart to apply them") && strings.Contains(log, "hub_server.ek_roots")
	})

	// Without ek_roots a gateway that is no hub yet (no devices, no
	// enrollment tokens) stays quiet; one that is a hub says at start
	// that nothing is checked.
	plainEnv := secEnv(t)
	plainCfg := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n")
	plain := startServe(t, plainEnv, "--config", plainCfg)
	if s := plain.stderr.String(); strings.Contains(s, "endorsement key certificates are not checked") {
		t.Errorf("a gateway that is no hub warns about EK certificates:\n%s", s)
	}
	cli(t, plainEnv, "tenant", "create", "edges", "--config", plainCfg, "--upstreams", "*")
	cli(t, plainEnv, "hub", "token", "create", "--config", plainCfg, "--tenant", "edges")
	stop(plain)
	plain = startServe(t, plainEnv, "--config", plainCfg)
	// stderr is copied by its own goroutine: give it a moment.
	waitFor(t, 10*time.Second, "a hub without ek_roots to warn", func() bool {
		return strings.Contains(plain.stderr.String(), "endorsement key certificates are not checked")
	})
	stop(plain)
}
