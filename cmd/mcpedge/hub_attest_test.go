package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
	"github.com/mcpedge/mcpedge/internal/hub"
)

// attestedDevice is a device as GET /api/devices/{id} shows its TPM state.
type attestedDevice struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Attested    bool              `json:"attested"`
	LastContact time.Time         `json:"last_contact"`
	PCRs        map[string]string `json:"pcrs"`
	PCRPolicy   string            `json:"pcr_policy"`
	Reapprove   bool              `json:"reapprove"`
	Refusal     string            `json:"refusal"`
	RefusedAt   time.Time         `json:"refused_at"`
}

func getAttested(t *testing.T, base, id string) attestedDevice {
	t.Helper()
	code, b := apiDo(t, http.MethodGet, base+hub.PathDevices+"/"+id, testAdminKey, "")
	var d attestedDevice
	if code != 200 || json.Unmarshal(b, &d) != nil {
		t.Fatalf("device %s: %d %s", id, code, b)
	}
	return d
}

// hubDenials returns the "code: reason" of the hub's denied sign-ins of a
// device ("": of every device) for action hub.session or hub.enroll, from
// its audit log.
func hubDenials(t *testing.T, base, action, device string) []string {
	t.Helper()
	code, b := apiDo(t, http.MethodGet, base+"/api/audit?action="+action+"&limit=1000", testAdminKey, "")
	var page struct {
		Entries []struct {
			Target  string          `json:"target"`
			Outcome string          `json:"outcome"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"entries"`
	}
	if code != 200 || json.Unmarshal(b, &page) != nil {
		t.Fatalf("hub audit: %d %s", code, b)
	}
	var out []string
	for _, e := range page.Entries {
		if (device == "" || e.Target == device) && e.Outcome == "denied" {
			var d struct{ Code, Reason string }
			_ = json.Unmarshal(e.Detail, &d)
			out = append(out, d.Code+": "+d.Reason)
		}
	}
	return out
}

// TestHubTPMAttestationPolicy runs a hub and a TPM edge (real binaries,
// real swtpm): the edge enrolls (with credential activation) and signs in
// again with a fresh attestation each time; after a PCR it quotes is
// extended, its next sign-in is refused with "PCR 23 changed" (a 403, an
// audit entry and the refusal in the hub's device list and the edge's
// log) while the edge keeps serving its local tools; an operator's
// re-approval lets it back in, with the new value recorded.
func TestHubTPMAttestationPolicy(t *testing.T) {
	tpm := swtpmtest.Start(t)
	hubEnv := secEnv(t)
	hubCfg := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n")
	hp := startServe(t, hubEnv, "--config", hubCfg)
	cli(t, hubEnv, "tenant", "create", "edges", "--config", hubCfg, "--upstreams", "*")
	tok := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges"))

	edgeEnv := []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN="}
	edgeBase := "[device]\ntpm = \"" + tpm.Addr + "\"\npcrs = [0, 7, 23]\n[hub]\nurl = \"" + hp.URL + "\"\ntelemetry_interval = \"1s\"\n"
	ep := startServe(t, edgeEnv, "--config", writeConfig(t, edgeBase+"enroll_token = \""+tok+"\"\n"))
	var id string
	waitFor(t, 30*time.Second, "the TPM device enrolled", func() bool {
		code, b := apiDo(t, http.MethodGet, hp.URL+hub.PathDevices, testAdminKey, "")
		var l struct{ Devices []attestedDevice }
		if code != 200 || json.Unmarshal(b, &l) != nil || len(l.Devices) != 1 {
			return false
		}
		id = l.Devices[0].ID
		return true
	})
	dev := getAttested(t, hp.URL, id)
	if dev.Kind != "tpm" || !dev.Attested || len(dev.PCRs) != 3 || dev.PCRs["23"] == "" || dev.Refusal != "" || dev.PCRPolicy != "" {
		t.Fatalf("the enrolled TPM device: %+v", dev)
	}
	pcr23 := dev.PCRs["23"]
	if n := len(hubDenials(t, hp.URL, "hub.enroll", id)); n != 0 {
		t.Errorf("%d denied enrollments", n)
	}

	// Sign in again, twice, each with a fresh attestation.
	stop := func(p *gatewayProc) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	}
	stop(ep)
	for i := range 2 {
		before := getAttested(t, hp.URL, id).LastContact
		p := startServe(t, edgeEnv, "--config", writeConfig(t, edgeBase))
		waitFor(t, 30*time.Second, fmt.Sprintf("sign-in %d", i+1), func() bool {
			d := getAttested(t, hp.URL, id)
			return d.LastContact.After(before)
		})
		stop(p)
	}
	if d := getAttested(t, hp.URL, id); d.Refusal != "" || d.PCRs["23"] != pcr23 {
		t.Fatalf("after repeated sign-ins: %+v", d)
	}

	// The platform's measurements change: PCR 23 is extended.
	if err := devicekey.ExtendPCR(context.Background(), tpm.Addr, 23, []byte("a new boot loader")); err != nil {
		t.Fatal(err)
	}
	ep = startServe(t, edgeEnv, "--config", writeConfig(t, edgeBase+everythingEnvBlock(t, "local", "edge")))
	waitFor(t, 30*time.Second, "the refusal on the hub", func() bool {
		return strings.Contains(getAttested(t, hp.URL, id).Refusal, "PCR 23 changed")
	})
	dev = getAttested(t, hp.URL, id)
	t.Logf("refusal: %s", dev.Refusal)
	if !strings.Contains(dev.Refusal, "mcpedge hub devices approve "+id) || dev.RefusedAt.IsZero() {
		t.Errorf("the refusal does not say what to do: %+v", dev)
	}
	if out := cli(t, hubEnv, "hub", "devices", "--config", hubCfg); !strings.Contains(out, "PCR 23 changed") || !strings.Contains(out, "enrolled") {
		t.Errorf("mcpedge hub devices does not show the refusal:\n%s", out)
	}
	if ds := hubDenials(t, hp.URL, "hub.session", id); len(ds) == 0 || !strings.HasPrefix(ds[len(ds)-1], hub.CodePCRChanged+": PCR 23 changed") {
		t.Errorf("hub audit of the refusal: %q", ds)
	}
	waitFor(t, 20*time.Second, "the edge logging the refusal", func() bool {
		s := ep.stderr.String()
		return strings.Contains(s, "403 pcr_changed") && strings.Contains(s, "PCR 23 changed") && strings.Contains(s, "local tools keep working")
	})
	// The edge keeps serving its local tools.
	ep.waitReadyAuth(t, testAdminKey, "local")
	cs, err := connectAs(t, ep.URL+"/mcp", testAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := callText(t, cs, "local__echo", map[string]any{"message": "still here"}); err != nil || !strings.Contains(out, "still here") {
		t.Fatalf("a local tool while the hub refuses the device: %q %v", out, err)
	}

	// The operator re-approves; the edge (retrying on its backoff) gets
	// back in, and the new value is recorded.
	if out := cli(t, hubEnv, "hub", "devices", "approve", id, "--config", hubCfg); !strings.Contains(out, "re-approved") {
		t.Errorf("approve: %s", out)
	}
	if !getAttested(t, hp.URL, id).Reapprove {
		t.Error("the device is not marked re-approved")
	}
	waitFor(t, 90*time.Second, "the re-approved device signed in", func() bool {
		d := getAttested(t, hp.URL, id)
		return d.Refusal == "" && !d.Reapprove
	})
	dev = getAttested(t, hp.URL, id)
	if dev.PCRs["23"] == pcr23 || dev.PCRs["23"] == "" || !dev.Attested {
		t.Errorf("after re-approval PCR 23 is %q (was %q): %+v", dev.PCRs["23"], pcr23, dev)
	}
	if out := cli(t, hubEnv, "hub", "devices", "--config", hubCfg); strings.Contains(out, "PCR 23 changed") {
		t.Errorf("the refusal is still listed:\n%s", out)
	}

	// Policy "off": a further change is recorded, not refused.
	code, b := apiDo(t, http.MethodPatch, hp.URL+hub.PathDevices+"/"+id, testAdminKey, `{"pcr_policy":"sometimes"}`)
	if code != http.StatusBadRequest {
		t.Errorf("PATCH with a bad policy: %d %s", code, b)
	}
	code, b = apiDo(t, http.MethodPatch, hp.URL+hub.PathDevices+"/"+id, testAdminKey, `{"pcr_policy":"off"}`)
	if code != 200 || !strings.Contains(string(b), `"pcr_policy":"off"`) {
		t.Fatalf("PATCH pcr_policy off: %d %s", code, b)
	}
	stop(ep)
	if err := devicekey.ExtendPCR(context.Background(), tpm.Addr, 23, []byte("another boot loader")); err != nil {
		t.Fatal(err)
	}
	before := dev.PCRs["23"]
	p := startServe(t, edgeEnv, "--config", writeConfig(t, edgeBase))
	waitFor(t, 30*time.Second, "the sign-in with policy off", func() bool {
		d := getAttested(t, hp.URL, id)
		return d.PCRs["23"] != before && d.Refusal == ""
	})
	stop(p)
	if out := cli(t, hubEnv, "hub", "devices", "pcrs", id, "enrolled", "--config", hubCfg); !strings.Contains(out, "PCR policy enrolled") {
		t.Errorf("hub devices pcrs: %s", out)
	}
	if d := getAttested(t, hp.URL, id); d.PCRPolicy != "" {
		t.Errorf("policy after `hub devices pcrs ID enrolled`: %q", d.PCRPolicy)
	}
	// File devices have no PCRs to approve; unknown devices are named.
	if _, errOut, code := mcpedge(t, "", hubEnv, "hub", "devices", "approve", "0123456789abcdef0123456789abcdef", "--config", hubCfg); code == 0 || !strings.Contains(errOut, "not enrolled") {
		t.Errorf("approve of an unknown device: exit %d %s", code, errOut)
	}
	if code, b := apiDo(t, http.MethodPost, hp.URL+hub.PathDevices+"/nope/reapprove", testAdminKey, ""); code != 404 {
		t.Errorf("reapprove of an unknown device: %d %s", code, b)
	}
}

// tpmHand speaks the enrollment protocol by hand with a device key in a
// software TPM, to send what a well-behaved edge never would.
type tpmHand struct {
	key devicekey.Key
	der []byte
}

func newTPMHand(t *testing.T, addr string) *tpmHand {
	t.Helper()
	k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: t.TempDir(), TPM: addr, PCRs: []int{0, 7}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return &tpmHand{key: k, der: der}
}

func (h *tpmHand) attest(t *testing.T, nonce []byte) *devicekey.Attestation {
	t.Helper()
	a, err := h.key.Attest(nonce)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// request is a signed enrollment (enroll) or sign-in body for nonce with
// the attestation att.
func (h *tpmHand) request(t *testing.T, base string, enroll bool, nonce []byte, att *devicekey.Attestation, token string, activation []byte) string {
	t.Helper()
	purpose := hub.PurposeSession
	if enroll {
		purpose = hub.PurposeEnroll
	}
	sig, err := h.key.Sign(rand.Reader, hub.Digest(purpose, nonce, h.key.ID(), base), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(att)
	req := hub.SignInRequest{DeviceID: h.key.ID(), Nonce: nonce, Signature: sig, HubURL: base, Attestation: raw}
	if enroll {
		req.PublicKey, req.Kind, req.Token, req.Activation = h.der, "tpm", token, activation
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// enroll enrolls h, answering the activation challenge with its TPM.
func (h *tpmHand) enroll(t *testing.T, base, token string) {
	t.Helper()
	n := hubNonce(t, base)
	code, b := apiDo(t, http.MethodPost, base+hub.PathEnroll, "", h.request(t, base, true, n, h.attest(t, n), token, nil))
	var resp hub.SignInResponse
	if code != 200 || json.Unmarshal(b, &resp) != nil || resp.Activation == nil || resp.Token != "" {
		t.Fatalf("enrollment without activation: %d %s", code, b)
	}
	secret, err := h.key.(devicekey.CredentialActivator).ActivateCredential(resp.Activation.CredentialBlob, resp.Activation.Secret)
	if err != nil {
		t.Fatalf("activating the hub's credential: %v", err)
	}
	n = hubNonce(t, base)
	code, b = apiDo(t, http.MethodPost, base+hub.PathEnroll, "", h.request(t, base, true, n, h.attest(t, n), token, secret))
	if code != 200 || json.Unmarshal(b, &resp) != nil || resp.Token == "" || !resp.Attested {
		t.Fatalf("enrollment with activation: %d %s", code, b)
	}
}

// TestHubTPMAttestationRefusals: the hub refuses, each with a 4xx, its
// code and an audit entry, a TPM device's sign-in with a replayed
// attestation (made for an earlier nonce), with an attestation whose
// certification is of another key, and without an attestation; and an
// enrollment whose AK is from another TPM than the EK it presents, which
// fails credential activation.
func TestHubTPMAttestationRefusals(t *testing.T) {
	tpm1, tpm2 := swtpmtest.Start(t), swtpmtest.Start(t)
	hubEnv := secEnv(t)
	hubCfg := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n")
	hp := startServe(t, hubEnv, "--config", hubCfg)
	base := hp.URL
	cli(t, hubEnv, "tenant", "create", "edges", "--config", hubCfg, "--upstreams", "*")
	tok := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges", "--uses", "5"))

	dev := newTPMHand(t, tpm2.Addr)
	dev.enroll(t, base, tok)
	id := dev.key.ID()

	// A good sign-in, whose attestation is then replayed with a fresh
	// nonce (and a fresh signature).
	n1 := hubNonce(t, base)
	old := dev.attest(t, n1)
	if code, b := apiDo(t, http.MethodPost, base+hub.PathSession, "", dev.request(t, base, false, n1, old, "", nil)); code != 200 {
		t.Fatalf("sign-in: %d %s", code, b)
	}
	n2 := hubNonce(t, base)
	code, b := apiDo(t, http.MethodPost, base+hub.PathSession, "", dev.request(t, base, false, n2, old, "", nil))
	if code != http.StatusUnauthorized || errCode(b) != hub.CodeStaleAttestation || !strings.Contains(string(b), "another nonce") {
		t.Errorf("replayed attestation: %d %s", code, b)
	}

	// The certification is of another key in the same TPM (same AK, same
	// nonce): the device key is not certified.
	other := newTPMHand(t, tpm2.Addr)
	n3 := hubNonce(t, base)
	att := dev.attest(t, n3)
	swapped := other.attest(t, n3)
	att.Certify, att.CertifySig, att.KeyPublic = swapped.Certify, swapped.CertifySig, swapped.KeyPublic
	other.key.Close()
	code, b = apiDo(t, http.MethodPost, base+hub.PathSession, "", dev.request(t, base, false, n3, att, "", nil))
	if code != http.StatusUnauthorized || errCode(b) != hub.CodeUncertifiedKey {
		t.Errorf("attestation certifying another key: %d %s", code, b)
	}

	// No attestation at all.
	n4 := hubNonce(t, base)
	sig, _ := dev.key.Sign(rand.Reader, hub.Digest(hub.PurposeSession, n4, id, base), crypto.SHA256)
	body, _ := json.Marshal(hub.SignInRequest{DeviceID: id, Nonce: n4, Signature: sig, HubURL: base})
	code, b = apiDo(t, http.MethodPost, base+hub.PathSession, "", string(body))
	if code != http.StatusUnauthorized || errCode(b) != hub.CodeAttestationRequired {
		t.Errorf("sign-in without attestation: %d %s", code, b)
	}

	// An AK of another TPM (tpm2) presented with this TPM's (tpm1) EK:
	// the hub's credential is for tpm1's EK and tpm2's AK, which no TPM
	// can activate; a guessed answer is refused.
	real := newTPMHand(t, tpm1.Addr)
	realEK := real.attest(t, hubNonce(t, base)).EKPublic
	real.key.Close()
	// (A TPM without a resource manager has three object slots: the
	// enrolled device's key goes, so that activation has EK and AK.)
	dev.key.Close()
	fake := newTPMHand(t, tpm2.Addr)
	n5 := hubNonce(t, base)
	fatt := fake.attest(t, n5)
	fatt.EKPublic = realEK
	code, b = apiDo(t, http.MethodPost, base+hub.PathEnroll, "", fake.request(t, base, true, n5, fatt, tok, nil))
	var resp hub.SignInResponse
	if code != 200 || json.Unmarshal(b, &resp) != nil || resp.Activation == nil {
		t.Fatalf("enrollment with another TPM's EK: %d %s", code, b)
	}
	if _, err := fake.key.(devicekey.CredentialActivator).ActivateCredential(resp.Activation.CredentialBlob, resp.Activation.Secret); !errors.Is(err, devicekey.ErrActivation) {
		t.Fatalf("the AK's TPM activated a credential made for another TPM's EK: %v", err)
	}
	n6 := hubNonce(t, base)
	fatt = fake.attest(t, n6)
	fatt.EKPublic = realEK
	guess := make([]byte, 32)
	_, _ = rand.Read(guess)
	code, b = apiDo(t, http.MethodPost, base+hub.PathEnroll, "", fake.request(t, base, true, n6, fatt, tok, guess))
	if code != http.StatusUnauthorized || errCode(b) != hub.CodeActivationFailed {
		t.Errorf("a guessed activation answer: %d %s", code, b)
	}
	if code, _ := apiDo(t, http.MethodGet, base+hub.PathDevices+"/"+fake.key.ID(), testAdminKey, ""); code != 404 {
		t.Errorf("the device that failed activation is listed: %d", code)
	}
	// The token was not used up by the refused enrollment: the same
	// device, with its own TPM's EK, enrolls.
	fake.enroll(t, base, tok)

	// Every refusal is audited with its code, and the enrolled device's
	// last refusal is on record.
	got := strings.Join(hubDenials(t, base, "hub.session", id), "\n")
	for _, c := range []string{hub.CodeStaleAttestation, hub.CodeUncertifiedKey, hub.CodeAttestationRequired} {
		if !strings.Contains(got, c+": ") {
			t.Errorf("no audit entry for %s in:\n%s", c, got)
		}
	}
	if got := strings.Join(hubDenials(t, base, "hub.enroll", fake.key.ID()), "\n"); !strings.Contains(got, hub.CodeActivationFailed+": ") {
		t.Errorf("no audit entry for activation_failed in:\n%s", got)
	}
	if d := getAttested(t, base, id); !strings.Contains(d.Refusal, "attestation") {
		t.Errorf("the device's last refusal: %+v", d)
	}
}
