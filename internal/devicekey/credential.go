package devicekey

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Credential activation binds an AK to an EK: the verifier encrypts a
// secret to the EK, bound to the AK's name (TPM2_MakeCredential, done
// here in pure Go by go-tpm's CreateCredential), and only the TPM that
// holds that EK and a loaded object with that name can recover it
// (TPM2_ActivateCredential). A software AK presented with a real TPM's
// EK cannot answer: the TPM refuses to release the secret for an object
// it does not hold.

// MaxCredentialSecret is the longest secret MakeCredential accepts: a
// TPM2B_DIGEST of the name algorithm (SHA-256).
const MaxCredentialSecret = 32

// ErrActivation: the TPM could not activate the credential (it was made
// for another EK or another AK, or was tampered with).
var ErrActivation = errors.New("devicekey: the TPM could not activate the credential (made for another EK or AK)")

// MakeCredential encrypts secret to the EK ekPublic (a TPMT_PUBLIC, as in
// Attestation.EKPublic) for the AK akPublic (Attestation.AKPublic). It
// returns the TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET contents for
// [CredentialActivator.ActivateCredential]. The EK must be a restricted
// decryption key that cannot leave its TPM.
func MakeCredential(ekPublic, akPublic, secret []byte) (credentialBlob, encSecret []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			credentialBlob, encSecret, err = nil, nil, fmt.Errorf("%w: %v", ErrMalformed, r)
		}
	}()
	if len(secret) == 0 || len(secret) > MaxCredentialSecret {
		return nil, nil, fmt.Errorf("devicekey: credential secret is %d bytes, want 1..%d", len(secret), MaxCredentialSecret)
	}
	ek, err := unmarshal[tpm2.TPMTPublic](ekPublic, "ek_public")
	if err != nil {
		return nil, nil, err
	}
	if a := ek.ObjectAttributes; !a.Restricted || !a.Decrypt || a.SignEncrypt || !a.FixedTPM || !a.FixedParent {
		return nil, nil, fmt.Errorf("%w: ek_public is not a restricted decryption key bound to its TPM", ErrMalformed)
	}
	ak, err := unmarshal[tpm2.TPMTPublic](akPublic, "ak_public")
	if err != nil {
		return nil, nil, err
	}
	name, err := tpm2.ObjectName(ak)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ak_public: %v", ErrMalformed, err)
	}
	kem, err := tpm2.ImportEncapsulationKey(ek)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ek_public: %v", ErrMalformed, err)
	}
	return tpm2.CreateCredential(rand.Reader, kem, name.Buffer, secret)
}

// CredentialActivator is implemented by keys in a TPM.
type CredentialActivator interface {
	// ActivateCredential recovers the secret of a credential that
	// MakeCredential made for this TPM's EK and AK; ErrActivation if it
	// was made for another.
	ActivateCredential(credentialBlob, encSecret []byte) ([]byte, error)
}

// ActivateCredential runs TPM2_ActivateCredential with this TPM's AK (the
// fixed template Attest uses) and EK (the one Attest presents, see
// openEK; authorized by a PolicySecret session on the endorsement
// hierarchy).
func (k *tpmKey) ActivateCredential(credentialBlob, encSecret []byte) ([]byte, error) {
	if len(credentialBlob) == 0 || len(credentialBlob) > 1024 || len(encSecret) == 0 || len(encSecret) > 1024 {
		return nil, fmt.Errorf("devicekey: credential of %d and secret of %d bytes, want 1..1024 each", len(credentialBlob), len(encSecret))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.t == nil {
		return nil, errors.New("devicekey: key is closed")
	}
	t := k.t
	fail := func(what string, err error) error {
		return fmt.Errorf("devicekey: TPM %s: %s: %w", k.dev, what, err)
	}
	// The device key holds one object slot; EK and AK take the other two
	// a TPM without a resource manager may have.
	ek, err := openEK(t)
	if err != nil {
		return nil, fail("create the endorsement key", err)
	}
	defer ek.close()
	ak, err := createPrimary(t, tpm2.TPMRHEndorsement, akTemplate)
	if err != nil {
		return nil, fail("create the attestation key", err)
	}
	defer flush(t, ak.ObjectHandle)
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: ak.ObjectHandle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle: tpm2.AuthHandle{Handle: ek.handle, Name: ek.name,
			Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, endorsementPolicy)},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: credentialBlob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encSecret},
	}.Execute(t)
	if err != nil {
		var te tpm2.TPMRC
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%w: %v", ErrActivation, err)
		}
		return nil, fail("activate the credential", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// endorsementPolicy satisfies the TCG EK's policy: PolicySecret with the
// endorsement hierarchy's (empty) authorization.
func endorsementPolicy(t transport.TPM, handle tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
	_, err := tpm2.PolicySecret{
		AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		PolicySession: handle,
		NonceTPM:      nonceTPM,
	}.Execute(t)
	return err
}
