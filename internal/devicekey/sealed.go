package devicekey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/google/go-tpm/tpm2"

	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// TPMSealedKey is a sealbox.KeySource whose master key is sealed to the
// TPM that o.TPM names (or finds, with "auto"): 32 random bytes, made
// once and kept in <DataDir>/master.tpm as a TPM sealed data object under
// the storage root key. Only that TPM can unseal it, so a copy of the data
// directory (a stolen disk, a backup) is useless elsewhere.
//
// The object is not bound to PCR values: a firmware or boot loader update
// would change them and lose every secret the master key protects, with
// no way back. Whether the device booted what it should is for the hub to
// judge from an attestation ([Key.Attest], [Verify]), where a mismatch is
// reported and can be fixed, not a locked-out device.
//
// With "off", or "auto" on a device without a TPM, MasterKey fails: the
// caller should choose a file or environment key ([DefaultMaster]) then.
func TPMSealedKey(o Options) sealbox.KeySource {
	if o.DataDir == "" {
		return sealedKey{tpm: o.TPM}
	}
	return sealedKey{tpm: o.TPM, path: filepath.Join(o.DataDir, SealedMasterName)}
}

// TPMSealedKeyFile is TPMSealedKey with the sealed object kept at path:
// one master key per purpose (the store's secrets, the offline queue)
// keeps them apart. tpm is as in Options.TPM.
func TPMSealedKeyFile(tpm, path string) sealbox.KeySource {
	return sealedKey{tpm: tpm, path: path}
}

type sealedKey struct {
	tpm, path string
}

func (s sealedKey) String() string {
	return "TPM-sealed key " + s.path
}

func (s sealedKey) MasterKey(ctx context.Context) (_ []byte, err error) {
	if s.path == "" {
		return nil, errors.New("devicekey: no data directory for the TPM-sealed master key: set [server] data_dir")
	}
	dev, err := tpmPath(s.tpm)
	if err != nil {
		return nil, err
	}
	if dev == "" {
		return nil, fmt.Errorf("devicekey: %s: no TPM (tpm = %q; %s does not exist): use a key file or environment variable instead", s, s.tpm, DefaultTPMDevice)
	}
	t, err := openTransport(dev)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	srk, err := createPrimary(t, tpm2.TPMRHOwner, srkTemplate)
	if err != nil {
		return nil, fmt.Errorf("devicekey: TPM %s: create the storage root key: %w", dev, err)
	}
	defer flush(t, srk.ObjectHandle)

	var fresh []byte // the secret, when this call made it
	blob, err := loadOrCreateBlob(s.path, formatMaster, func() (*tpmBlob, error) {
		fresh = make([]byte, sealbox.KeySize)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		rsp, err := tpm2.Create{
			ParentHandle: srkHandle(srk),
			InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
				Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: fresh}),
			}},
			InPublic: tpm2.New2B(sealTemplate),
		}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("devicekey: TPM %s: seal a new master key: %w", dev, err)
		}
		return &tpmBlob{Format: formatMaster, Public: rsp.OutPublic.Bytes(), Private: rsp.OutPrivate.Buffer}, nil
	})
	if fresh != nil {
		defer clear(fresh)
	}
	if err != nil {
		return nil, err
	}
	loaded, err := tpm2.Load{
		ParentHandle: srkHandle(srk),
		InPrivate:    tpm2.TPM2BPrivate{Buffer: blob.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](blob.Public),
	}.Execute(t)
	if err != nil && !isForeign(err) {
		return nil, fmt.Errorf("devicekey: TPM %s: load %s: %w", dev, s.path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("devicekey: TPM %s cannot load %s: it was sealed by another TPM, or this TPM was cleared (%w); the master key, and what it encrypts, cannot be recovered", dev, s.path, err)
	}
	defer flush(t, loaded.ObjectHandle)
	rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: loaded.ObjectHandle, Name: loaded.Name, Auth: tpm2.PasswordAuth(nil)}}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("devicekey: TPM %s: unseal %s: %w", dev, s.path, err)
	}
	key := rsp.OutData.Buffer
	if len(key) != sealbox.KeySize {
		clear(key)
		return nil, fmt.Errorf("devicekey: %s unseals to %d bytes, want %d", s.path, len(key), sealbox.KeySize)
	}
	return key, nil
}

// sealTemplate is a sealed data object: a keyed-hash object with no
// scheme whose sensitive data is the caller's secret. It can be unsealed
// with its (empty) auth value, but only in the TPM that holds the SRK it
// was created under (fixedTPM, fixedParent).
var sealTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgKeyedHash,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:     true,
		FixedParent:  true,
		UserWithAuth: true,
		NoDA:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
		Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
	}),
}

// ExtendPCR extends the sha256 bank of PCR pcr in the TPM named by tpm
// with SHA-256(data), as a measurement: use an application PCR (16 is the
// debug PCR, 23 the application PCR on PC-client TPMs) to bind something,
// such as a configuration, into later attestations. A PCR can only be
// extended, never set; it returns to its initial value when the TPM
// resets.
func ExtendPCR(ctx context.Context, tpm string, pcr int, data []byte) error {
	if pcr < 0 || pcr > MaxPCR {
		return fmt.Errorf("devicekey: PCR %d is out of range 0..%d", pcr, MaxPCR)
	}
	dev, err := tpmPath(tpm)
	if err != nil {
		return err
	}
	if dev == "" {
		return fmt.Errorf("devicekey: no TPM to extend PCR %d in (tpm = %q)", pcr, tpm)
	}
	t, err := openTransport(dev)
	if err != nil {
		return err
	}
	defer t.Close()
	sum := sha256.Sum256(data)
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: sum[:]}}},
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("devicekey: TPM %s: extend PCR %d: %w", dev, pcr, err)
	}
	return nil
}
