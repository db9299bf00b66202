package devicekey

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// AttestationVersion is the version of the Attestation format.
const AttestationVersion = 1

// MaxNonce is the longest nonce accepted. A TPM limits qualifying data
// to sizeof(TPMT_HA) of its largest hash, so 32 bytes (a SHA-256 digest)
// is what every TPM 2.0 takes. Verifiers should issue 32 random bytes.
const MaxNonce = 32

// Attestation is evidence, for a verifier that issued a nonce, that a
// device key lives in a TPM and what that TPM measured. Every byte field
// is a TPM structure in the TPM's own big-endian encoding (base64 in
// JSON), so a verifier checks exactly what the TPM signed.
type Attestation struct {
	// Version is AttestationVersion.
	Version int `json:"version"`
	// AKPublic is the attestation key's TPMT_PUBLIC: a restricted ECC
	// P-256 signing key in the endorsement hierarchy, created from a
	// fixed template, so the same TPM always has the same AK.
	AKPublic []byte `json:"ak_public"`
	// EKPublic is the endorsement key's TPMT_PUBLIC (TCG ECC P-256 EK
	// template, or the RSA 2048 one when only that EK is certified), and
	// EKCert its certificate (DER) when the TPM's NV holds one. The
	// attestation itself does not bind the AK to the EK: a verifier does
	// that with a credential activation (MakeCredential), and checks
	// EKCert with EKRoots.VerifyEKCert (see docs/device-identity.md).
	EKPublic []byte `json:"ek_public,omitempty"`
	EKCert   []byte `json:"ek_cert,omitempty"`
	// KeyPublic is the device key's TPMT_PUBLIC.
	KeyPublic []byte `json:"key_public"`
	// Certify is the TPMS_ATTEST of TPM2_Certify(device key, AK) with
	// the nonce as qualifying data; CertifySig is the AK's TPMT_SIGNATURE
	// over it.
	Certify    []byte `json:"certify"`
	CertifySig []byte `json:"certify_sig"`
	// Quote is the TPMS_ATTEST of TPM2_Quote(AK, PCRs) with the nonce as
	// qualifying data; QuoteSig is the AK's TPMT_SIGNATURE over it.
	Quote    []byte `json:"quote"`
	QuoteSig []byte `json:"quote_sig"`
	// PCRs are the quoted sha256-bank PCR values (the quote holds only
	// their digest).
	PCRs map[int][]byte `json:"pcrs"`
}

// Policy is what a verifier (the hub) expects of an attestation.
//
// Freshness comes from the nonce alone: the verifier issues a random nonce
// per attempt, keeps it only briefly, and passes it to Verify; an
// attestation made for any other nonce is refused with ErrStaleNonce.
// There is no time limit inside the evidence (a TPM's clock is not
// wall-clock time), so Policy has no MaxAge.
type Policy struct {
	// PCRs are the expected sha256 PCR values. Nil means record and do
	// not enforce; every PCR listed must have been quoted and match.
	PCRs map[int][]byte
	// AK is the pinned AK public area (Verified.AK from enrollment). Nil
	// on first enrollment accepts any well-formed AK.
	AK []byte
}

// Verified is what Verify established.
type Verified struct {
	// AK is the AK's TPMT_PUBLIC, to pin in Policy.AK from now on.
	AK []byte
	// AKPublic is the AK as a Go key.
	AKPublic *ecdsa.PublicKey
	// EKPublic and EKCert are copied from the attestation, unverified.
	EKPublic []byte
	EKCert   []byte
	// PCRs are the quoted PCR values, checked against the quote.
	PCRs map[int][]byte
	// Clock (ms the TPM has been powered), ResetCount (boots since the
	// TPM was cleared), RestartCount and FirmwareVersion are from the
	// quote: a ResetCount that goes down means the TPM was cleared.
	Clock           uint64
	ResetCount      uint32
	RestartCount    uint32
	FirmwareVersion uint64
}

// Verification errors. Verify wraps them with detail; test with
// errors.Is.
var (
	// ErrMalformed: the attestation is not well-formed (missing fields,
	// structures that do not parse, an unsupported version).
	ErrMalformed = errors.New("devicekey: malformed attestation")
	// ErrBadSignature: a signature does not verify under the AK, or the
	// reported PCR values are not the ones the TPM signed.
	ErrBadSignature = errors.New("devicekey: attestation signature does not verify")
	// ErrStaleNonce: the evidence was made for another nonce (a replay,
	// or an answer to an earlier challenge).
	ErrStaleNonce = errors.New("devicekey: attestation is not for this nonce (stale or replayed)")
	// ErrUncertifiedKey: the AK did not certify this device key, or the
	// certified key may leave the TPM.
	ErrUncertifiedKey = errors.New("devicekey: device key is not certified by the attestation key")
	// ErrPCRMismatch: a PCR differs from the policy's value (see
	// PCRMismatchError for which).
	ErrPCRMismatch = errors.New("devicekey: PCR value does not match the policy")
	// ErrAKMismatch: the AK is not the pinned one, or is not a
	// restricted, non-exportable signing key.
	ErrAKMismatch = errors.New("devicekey: attestation key is not the expected one")
)

// PCRMismatchError names the PCR that does not match.
type PCRMismatchError struct {
	PCR       int
	Want, Got []byte // Got is nil when the PCR was not quoted
}

func (e *PCRMismatchError) Error() string {
	if e.Got == nil {
		return fmt.Sprintf("devicekey: PCR %d is required by the policy but was not quoted", e.PCR)
	}
	return fmt.Sprintf("devicekey: PCR %d is %s, policy expects %s", e.PCR, hex.EncodeToString(e.Got), hex.EncodeToString(e.Want))
}

func (e *PCRMismatchError) Is(target error) bool { return target == ErrPCRMismatch }

// ParseAttestation decodes an attestation from JSON (as a hub receives
// it), with its size and shape checked, but not its content: call Verify.
func ParseAttestation(b []byte) (*Attestation, error) {
	if len(b) > maxAttestationJSON {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), maxAttestationJSON)
	}
	var a Attestation
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &a, nil
}

// maxAttestationJSON bounds an attestation's JSON: a real one with an EK
// certificate is a few KiB.
const maxAttestationJSON = 64 << 10

// Verify checks att against the device's public key, the nonce the
// verifier issued, and the policy. It returns an error wrapping one of
// ErrMalformed, ErrBadSignature, ErrStaleNonce, ErrUncertifiedKey,
// ErrAKMismatch or ErrPCRMismatch, checked in that order, so a replayed
// attestation (valid signatures, old nonce) is ErrStaleNonce.
func Verify(att *Attestation, devicePub crypto.PublicKey, nonce []byte, p Policy) (v *Verified, err error) {
	// The TPM structure decoders work by reflection on attacker-chosen
	// bytes; a panic in them must not take the verifier down.
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%w: %v", ErrMalformed, r)
		}
	}()
	if att == nil {
		return nil, fmt.Errorf("%w: no attestation", ErrMalformed)
	}
	if att.Version != AttestationVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, att.Version, AttestationVersion)
	}
	if len(nonce) == 0 || len(nonce) > MaxNonce {
		return nil, fmt.Errorf("devicekey: verifier nonce is %d bytes, want 1..%d", len(nonce), MaxNonce)
	}
	dev, ok := devicePub.(*ecdsa.PublicKey)
	if !ok || dev == nil {
		return nil, fmt.Errorf("devicekey: device public key is %T, want *ecdsa.PublicKey", devicePub)
	}

	// The AK: well-formed, restricted, non-exportable, and the pinned one.
	akArea, err := unmarshal[tpm2.TPMTPublic](att.AKPublic, "ak_public")
	if err != nil {
		return nil, err
	}
	ak, err := eccPublic(akArea)
	if err != nil {
		return nil, fmt.Errorf("%w: ak_public: %v", ErrMalformed, err)
	}

	// Signatures first: nothing in the evidence means anything until
	// the AK has signed it.
	quote, err := verifyAttest(ak, att.Quote, att.QuoteSig, "quote")
	if err != nil {
		return nil, err
	}
	cert, err := verifyAttest(ak, att.Certify, att.CertifySig, "certify")
	if err != nil {
		return nil, err
	}

	// Freshness.
	if !bytes.Equal(quote.ExtraData.Buffer, nonce) {
		return nil, fmt.Errorf("%w: the quote was made for another nonce", ErrStaleNonce)
	}
	if !bytes.Equal(cert.ExtraData.Buffer, nonce) {
		return nil, fmt.Errorf("%w: the certification was made for another nonce", ErrStaleNonce)
	}

	// The device key: certified by the AK, non-exportable, and the key
	// the device presented.
	if cert.Type != tpm2.TPMSTAttestCertify {
		return nil, fmt.Errorf("%w: certify is a %#x attestation, not TPM2_Certify", ErrUncertifiedKey, uint16(cert.Type))
	}
	ci, err := cert.Attested.Certify()
	if err != nil {
		return nil, fmt.Errorf("%w: certify: %v", ErrMalformed, err)
	}
	keyArea, err := unmarshal[tpm2.TPMTPublic](att.KeyPublic, "key_public")
	if err != nil {
		return nil, err
	}
	keyName, err := tpm2.ObjectName(keyArea)
	if err != nil {
		return nil, fmt.Errorf("%w: key_public: %v", ErrMalformed, err)
	}
	if !bytes.Equal(keyName.Buffer, ci.Name.Buffer) {
		return nil, fmt.Errorf("%w: the AK certified another key (name %x, key_public has name %x)", ErrUncertifiedKey, ci.Name.Buffer, keyName.Buffer)
	}
	if a := keyArea.ObjectAttributes; !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.SignEncrypt {
		return nil, fmt.Errorf("%w: the certified key may leave the TPM or was not generated in it (fixedTPM %v, fixedParent %v, sensitiveDataOrigin %v, sign %v)",
			ErrUncertifiedKey, a.FixedTPM, a.FixedParent, a.SensitiveDataOrigin, a.SignEncrypt)
	}
	certified, err := eccPublic(keyArea)
	if err != nil {
		return nil, fmt.Errorf("%w: key_public: %v", ErrMalformed, err)
	}
	if !certified.Equal(dev) {
		return nil, fmt.Errorf("%w: the certified TPM key is not the device key presented", ErrUncertifiedKey)
	}

	// The AK itself.
	if a := akArea.ObjectAttributes; !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
		return nil, fmt.Errorf("%w: the AK is not a restricted, non-exportable signing key", ErrAKMismatch)
	}
	if p.AK != nil && !bytes.Equal(p.AK, att.AKPublic) {
		return nil, fmt.Errorf("%w: the AK differs from the one pinned at enrollment (another TPM, or the TPM was cleared)", ErrAKMismatch)
	}

	// PCRs: the reported values are the quoted ones, then the policy.
	if quote.Type != tpm2.TPMSTAttestQuote {
		return nil, fmt.Errorf("%w: quote is a %#x attestation, not TPM2_Quote", ErrMalformed, uint16(quote.Type))
	}
	qi, err := quote.Attested.Quote()
	if err != nil {
		return nil, fmt.Errorf("%w: quote: %v", ErrMalformed, err)
	}
	quoted, err := selectedPCRs(qi.PCRSelect)
	if err != nil {
		return nil, err
	}
	if len(att.PCRs) != len(quoted) {
		return nil, fmt.Errorf("%w: %d PCR values reported, %d quoted", ErrBadSignature, len(att.PCRs), len(quoted))
	}
	h := sha256.New()
	for _, i := range quoted {
		val, ok := att.PCRs[i]
		if !ok || len(val) != sha256.Size {
			return nil, fmt.Errorf("%w: PCR %d is quoted but its value is not reported", ErrBadSignature, i)
		}
		h.Write(val)
	}
	if !bytes.Equal(h.Sum(nil), qi.PCRDigest.Buffer) {
		return nil, fmt.Errorf("%w: the reported PCR values are not the ones the TPM quoted", ErrBadSignature)
	}
	for _, i := range sortedKeys(p.PCRs) {
		got, ok := att.PCRs[i]
		if !ok {
			return nil, &PCRMismatchError{PCR: i, Want: p.PCRs[i]}
		}
		if !bytes.Equal(got, p.PCRs[i]) {
			return nil, &PCRMismatchError{PCR: i, Want: p.PCRs[i], Got: got}
		}
	}

	pcrs := make(map[int][]byte, len(att.PCRs))
	for i, v := range att.PCRs {
		pcrs[i] = slices.Clone(v)
	}
	return &Verified{
		AK:              slices.Clone(att.AKPublic),
		AKPublic:        ak,
		EKPublic:        slices.Clone(att.EKPublic),
		EKCert:          slices.Clone(att.EKCert),
		PCRs:            pcrs,
		Clock:           quote.ClockInfo.Clock,
		ResetCount:      quote.ClockInfo.ResetCount,
		RestartCount:    quote.ClockInfo.RestartCount,
		FirmwareVersion: quote.FirmwareVersion,
	}, nil
}

// verifyAttest checks sig (a TPMT_SIGNATURE, ECDSA with SHA-256) over
// the attest bytes under ak and returns the parsed TPMS_ATTEST.
func verifyAttest(ak *ecdsa.PublicKey, attest, sig []byte, field string) (*tpm2.TPMSAttest, error) {
	if len(attest) == 0 || len(sig) == 0 {
		return nil, fmt.Errorf("%w: %s or its signature is missing", ErrMalformed, field)
	}
	s, err := unmarshal[tpm2.TPMTSignature](sig, field+"_sig")
	if err != nil {
		return nil, err
	}
	if s.SigAlg != tpm2.TPMAlgECDSA {
		return nil, fmt.Errorf("%w: %s is signed with algorithm %#x, want ECDSA", ErrBadSignature, field, uint16(s.SigAlg))
	}
	e, err := s.Signature.ECDSA()
	if err != nil || e.Hash != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("%w: %s signature is not ECDSA with SHA-256", ErrBadSignature, field)
	}
	digest := sha256.Sum256(attest)
	r := new(big.Int).SetBytes(e.SignatureR.Buffer)
	ss := new(big.Int).SetBytes(e.SignatureS.Buffer)
	if !ecdsa.Verify(ak, digest[:], r, ss) {
		return nil, fmt.Errorf("%w: %s", ErrBadSignature, field)
	}
	a, err := unmarshal[tpm2.TPMSAttest](attest, field)
	if err != nil {
		return nil, err
	}
	if a.Magic != tpm2.TPMGeneratedValue {
		return nil, fmt.Errorf("%w: %s was not generated by a TPM", ErrMalformed, field)
	}
	return a, nil
}

// selectedPCRs returns the PCR indexes a quote's selection names: one
// sha256 bank only.
func selectedPCRs(sel tpm2.TPMLPCRSelection) ([]int, error) {
	if len(sel.PCRSelections) != 1 || sel.PCRSelections[0].Hash != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("%w: the quote does not select exactly the sha256 PCR bank", ErrMalformed)
	}
	var out []int
	for byteIdx, b := range sel.PCRSelections[0].PCRSelect {
		for bit := 0; bit < 8; bit++ {
			if b&(1<<bit) != 0 {
				out = append(out, byteIdx*8+bit)
			}
		}
	}
	return out, nil
}

// unmarshal parses a TPM structure that must fill b exactly.
func unmarshal[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte, field string) (_ *T, err error) {
	// The decoder works by reflection on bytes from outside; whatever
	// it may panic on is malformed input, not a reason to crash.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrMalformed, field, r)
		}
	}()
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: %s is missing", ErrMalformed, field)
	}
	v, err := tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	if !bytes.Equal(tpm2.Marshal(*v), b) {
		return nil, fmt.Errorf("%w: %s has trailing or non-canonical bytes", ErrMalformed, field)
	}
	return v, nil
}

// eccPublic returns the P-256 key of a TPMT_PUBLIC, checked to be on the
// curve.
func eccPublic(p *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	if p.Type != tpm2.TPMAlgECC {
		return nil, fmt.Errorf("key type %#x, want ECC", uint16(p.Type))
	}
	parms, err := p.Parameters.ECCDetail()
	if err != nil {
		return nil, err
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("curve %#x, want NIST P-256", uint16(parms.CurveID))
	}
	pt, err := p.Unique.ECC()
	if err != nil {
		return nil, err
	}
	if len(pt.X.Buffer) > 32 || len(pt.Y.Buffer) > 32 {
		return nil, errors.New("point coordinates are longer than 32 bytes")
	}
	raw := make([]byte, 65)
	raw[0] = 4
	copy(raw[1+32-len(pt.X.Buffer):33], pt.X.Buffer)
	copy(raw[33+32-len(pt.Y.Buffer):], pt.Y.Buffer)
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
}

func sortedKeys(m map[int][]byte) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
