package edge

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/store"
)

// The TPM here is simulated in-process so that the hub's policy (what it
// records, enforces and clears) and the edge's handling of the activation
// challenge are tested without swtpm; the real TPM runs in
// cmd/mcpedge's TestHubTPMAttestation* and devicekey's tests.

// simTPM is a device key "in a TPM": its attestation states the nonce, the
// AK and PCR 0, which simVerify checks like devicekey.Verify would.
type simTPM struct {
	fileKey
	mu   sync.Mutex
	ak   string
	pcr  string
	lies bool // the activation answer is wrong
	n    int  // attestations made
}

type simAttestation struct {
	Nonce []byte `json:"nonce"`
	AK    string `json:"ak"`
	PCR   string `json:"pcr"`
}

func (k *simTPM) Kind() string { return "tpm" }

func (k *simTPM) attest(nonce []byte) (json.RawMessage, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	return json.Marshal(simAttestation{Nonce: nonce, AK: k.ak, PCR: k.pcr})
}

// activate "decrypts" simMakeCredential's credential: only for its own AK.
func (k *simTPM) activate(blob, enc []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lies || string(enc) != k.ak {
		return []byte("not the secret"), nil
	}
	return blob, nil
}

func (k *simTPM) set(pcr string) {
	k.mu.Lock()
	k.pcr = pcr
	k.mu.Unlock()
}

func simVerify(raw json.RawMessage, _ crypto.PublicKey, nonce []byte, want hub.AttestationPolicy) (*hub.AttestationResult, error) {
	var a simAttestation
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, &hub.AttestationError{Code: hub.CodeBadAttestation, Err: err}
	}
	if !bytes.Equal(a.Nonce, nonce) {
		return nil, &hub.AttestationError{Code: hub.CodeStaleAttestation, Err: errors.New("another nonce")}
	}
	if want.AK != nil && string(want.AK) != a.AK {
		return nil, &hub.AttestationError{Code: hub.CodeWrongAK, Err: errors.New("another AK")}
	}
	if w, ok := want.PCRs[0]; ok && string(w) != a.PCR {
		return nil, &hub.AttestationError{Code: hub.CodePCRChanged, PCR: 0, Err: fmt.Errorf("PCR 0 is %q, policy expects %q", a.PCR, w)}
	}
	return &hub.AttestationResult{AK: []byte(a.AK), EKPublic: []byte("ek"), PCRs: map[int][]byte{0: []byte(a.PCR)}}, nil
}

// simMakeCredential: the "encrypted" secret is readable only by a device
// whose AK is the one named (see simTPM.activate).
func simMakeCredential(_, ak, secret []byte) ([]byte, []byte, error) {
	return bytes.Clone(secret), bytes.Clone(ak), nil
}

func tpmLink(t *testing.T, h *testHub, k *simTPM) *Link {
	return newLink(t, h, k, edgeAudit(t, 0), 4, func(o *Options) { o.Attest, o.Activate = k.attest, k.activate })
}

// signInNow forgets the credential and signs in.
func signInNow(t *testing.T, l *Link) error {
	l.mu.Lock()
	l.token = ""
	l.mu.Unlock()
	return l.signIn(t.Context())
}

// TestLinkTPMPolicy: a TPM edge enrolls through the activation challenge;
// the hub records its PCR values, refuses a changed one (recording why on
// the device), accepts it after a re-approval, records values for a device
// that has none, and with policy "off" records without refusing. A device
// that cannot answer the challenge is not enrolled, and its token is not
// used up.
func TestLinkTPMPolicy(t *testing.T) {
	h := newTestHub(t, func(o *hub.Options) { o.Verify, o.MakeCredential = simVerify, simMakeCredential })
	ctx := t.Context()
	k := &simTPM{fileKey: newFileKey(t), ak: "ak-1", pcr: "boot-1"}

	liar := &simTPM{fileKey: newFileKey(t), ak: "ak-2", pcr: "boot-1", lies: true}
	ll := tpmLink(t, h, liar)
	if err := ll.signIn(ctx); !isCode(err, hub.CodeActivationFailed) {
		t.Fatalf("a device with a wrong activation answer: %v", err)
	}
	ll.Close()
	if _, err := h.st.GetDevice(ctx, liar.ID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the device that failed activation was stored: %v", err)
	}

	l := tpmLink(t, h, k)
	if err := l.signIn(ctx); err != nil {
		t.Fatalf("enrollment (the token must not have been used by the refused one): %v", err)
	}
	dev := getDev(t, h, k.ID())
	if !dev.Attested || string(dev.AK) != "ak-1" || string(dev.PCRs[0]) != "boot-1" || dev.Refusal != "" {
		t.Fatalf("enrolled: %+v", dev)
	}
	if err := signInNow(t, l); err != nil {
		t.Fatalf("sign-in: %v", err)
	}

	// The PCR changes: refused, and the device says why.
	k.set("boot-2")
	err := signInNow(t, l)
	if !isCode(err, hub.CodePCRChanged) {
		t.Fatalf("sign-in with a changed PCR: %v", err)
	}
	var he *hubError
	if errors.As(err, &he); he.status != 403 || he.permanent() || !he.needsOperator() {
		t.Errorf("pcr_changed: status %d, permanent %v", he.status, he.permanent())
	}
	dev = getDev(t, h, k.ID())
	if dev.Refusal == "" || dev.RefusedAt.IsZero() || string(dev.PCRs[0]) != "boot-1" {
		t.Fatalf("after the refusal: %+v", dev)
	}
	if l.Status().LastProblem == "" {
		t.Error("the link's status does not show the refusal")
	}
	// Requests right after the refusal get it without asking the hub
	// again (no attestation, no audit entry per call).
	k.mu.Lock()
	before := k.n
	k.mu.Unlock()
	for range 5 {
		if _, err := l.currentToken(ctx); !isCode(err, hub.CodePCRChanged) {
			t.Fatalf("a request after the refusal: %v", err)
		}
	}
	k.mu.Lock()
	after := k.n
	k.mu.Unlock()
	if after != before {
		t.Errorf("%d attestations for 5 requests within the hold", after-before)
	}
	// Enrolling again does not escape the policy.
	if err := l.signInAs(ctx, true); !isCode(err, hub.CodePCRChanged) {
		t.Fatalf("re-enrollment with a changed PCR: %v", err)
	}

	// Re-approved: accepted, recorded, cleared.
	if err := hub.Reapprove(ctx, h.st, dev); err != nil {
		t.Fatal(err)
	}
	if err := signInNow(t, l); err != nil {
		t.Fatalf("sign-in after re-approval: %v", err)
	}
	dev = getDev(t, h, k.ID())
	if string(dev.PCRs[0]) != "boot-2" || dev.Reapprove || dev.Refusal != "" || !dev.RefusedAt.IsZero() {
		t.Fatalf("after re-approval: %+v", dev)
	}

	// A device without recorded values (enrolled before they were) gets
	// them at its next sign-in.
	dev.PCRs = nil
	if err := h.st.PutDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	k.set("boot-3")
	if err := signInNow(t, l); err != nil {
		t.Fatalf("sign-in without recorded PCRs: %v", err)
	}
	if dev = getDev(t, h, k.ID()); string(dev.PCRs[0]) != "boot-3" {
		t.Fatalf("PCRs not recorded: %+v", dev)
	}

	// Policy off: recorded, not enforced.
	if err := hub.SetPCRPolicy(ctx, h.st, dev, hub.PCRPolicyOff); err != nil {
		t.Fatal(err)
	}
	k.set("boot-4")
	if err := signInNow(t, l); err != nil {
		t.Fatalf("sign-in with policy off: %v", err)
	}
	if dev = getDev(t, h, k.ID()); string(dev.PCRs[0]) != "boot-4" || dev.PCRPolicy != hub.PCRPolicyOff {
		t.Fatalf("policy off: %+v", dev)
	}

	// Another AK (the TPM was cleared, or another TPM): refused.
	k.mu.Lock()
	k.ak = "ak-other"
	k.mu.Unlock()
	if err := signInNow(t, l); !isCode(err, hub.CodeWrongAK) {
		t.Fatalf("sign-in with another AK: %v", err)
	}
	l.Close()
}

func isCode(err error, code string) bool {
	var he *hubError
	return errors.As(err, &he) && he.code == code
}

func getDev(t *testing.T, h *testHub, id string) *store.Device {
	t.Helper()
	d, err := h.st.GetDevice(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// An EK certificate refusal is cured only by the operator (ek_roots) or
// another device, so the link does not retry it on the short backoff.
func TestEKRefusalsArePermanent(t *testing.T) {
	for _, code := range []string{hub.CodeEKUntrusted, hub.CodeEKMismatch} {
		e := &hubError{status: 401, code: code}
		if !e.permanent() || e.needsOperator() {
			t.Errorf("%s: permanent %v, needsOperator %v", code, e.permanent(), e.needsOperator())
		}
	}
}
