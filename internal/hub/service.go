package hub

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Defaults of [Options].
const (
	DefaultCredentialTTL = time.Hour
	DefaultNonceTTL      = 2 * time.Minute
	DefaultTokenTTL      = 24 * time.Hour
	// EnrollTokenPrefix starts every enrollment token, so that one pasted
	// in the wrong place is recognisable (and findable by secret scanners).
	EnrollTokenPrefix = "mcpe_enroll_"
)

// Credentials issues and revokes the devices' bearer credentials;
// *auth.Service implements it.
type Credentials interface {
	CreateKey(ctx context.Context, k *store.APIKey, expiresIn time.Duration) (string, error)
	RevokeKey(ctx context.Context, tenantID, keyID string) error
}

// Auditor records audit entries and waits until they are stored;
// *audit.Logger implements it.
type Auditor interface {
	Record(ctx context.Context, e *store.AuditEntry)
	Flush(ctx context.Context) error
}

// VerifyAttestation checks a TPM attestation of the device key pub for
// nonce (devicekey.Verify) against want: the pinned AK (nil at the first
// enrollment) and the recorded PCR values (nil: not enforced). It returns
// what the attestation established. A refusal is best an
// *AttestationError, which says why in the device's and the audit log's
// terms. It is a function so that this package does not depend on the TPM
// code.
type VerifyAttestation func(att json.RawMessage, pub crypto.PublicKey, nonce []byte, want AttestationPolicy) (*AttestationResult, error)

// AttestationPolicy is what a device's attestation must show.
type AttestationPolicy struct {
	// AK is the pinned AK public area; nil accepts any (first enrollment).
	AK []byte
	// PCRs are the expected sha256 PCR values; nil enforces none.
	PCRs map[int][]byte
	// Enrollment is set when the attestation is for an enrollment (which
	// a credential activation then binds to the EK): a verifier that
	// checks EK certificates does it then, and refuses with
	// CodeEKUntrusted or CodeEKMismatch. Later sign-ins are bound to the
	// enrolled TPM by the pinned AK.
	Enrollment bool
}

// AttestationResult is what a verified attestation established.
type AttestationResult struct {
	// AK is the AK's public area (TPMT_PUBLIC), to pin.
	AK []byte
	// EKPublic is the TPM's EK public area (unverified by itself: credential
	// activation proves that the AK lives in the TPM that holds it).
	EKPublic []byte
	// PCRs are the attested sha256 PCR values.
	PCRs map[int][]byte
}

// MakeCredential makes a credential activation challenge
// (devicekey.MakeCredential): secret encrypted to the EK, bound to the AK.
type MakeCredential func(ekPublic, akPublic, secret []byte) (credentialBlob, encSecret []byte, err error)

// Refusal codes of a TPM attestation (the "code" of the 4xx answer).
const (
	// CodeStaleAttestation: the attestation was made for another nonce
	// (replayed, or an answer to an earlier challenge).
	CodeStaleAttestation = "stale_attestation"
	// CodePCRChanged: a PCR differs from the value recorded at enrollment
	// (or the last re-approval).
	CodePCRChanged = "pcr_changed"
	// CodeUncertifiedKey: the AK did not certify the device key.
	CodeUncertifiedKey = "uncertified_key"
	// CodeWrongAK: the AK is not the one pinned at enrollment.
	CodeWrongAK = "wrong_ak"
	// CodeBadAttestation: malformed, or a signature does not verify.
	CodeBadAttestation = "bad_attestation"
	// CodeActivationFailed: the answer to the credential activation
	// challenge is wrong: the AK is not in the TPM that holds the EK.
	CodeActivationFailed = "activation_failed"
	// CodeAttestationRequired: a TPM device signed in without one.
	CodeAttestationRequired = "attestation_required"
	// CodeEKUntrusted: the hub checks EK certificates ([hub_server]
	// ek_roots) and the TPM has none, or it does not chain to those roots.
	CodeEKUntrusted = "ek_untrusted"
	// CodeEKMismatch: the EK certificate chains to the roots but
	// certifies another key than the EK the device presented.
	CodeEKMismatch = "ek_mismatch"
)

// AttestationError is a refused attestation: Code is one of the Code…
// constants, Err the verifier's detail.
type AttestationError struct {
	Code string
	// PCR is the first PCR that changed (CodePCRChanged).
	PCR int
	Err error
}

func (e *AttestationError) Error() string { return e.Err.Error() }
func (e *AttestationError) Unwrap() error { return e.Err }

// PCR policies of a device (store.Device.PCRPolicy).
const (
	// PCRPolicyEnrolled (also "", the default): every attestation must
	// show the PCR values recorded at enrollment or the last re-approval.
	PCRPolicyEnrolled = "enrolled"
	// PCROff: PCR values are recorded, not enforced. The attestation is
	// still required and checked (fresh nonce, pinned AK, certified key).
	PCRPolicyOff = "off"
)

// Options configure a [Service].
type Options struct {
	Store       store.Store
	Credentials Credentials
	Audit       Auditor
	// Verify checks TPM attestations; nil refuses "tpm" enrollments.
	Verify VerifyAttestation
	// MakeCredential, when set, makes every TPM enrollment answer a
	// credential activation challenge first, which binds the AK to the
	// EK; nil skips it (the AK is then trusted on first use).
	MakeCredential MakeCredential
	// Disabled, if not "", is why this gateway cannot be a hub (auth
	// mode off): every hub endpoint answers 503 with it.
	Disabled string
	// ClientIP returns the caller's address; nil: the host of RemoteAddr.
	ClientIP func(*http.Request) string
	Log      *slog.Logger
	// CredentialTTL is how long a device's bearer credential lives.
	CredentialTTL time.Duration
	// NonceTTL is how long a challenge nonce may be used.
	NonceTTL time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	// Events, if set, hears of each device enrolled for the first time
	// (events.DeviceEnrolled).
	Events events.Publisher
}

// Service is the hub side: it serves PathNonce, PathEnroll, PathSession,
// PathTelemetry, PathTokens and PathDevices.
type Service struct {
	o   Options
	mux *http.ServeMux
}

// New returns the hub service.
func New(o Options) *Service {
	if o.CredentialTTL <= 0 {
		o.CredentialTTL = DefaultCredentialTTL
	}
	if o.NonceTTL <= 0 {
		o.NonceTTL = DefaultNonceTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ClientIP == nil {
		o.ClientIP = func(r *http.Request) string {
			h, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return h
		}
	}
	s := &Service{o: o, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST "+PathNonce, s.nonce)
	s.mux.HandleFunc("POST "+PathEnroll, s.enroll)
	s.mux.HandleFunc("POST "+PathSession, s.session)
	s.mux.HandleFunc("POST "+PathTelemetry, s.telemetry)
	s.mux.HandleFunc("GET "+PathPins, s.listPins)
	s.mux.HandleFunc("POST "+PathPins, s.recordPins)
	s.mux.HandleFunc("POST "+PathTokens, s.createToken)
	s.mux.HandleFunc("GET "+PathDevices, s.listDevices)
	s.mux.HandleFunc("GET "+PathDevices+"/{id}", s.getDevice)
	s.mux.HandleFunc("DELETE "+PathDevices+"/{id}", s.deleteDevice)
	s.mux.HandleFunc("PATCH "+PathDevices+"/{id}", s.patchDevice)
	s.mux.HandleFunc("POST "+PathDevices+"/{id}/reapprove", s.reapproveDevice)
	return s
}

// Owns reports whether path is one of the hub's, so a caller can route
// /api traffic to [Service.ServeHTTP].
func Owns(path string) bool {
	return strings.HasPrefix(path, "/api/hub/") || path == PathDevices || strings.HasPrefix(path, PathDevices+"/")
}

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.o.Disabled != "" {
		writeError(w, http.StatusServiceUnavailable, "unavailable", s.o.Disabled)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s; the API is described at /api/openapi.json", r.Method, clip(r.URL.Path)))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// ---- sign-in

func (s *Service) nonce(w http.ResponseWriter, r *http.Request) {
	n := make([]byte, NonceBytes)
	if _, err := rand.Read(n); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "no randomness")
		return
	}
	exp := s.o.Now().Add(s.o.NonceTTL).UTC()
	if err := s.o.Store.PutNonce(r.Context(), nonceHash(n), exp); err != nil {
		s.internal(w, "storing a nonce", err)
		return
	}
	writeJSON(w, http.StatusOK, NonceResponse{Nonce: n, ExpiresAt: exp})
}

func nonceHash(n []byte) []byte {
	h := sha256.Sum256(append([]byte("mcpedge hub nonce\x00"), n...))
	return h[:]
}

// TokenHash is how enrollment tokens are stored: SHA-256 suffices, the
// token being 32 random bytes (no dictionary to attack).
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte("mcpedge enroll token\x00" + token))
	return h[:]
}

// signInError is a refusal with its status, code and a message for the
// device's operator; it is audited.
type signInError struct {
	status int
	code   string
	msg    string
}

func (e *signInError) Error() string { return e.msg }

func refuse(status int, code, format string, args ...any) *signInError {
	return &signInError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *Service) enroll(w http.ResponseWriter, r *http.Request) {
	s.signIn(w, r, true)
}

func (s *Service) session(w http.ResponseWriter, r *http.Request) {
	s.signIn(w, r, false)
}

// signIn runs enrollment (enroll) or sign-in: it checks the nonce, the
// signature and, for a device it does not know, the enrollment token,
// then records the device and issues a fresh credential, revoking the
// previous one. Every refusal is audited (action hub.enroll or
// hub.session, outcome denied).
func (s *Service) signIn(w http.ResponseWriter, r *http.Request, enroll bool) {
	action := "hub.session"
	if enroll {
		action = "hub.enroll"
	}
	ip := s.o.ClientIP(r)
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxSignInBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "body_read", "reading the request body: "+err.Error())
		return
	}
	req, err := DecodeSignIn(body, enroll)
	if err != nil {
		status := http.StatusBadRequest
		if len(body) > MaxSignInBody {
			status = http.StatusRequestEntityTooLarge
		}
		s.audit(r.Context(), action, "", "", "denied", ip, map[string]any{"reason": "invalid request"})
		writeError(w, status, "invalid_request", err.Error())
		return
	}
	resp, serr := s.doSignIn(r, req, enroll, ip)
	if serr != nil {
		s.o.Log.Warn("hub sign-in refused", "action", action, "device", req.DeviceID, "client_ip", ip, "reason", serr.msg)
		s.audit(r.Context(), action, "", req.DeviceID, "denied", ip, map[string]any{"reason": serr.msg, "code": serr.code})
		writeError(w, serr.status, serr.code, serr.msg)
		return
	}
	if resp.Activation != nil {
		s.audit(r.Context(), action+".challenge", "", req.DeviceID, "ok", ip, map[string]any{"reason": "credential activation challenge issued"})
		writeJSON(w, http.StatusOK, resp)
		return
	}
	s.audit(r.Context(), action, resp.TenantID, req.DeviceID, "ok", ip, map[string]any{"attested": resp.Attested})
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) doSignIn(r *http.Request, req *SignInRequest, enroll bool, ip string) (*SignInResponse, *signInError) {
	ctx := r.Context()
	now := s.o.Now()
	if problem := hostMismatch(req.HubURL, r.Host); problem != "" {
		return nil, refuse(http.StatusUnauthorized, "wrong_hub", "%s", problem)
	}
	// The nonce first: it is used up whatever happens next, so a captured
	// request can never be replayed.
	if err := s.o.Store.UseNonce(ctx, nonceHash(req.Nonce), now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse(http.StatusUnauthorized, "stale_nonce", "the nonce is unknown, expired or already used: get a fresh one from POST %s and sign again", PathNonce)
		}
		return nil, refuse(http.StatusServiceUnavailable, "unavailable", "checking the nonce: %v", err)
	}
	dev, err := s.o.Store.GetDevice(ctx, req.DeviceID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, refuse(http.StatusServiceUnavailable, "unavailable", "looking up the device: %v", err)
	}
	known := err == nil
	pubDER := req.PublicKey
	if !enroll {
		if !known {
			return nil, refuse(http.StatusUnauthorized, "unknown_device", "device %s is not enrolled with this hub: enroll it (POST %s with an enrollment token)", req.DeviceID, PathEnroll)
		}
		pubDER = dev.PublicKey
	}
	pub, perr := ParsePublicKey(pubDER)
	if perr != nil {
		return nil, refuse(http.StatusBadRequest, "invalid_request", "%v", perr)
	}
	purpose := PurposeSession
	if enroll {
		purpose = PurposeEnroll
	}
	if !ecdsa.VerifyASN1(pub, Digest(purpose, req.Nonce, req.DeviceID, req.HubURL), req.Signature) {
		return nil, refuse(http.StatusUnauthorized, "bad_signature", "the signature does not verify with the device key of %s", req.DeviceID)
	}
	// From here on the request is the device's own: a refusal is
	// recorded on the device for the operator to see.
	resp, serr := s.signedIn(ctx, req, enroll, dev, pub, now, ip)
	if serr != nil && known {
		s.noteRefusal(ctx, req.DeviceID, serr.msg, now)
	}
	return resp, serr
}

// signedIn continues a sign-in whose nonce and signature are good: the
// TPM attestation, for an enrollment the credential activation and the
// token, then the credential.
func (s *Service) signedIn(ctx context.Context, req *SignInRequest, enroll bool, dev *store.Device, pub *ecdsa.PublicKey, now time.Time, ip string) (*SignInResponse, *signInError) {
	known := dev != nil
	kind := req.Kind
	if !enroll {
		kind = dev.Kind
	}
	var att *AttestationResult
	reapproved := false
	if kind == "tpm" {
		if s.o.Verify == nil {
			return nil, refuse(http.StatusUnauthorized, "attestation_unsupported", "this hub cannot verify TPM attestations")
		}
		if len(req.Attestation) == 0 {
			return nil, refuse(http.StatusUnauthorized, CodeAttestationRequired, "device %s has its key in a TPM: every sign-in must carry a TPM attestation for the hub's nonce (update the edge)", req.DeviceID)
		}
		want := AttestationPolicy{Enrollment: enroll}
		if known {
			want.AK = dev.AK
			// The recorded PCR values hold for enrollments of a known
			// device too: enrolling again must not reset them.
			if dev.PCRPolicy != PCRPolicyOff && !dev.Reapprove {
				want.PCRs = dev.PCRs
			}
			reapproved = dev.Reapprove
		}
		var err error
		att, err = s.o.Verify(req.Attestation, pub, req.Nonce, want)
		if err != nil {
			return nil, attestationRefusal(req.DeviceID, err)
		}
		if enroll && s.o.MakeCredential != nil {
			if len(req.Activation) == 0 {
				return s.challenge(ctx, req.DeviceID, att, now)
			}
			if err := s.o.Store.UseNonce(ctx, activationHash(req.Activation, req.DeviceID, att.AK), now); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return nil, refuse(http.StatusUnauthorized, CodeActivationFailed, "device %s did not answer the credential activation challenge (wrong or expired answer): its attestation key is not in the TPM whose endorsement key it presented", req.DeviceID)
				}
				return nil, refuse(http.StatusServiceUnavailable, "unavailable", "checking the activation: %v", err)
			}
		}
	}
	if enroll {
		d := &store.Device{ID: req.DeviceID, Name: req.Name, Kind: req.Kind, PublicKey: req.PublicKey, Labels: req.Labels}
		if known {
			// Re-enrollment with the same key: no token, same tenant
			// and PCR policy.
			d.TenantID, d.AK, d.PCRs, d.PCRPolicy = dev.TenantID, dev.AK, dev.PCRs, dev.PCRPolicy
			if len(dev.AK) > 0 && req.Kind != "tpm" {
				return nil, refuse(http.StatusUnauthorized, "downgrade", "device %s enrolled with a TPM key and now claims a %q key; refusing the downgrade", req.DeviceID, req.Kind)
			}
		} else {
			if req.Token == "" {
				return nil, refuse(http.StatusUnauthorized, "token_required", "device %s is not enrolled with this hub: an enrollment token is needed ([hub] enroll_token; create one on the hub with `mcpedge hub token create`)", req.DeviceID)
			}
			tok, err := s.o.Store.UseEnrollToken(ctx, TokenHash(req.Token), now)
			if errors.Is(err, store.ErrNotFound) {
				return nil, refuse(http.StatusUnauthorized, "bad_token", "the enrollment token is unknown, expired or used up: create a new one on the hub (`mcpedge hub token create`)")
			}
			if err != nil {
				return nil, refuse(http.StatusServiceUnavailable, "unavailable", "checking the enrollment token: %v", err)
			}
			d.TenantID = tok.TenantID
		}
		if att != nil {
			d.AK, d.PCRs, d.Attested = att.AK, att.PCRs, true
		}
		if err := s.o.Store.PutDevice(ctx, d); err != nil {
			return nil, refuse(http.StatusServiceUnavailable, "unavailable", "storing the device: %v", err)
		}
		if !known && s.o.Events != nil {
			e := events.Event{Type: events.DeviceEnrolled, TenantID: d.TenantID, Time: now,
				Data: map[string]any{"device_id": d.ID, "name": d.Name, "kind": d.Kind, "labels": d.Labels, "attested": d.Attested, "client_ip": ip}}
			if err := s.o.Events.Publish(context.WithoutCancel(ctx), e); err != nil {
				s.o.Log.Warn("hub: publishing the enrollment event failed", "device", d.ID, "error", err)
			}
		}
		dev = d
	} else if att != nil && (dev.Reapprove || dev.Refusal != "" || !dev.Attested || !maps.EqualFunc(dev.PCRs, att.PCRs, bytes.Equal)) {
		// Record what this attestation showed: after a re-approval (or
		// for a device enrolled before PCRs were recorded) these are
		// the values from now on; with policy "off", the latest.
		dev.PCRs, dev.Reapprove, dev.Refusal, dev.RefusedAt, dev.Attested = att.PCRs, false, "", time.Time{}, true
		if err := s.o.Store.PutDevice(ctx, dev); err != nil {
			return nil, refuse(http.StatusServiceUnavailable, "unavailable", "storing the device: %v", err)
		}
	}
	if reapproved {
		s.o.Log.Info("hub: a re-approved device's PCR values were recorded", "device", dev.ID)
	}
	tenant, err := s.o.Store.GetTenant(ctx, dev.TenantID)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, "unknown_tenant", "the device's tenant is gone")
	}
	if tenant.Disabled {
		return nil, refuse(http.StatusForbidden, "tenant_disabled", "tenant %q is disabled", tenant.Name)
	}
	// A fresh credential per sign-in: a member key limited to MCP, for
	// CredentialTTL. It is never written to the edge's disk.
	k := &store.APIKey{TenantID: dev.TenantID, Name: "device " + dev.ID, Role: principal.RoleMember, Scopes: []string{principal.ScopeList, principal.ScopeCall}}
	secret, err := s.o.Credentials.CreateKey(ctx, k, s.o.CredentialTTL)
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, "unavailable", "issuing the device credential: %v", err)
	}
	prev, err := s.o.Store.SetDeviceCredential(ctx, dev.ID, k.ID, now, ip)
	if err != nil {
		_ = s.o.Credentials.RevokeKey(context.WithoutCancel(ctx), k.TenantID, k.ID)
		return nil, refuse(http.StatusServiceUnavailable, "unavailable", "recording the device credential: %v", err)
	}
	if prev != "" && prev != k.ID {
		if err := s.o.Credentials.RevokeKey(context.WithoutCancel(ctx), dev.TenantID, prev); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.o.Log.Warn("revoking a device's previous credential", "device", dev.ID, "key", prev, "err", err.Error())
		}
	}
	return &SignInResponse{
		DeviceID: dev.ID, TenantID: tenant.ID, TenantName: tenant.Name, Token: secret, ExpiresAt: k.ExpiresAt,
		AuditSeq: dev.AuditSeq, Attested: dev.Attested,
	}, nil
}

// challenge answers a TPM enrollment with a credential activation
// challenge: a random secret encrypted to the attested EK for the attested
// AK. The hub keeps only a hash of (secret, device, AK), as a single-use
// nonce, so the answer must come from this device with this AK within the
// nonce lifetime.
func (s *Service) challenge(ctx context.Context, deviceID string, att *AttestationResult, now time.Time) (*SignInResponse, *signInError) {
	if len(att.EKPublic) == 0 {
		return nil, refuse(http.StatusUnauthorized, CodeBadAttestation, "device %s's attestation has no endorsement key (ek_public): the hub cannot bind its attestation key to a TPM", deviceID)
	}
	secret := make([]byte, MaxActivation)
	if _, err := rand.Read(secret); err != nil {
		return nil, refuse(http.StatusInternalServerError, "internal", "no randomness")
	}
	blob, enc, err := s.o.MakeCredential(att.EKPublic, att.AK, secret)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, CodeBadAttestation, "device %s: making a credential for its endorsement key: %v", deviceID, err)
	}
	if err := s.o.Store.PutNonce(ctx, activationHash(secret, deviceID, att.AK), now.Add(s.o.NonceTTL).UTC()); err != nil {
		return nil, refuse(http.StatusServiceUnavailable, "unavailable", "storing the activation challenge: %v", err)
	}
	return &SignInResponse{DeviceID: deviceID, Activation: &ActivationChallenge{CredentialBlob: blob, Secret: enc}}, nil
}

// activationHash is how an activation secret is kept, bound to the device
// and the AK it was made for.
func activationHash(secret []byte, deviceID string, ak []byte) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte("mcpedge hub activation"), secret, []byte(deviceID), ak} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

// attestationRefusal turns a verifier's error into the refusal the device
// and the audit log see.
func attestationRefusal(deviceID string, err error) *signInError {
	var ae *AttestationError
	if !errors.As(err, &ae) {
		return refuse(http.StatusUnauthorized, CodeBadAttestation, "the TPM attestation of device %s does not verify: %v", deviceID, err)
	}
	switch ae.Code {
	case CodePCRChanged:
		return refuse(http.StatusForbidden, ae.Code, "PCR %d changed since the device was enrolled or last re-approved (%v); if this is expected (a firmware or boot loader update), an operator re-approves the device: `mcpedge hub devices approve %s` or POST %s/%s/reapprove", ae.PCR, err, deviceID, PathDevices, deviceID)
	case CodeStaleAttestation:
		return refuse(http.StatusUnauthorized, ae.Code, "the TPM attestation of device %s was made for another nonce (replayed or stale): %v", deviceID, err)
	case CodeUncertifiedKey:
		return refuse(http.StatusUnauthorized, ae.Code, "the TPM attestation of device %s does not certify its device key: %v", deviceID, err)
	case CodeEKUntrusted:
		return refuse(http.StatusUnauthorized, ae.Code, "device %s cannot enroll as a TPM device: this hub requires an endorsement key certificate from a TPM manufacturer it trusts ([hub_server] ek_roots): %v", deviceID, err)
	case CodeEKMismatch:
		return refuse(http.StatusUnauthorized, ae.Code, "device %s cannot enroll as a TPM device: its endorsement key certificate is for another key than the endorsement key it presented: %v", deviceID, err)
	case CodeWrongAK:
		return refuse(http.StatusUnauthorized, ae.Code, "the TPM attestation of device %s is signed by another attestation key than the one pinned at enrollment (another TPM, or the TPM was cleared; remove and enroll the device again if that is expected): %v", deviceID, err)
	}
	return refuse(http.StatusUnauthorized, CodeBadAttestation, "the TPM attestation of device %s does not verify: %v", deviceID, err)
}

// noteRefusal records why a known device's sign-in was refused, for the
// device list; a failure to record it is only logged.
func (s *Service) noteRefusal(ctx context.Context, id, msg string, now time.Time) {
	d, err := s.o.Store.GetDevice(ctx, id)
	if err != nil {
		return
	}
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	d.Refusal, d.RefusedAt = msg, now.UTC()
	if err := s.o.Store.PutDevice(context.WithoutCancel(ctx), d); err != nil {
		s.o.Log.Warn("hub: recording a device's refused sign-in", "device", id, "err", err.Error())
	}
}

// hostMismatch says why the signed hub URL is not this hub as the request
// reached it ("" when it is), so a signature made for one hub cannot be
// relayed to another.
func hostMismatch(hubURL, host string) string {
	u, err := url.Parse(hubURL)
	if err != nil || u.Host == "" {
		return "hub_url is not a URL"
	}
	if !strings.EqualFold(u.Host, host) {
		return fmt.Sprintf("the request was signed for hub %q but reached %q: check [hub] url on the edge", u.Host, host)
	}
	return ""
}

// ---- telemetry

// telemetry stores a device's batch: audit entries first (waiting until
// they are written), then the metrics snapshot, the contact and the new
// audit sequence in one compare-and-set, so a batch sent twice is stored
// once: the second finds the sequence moved and gets 409 with where to
// resume.
func (s *Service) telemetry(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	if enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc != "zstd" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "telemetry must be zstd-compressed JSON (Content-Encoding: zstd)")
		return
	}
	if r.ContentLength > MaxCompressedTelemetry {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("telemetry posts are at most %d bytes compressed", MaxCompressedTelemetry))
		return
	}
	counted := &countingReader{r: r.Body}
	b, err := DecodeTelemetry(counted)
	if counted.n > MaxCompressedTelemetry {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("telemetry posts are at most %d bytes compressed", MaxCompressedTelemetry))
		return
	}
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, "invalid_telemetry", err.Error())
		return
	}
	if b.DeviceID != dev.ID {
		writeError(w, http.StatusForbidden, "forbidden", "the batch names another device than the credential's")
		return
	}
	ctx := r.Context()
	if b.AuditFrom != dev.AuditSeq {
		writeJSON(w, http.StatusConflict, map[string]any{
			"error":     map[string]string{"code": "conflict", "message": fmt.Sprintf("the hub has this device's audit entries up to %d; send those after it", dev.AuditSeq)},
			"audit_seq": dev.AuditSeq,
		})
		return
	}
	ip := s.o.ClientIP(r)
	for i := range b.Audit {
		s.o.Audit.Record(ctx, edgeEntry(dev, &b.Audit[i]))
	}
	if len(b.Audit) > 0 {
		if err := s.o.Audit.Flush(ctx); err != nil {
			s.internal(w, "writing the device's audit entries", err)
			return
		}
	}
	var metrics []byte
	if n := len(b.Snapshots); n > 0 {
		latest := struct {
			Snapshot
			Received         time.Time `json:"received_at"`
			DroppedSnapshots int64     `json:"dropped_snapshots"`
		}{b.Snapshots[n-1], s.o.Now().UTC(), b.DroppedSnapshots}
		metrics, _ = json.Marshal(latest)
	}
	to := b.AuditFrom + int64(len(b.Audit))
	err = s.o.Store.RecordDeviceTelemetry(ctx, dev.ID, b.AuditFrom, to, metrics, s.o.Now(), ip)
	if errors.Is(err, store.ErrConflict) {
		cur, _ := s.o.Store.GetDevice(ctx, dev.ID)
		seq := int64(0)
		if cur != nil {
			seq = cur.AuditSeq
		}
		writeJSON(w, http.StatusConflict, map[string]any{
			"error":     map[string]string{"code": "conflict", "message": "another batch of this device was stored meanwhile"},
			"audit_seq": seq,
		})
		return
	}
	if err != nil {
		s.internal(w, "recording telemetry", err)
		return
	}
	writeJSON(w, http.StatusOK, TelemetryResponse{AuditSeq: to, Snapshots: len(b.Snapshots), Audit: len(b.Audit)})
}

// edgeEntry is a device's audit entry as the hub records it: in the
// device's tenant, with the device as actor, the edge's own actor,
// sequence number and detail kept in Detail.
func edgeEntry(dev *store.Device, e *store.AuditEntry) *store.AuditEntry {
	detail := map[string]any{"device": dev.ID, "edge_seq": e.Seq, "edge_actor": e.Actor, "edge_actor_kind": e.ActorKind, "edge_time": e.Time}
	if e.TenantID != "" {
		detail["edge_tenant"] = e.TenantID
	}
	if len(e.Detail) > 0 && json.Valid(e.Detail) {
		detail["detail"] = json.RawMessage(e.Detail)
	}
	d, _ := json.Marshal(detail)
	return &store.AuditEntry{
		TenantID: dev.TenantID, Actor: "device:" + dev.ID, ActorKind: "device",
		Action: "edge." + e.Action, Target: e.Target, Outcome: e.Outcome, LatencyUS: e.LatencyUS, ClientIP: e.ClientIP,
		Detail: d,
	}
}

// device resolves the request's principal to the device it was issued to.
func (s *Service) device(w http.ResponseWriter, r *http.Request) (*store.Device, bool) {
	p := principal.From(r.Context())
	if p == nil {
		writeError(w, http.StatusUnauthorized, "unauthenticated", "sign in as the device first (POST "+PathSession+")")
		return nil, false
	}
	dev, err := s.o.Store.GetDeviceByCredential(r.Context(), p.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusForbidden, "forbidden", "this credential is not a device's current credential: sign in again (POST "+PathSession+")")
		return nil, false
	}
	if err != nil {
		s.internal(w, "looking up the device", err)
		return nil, false
	}
	return dev, true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ---- administration

// TokenRequest is the body of POST /api/hub/tokens.
type TokenRequest struct {
	// Tenant is the tenant's name; "" is the caller's own tenant. Only
	// operators may name another tenant.
	Tenant string `json:"tenant,omitempty"`
	Name   string `json:"name,omitempty"`
	// Uses is how many devices may enroll with the token (default 1).
	Uses int `json:"uses,omitempty"`
	// TTL is how long the token is valid, a Go duration (default 24h).
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse carries the new token, shown once.
type TokenResponse struct {
	store.EnrollToken
	Token string `json:"token"`
}

func (s *Service) createToken(w http.ResponseWriter, r *http.Request) {
	p := principal.From(r.Context())
	if !p.Can(principal.RoleAdmin, principal.ScopeAdminWrite) {
		writeError(w, http.StatusForbidden, "forbidden", "creating enrollment tokens needs an admin with admin:write")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "body_read", err.Error())
		return
	}
	var req TokenRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", err.Error())
		return
	}
	tenantID := p.TenantID
	if req.Tenant != "" && req.Tenant != p.TenantName {
		if !p.Operator {
			writeError(w, http.StatusForbidden, "forbidden", "only operators may create enrollment tokens for another tenant")
			return
		}
		t, err := s.o.Store.GetTenantByName(r.Context(), req.Tenant)
		if err != nil {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("tenant %q not found", req.Tenant))
			return
		}
		tenantID = t.ID
	}
	ttl := DefaultTokenTTL
	if req.TTL != "" {
		ttl, err = time.ParseDuration(req.TTL)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_argument", "ttl: want a duration such as \"24h\", greater than 0 and at most a year")
			return
		}
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if err := CheckTokenRequest(req.Uses, ttl, req.Name); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	resp, err := CreateToken(r.Context(), s.o.Store, tenantID, req.Name, req.Uses, ttl, s.o.Now())
	if err != nil {
		s.internal(w, "creating an enrollment token", err)
		return
	}
	s.audit(r.Context(), "hub.token.create", tenantID, resp.ID, "ok", s.o.ClientIP(r), map[string]any{"uses": resp.Uses, "expires_at": resp.ExpiresAt, "by": p.ID})
	writeJSON(w, http.StatusCreated, resp)
}

// Bounds of an enrollment token.
const (
	MaxTokenUses    = 100000
	MaxTokenTTL     = 366 * 24 * time.Hour
	MaxTokenNameLen = 64
)

// CheckTokenRequest checks an enrollment token's uses, lifetime and
// name; the REST API and the command line give its messages.
func CheckTokenRequest(uses int, ttl time.Duration, name string) error {
	switch {
	case uses < 1 || uses > MaxTokenUses:
		return fmt.Errorf("uses must be between 1 and %d, got %d", MaxTokenUses, uses)
	case ttl <= 0 || ttl > MaxTokenTTL:
		return fmt.Errorf("ttl must be greater than 0 and at most a year (%s), got %s", MaxTokenTTL, ttl)
	case len(name) > MaxTokenNameLen:
		return fmt.Errorf("name must be at most %d bytes, got %d", MaxTokenNameLen, len(name))
	}
	return nil
}

// CreateToken creates an enrollment token for the tenant and returns it
// with its secret (shown once). The CLI uses it directly on the store.
func CreateToken(ctx context.Context, st store.Devices, tenantID, name string, uses int, ttl time.Duration, now time.Time) (*TokenResponse, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	secret := EnrollTokenPrefix + base32Lower(b)
	t := &store.EnrollToken{TenantID: tenantID, Name: name, Hash: TokenHash(secret), Uses: uses, ExpiresAt: now.Add(ttl).UTC()}
	if err := st.CreateEnrollToken(ctx, t); err != nil {
		return nil, err
	}
	return &TokenResponse{EnrollToken: *t, Token: secret}, nil
}

// DeviceView is a device as GET /api/devices lists it.
type DeviceView struct {
	store.Device
	TenantName string `json:"tenant"`
	// PCRs are a TPM device's recorded PCR values (index: hex).
	PCRs map[string]string `json:"pcrs,omitempty"`
	// QueueDepth is the device's offline queue entries waiting for
	// delivery, from its newest metrics snapshot (absent before one).
	QueueDepth *int64 `json:"queue_depth,omitempty"`
}

// view adds what the device list shows beyond the stored device.
func view(d store.Device, tenant string) DeviceView {
	v := DeviceView{Device: d, TenantName: tenant}
	if d.PCRs != nil {
		v.PCRs = make(map[string]string, len(d.PCRs))
		for i, val := range d.PCRs {
			v.PCRs[strconv.Itoa(i)] = hex.EncodeToString(val)
		}
	}
	var m struct {
		QueueDepth *int64 `json:"queue_depth"`
	}
	if len(d.Metrics) > 0 && json.Unmarshal(d.Metrics, &m) == nil {
		v.QueueDepth = m.QueueDepth
	}
	return v
}

// DeviceDetail is GET /api/devices/{id}: the device and its latest
// metrics snapshot.
type DeviceDetail struct {
	DeviceView
	Metrics json.RawMessage `json:"metrics,omitempty"`
}

func (s *Service) canRead(w http.ResponseWriter, r *http.Request) (*principal.Principal, bool) {
	p := principal.From(r.Context())
	if !p.Can(principal.RoleAdmin, principal.ScopeAdminRead) {
		writeError(w, http.StatusForbidden, "forbidden", "listing devices needs an admin with admin:read")
		return nil, false
	}
	return p, true
}

func (s *Service) listDevices(w http.ResponseWriter, r *http.Request) {
	p, ok := s.canRead(w, r)
	if !ok {
		return
	}
	tenantID := p.TenantID
	if p.Operator {
		tenantID = ""
	}
	views, err := ListDevices(r.Context(), s.o.Store, tenantID)
	if err != nil {
		s.internal(w, "listing devices", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": views})
}

// ListDevices lists the devices of a tenant ("" all) with their tenants'
// names.
func ListDevices(ctx context.Context, st store.Store, tenantID string) ([]DeviceView, error) {
	ds, err := st.ListDevices(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	views := make([]DeviceView, 0, len(ds))
	for _, d := range ds {
		n, ok := names[d.TenantID]
		if !ok {
			if t, err := st.GetTenant(ctx, d.TenantID); err == nil {
				n = t.Name
			}
			names[d.TenantID] = n
		}
		views = append(views, view(d, n))
	}
	return views, nil
}

func (s *Service) getDevice(w http.ResponseWriter, r *http.Request) {
	p, ok := s.canRead(w, r)
	if !ok {
		return
	}
	d, ok := s.lookupDevice(w, r, p)
	if !ok {
		return
	}
	tenant := ""
	if t, err := s.o.Store.GetTenant(r.Context(), d.TenantID); err == nil {
		tenant = t.Name
	}
	v := DeviceDetail{DeviceView: view(*d, tenant)}
	if len(d.Metrics) > 0 {
		v.Metrics = d.Metrics
	}
	writeJSON(w, http.StatusOK, v)
}

// deleteDevice removes a device and revokes its current credential: it
// can no longer sign in, and enrolling again needs a new enrollment
// token. Its audit entries stay.
func (s *Service) deleteDevice(w http.ResponseWriter, r *http.Request) {
	p := principal.From(r.Context())
	if !p.Can(principal.RoleAdmin, principal.ScopeAdminWrite) {
		writeError(w, http.StatusForbidden, "forbidden", "removing devices needs an admin with admin:write")
		return
	}
	d, ok := s.lookupDevice(w, r, p)
	if !ok {
		return
	}
	if err := RemoveDevice(r.Context(), s.o.Store, s.o.Credentials.RevokeKey, d, s.o.Log); err != nil {
		s.internal(w, "removing a device", err)
		return
	}
	s.audit(r.Context(), "hub.device.delete", d.TenantID, d.ID, "ok", s.o.ClientIP(r), map[string]any{"name": d.Name})
	w.WriteHeader(http.StatusNoContent)
}

// RemoveDevice removes an enrolled device and revokes the credential it
// signs in with (a failed revocation is logged: the device record is
// gone, so the credential can not sign in as it any more). revoke is the
// credential service's RevokeKey.
func RemoveDevice(ctx context.Context, st store.Devices, revoke func(ctx context.Context, tenantID, keyID string) error, d *store.Device, log *slog.Logger) error {
	if err := st.DeleteDevice(ctx, d.TenantID, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if d.CredKeyID != "" {
		if err := revoke(context.WithoutCancel(ctx), d.TenantID, d.CredKeyID); err != nil && !errors.Is(err, store.ErrNotFound) {
			log.Warn("revoking a removed device's credential", "device", d.ID, "key", d.CredKeyID, "err", err.Error())
		}
	}
	return nil
}

// DevicePatch is the body of PATCH /api/devices/{id}.
type DevicePatch struct {
	// PCRPolicy is "enrolled" ("" means the same) or "off".
	PCRPolicy *string `json:"pcr_policy"`
}

// patchDevice changes a device's PCR policy.
func (s *Service) patchDevice(w http.ResponseWriter, r *http.Request) {
	d, p, ok := s.writableDevice(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "body_read", err.Error())
		return
	}
	var req DevicePatch
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", err.Error())
		return
	}
	if req.PCRPolicy == nil {
		writeError(w, http.StatusBadRequest, "invalid_argument", `nothing to change: give "pcr_policy" ("enrolled" or "off")`)
		return
	}
	pol, err := ParsePCRPolicy(*req.PCRPolicy)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if err := SetPCRPolicy(r.Context(), s.o.Store, d, pol); err != nil {
		s.internal(w, "changing a device", err)
		return
	}
	s.audit(r.Context(), "hub.device.pcr_policy", d.TenantID, d.ID, "ok", s.o.ClientIP(r), map[string]any{"pcr_policy": displayPolicy(pol), "by": p.ID})
	s.writeDevice(w, r, d)
}

// reapproveDevice accepts the PCR values of the device's next
// attestation (after a legitimate change such as a firmware update).
func (s *Service) reapproveDevice(w http.ResponseWriter, r *http.Request) {
	d, p, ok := s.writableDevice(w, r)
	if !ok {
		return
	}
	if err := Reapprove(r.Context(), s.o.Store, d); err != nil {
		if errors.Is(err, ErrNotTPM) {
			writeError(w, http.StatusConflict, "not_tpm", err.Error())
			return
		}
		s.internal(w, "re-approving a device", err)
		return
	}
	s.audit(r.Context(), "hub.device.reapprove", d.TenantID, d.ID, "ok", s.o.ClientIP(r), map[string]any{"by": p.ID})
	s.writeDevice(w, r, d)
}

func (s *Service) writableDevice(w http.ResponseWriter, r *http.Request) (*store.Device, *principal.Principal, bool) {
	p := principal.From(r.Context())
	if !p.Can(principal.RoleAdmin, principal.ScopeAdminWrite) {
		writeError(w, http.StatusForbidden, "forbidden", "changing devices needs an admin with admin:write")
		return nil, nil, false
	}
	d, ok := s.lookupDevice(w, r, p)
	if !ok {
		return nil, nil, false
	}
	return d, p, true
}

// lookupDevice returns the device of the path's {id}, answering 404 when
// there is none or it is another tenant's and p is no operator.
func (s *Service) lookupDevice(w http.ResponseWriter, r *http.Request, p *principal.Principal) (*store.Device, bool) {
	id := r.PathValue("id")
	d, err := s.o.Store.GetDevice(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.Operator && d.TenantID != p.TenantID) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("device %q not found", clip(id)))
		return nil, false
	}
	if err != nil {
		s.internal(w, "getting a device", err)
		return nil, false
	}
	return d, true
}

func (s *Service) writeDevice(w http.ResponseWriter, r *http.Request, d *store.Device) {
	tenant := ""
	if t, err := s.o.Store.GetTenant(r.Context(), d.TenantID); err == nil {
		tenant = t.Name
	}
	writeJSON(w, http.StatusOK, view(*d, tenant))
}

// ErrNotTPM: the device's key is not in a TPM, so it has no PCRs.
var ErrNotTPM = errors.New("the device's key is not in a TPM: it has no PCR values to approve")

// Reapprove marks a TPM device so that its next attestation's PCR values
// are accepted and recorded (the CLI uses it directly on the store).
func Reapprove(ctx context.Context, st store.Devices, d *store.Device) error {
	if d.Kind != "tpm" {
		return ErrNotTPM
	}
	d.Reapprove = true
	return st.PutDevice(ctx, d)
}

// ParsePCRPolicy checks a PCR policy: "enrolled" (stored as "", the
// default) or "off".
func ParsePCRPolicy(s string) (string, error) {
	switch s {
	case "", PCRPolicyEnrolled:
		return "", nil
	case PCRPolicyOff:
		return PCRPolicyOff, nil
	}
	return "", fmt.Errorf("pcr_policy %q: want %q (PCR values must stay those recorded at enrollment) or %q (recorded, not enforced)", clip(s), PCRPolicyEnrolled, PCRPolicyOff)
}

// SetPCRPolicy stores a device's PCR policy (from ParsePCRPolicy).
func SetPCRPolicy(ctx context.Context, st store.Devices, d *store.Device, policy string) error {
	d.PCRPolicy = policy
	return st.PutDevice(ctx, d)
}

func displayPolicy(p string) string {
	if p == "" {
		return PCRPolicyEnrolled
	}
	return p
}

// ---- helpers

func (s *Service) audit(ctx context.Context, action, tenantID, target, outcome, ip string, detail map[string]any) {
	if s.o.Audit == nil {
		return
	}
	d, _ := json.Marshal(detail)
	actor, kind := "anonymous", principal.KindAnonymous
	if p := principal.From(ctx); p != nil {
		actor, kind = p.ID, p.Kind
	} else if target != "" && (action == "hub.enroll" || action == "hub.session") {
		actor, kind = "device:"+target, "device"
	}
	s.o.Audit.Record(ctx, &store.AuditEntry{TenantID: tenantID, Actor: actor, ActorKind: kind, Action: action, Target: target, Outcome: outcome, ClientIP: ip, Detail: d})
}

func (s *Service) internal(w http.ResponseWriter, what string, err error) {
	s.o.Log.Error("hub: "+what, "err", err.Error())
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", what+": the request was cancelled")
		return
	}
	writeError(w, http.StatusInternalServerError, "internal", what+" failed; see the hub's log")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the admin API's error form.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func base32Lower(b []byte) string {
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// InUse reports whether this gateway acts as a hub: its store holds
// enrolled devices or enrollment tokens. A store that cannot answer in a
// second counts as in use (the warning is then given rather than lost).
func InUse(st store.Store) bool {
	if st == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	devs, err := st.ListDevices(ctx, "")
	if err != nil || len(devs) > 0 {
		return true
	}
	toks, err := st.ListEnrollTokens(ctx, "")
	return err != nil || len(toks) > 0
}
