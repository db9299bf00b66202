// Package devicekey gives an edge device a stable identity: an ECDSA P-256
// signing key that lives in a TPM 2.0 when the device has one, and in a
// file encrypted under a master key otherwise.
//
// A TPM key is created inside the TPM (it never leaves it in the clear)
// under the owner hierarchy's storage root key and can be attested to a
// verifier: [Key.Attest] returns a TPM2_Certify of the key and a
// TPM2_Quote of the platform configuration registers (PCRs), both signed
// by an attestation key (AK) and both carrying the verifier's fresh nonce,
// and [Verify] checks such evidence. A file key signs just the same but
// cannot be attested ([ErrNotAttestable]): nothing but its encryption
// stands between it and someone who copies the data directory.
//
// The device id ([Key.ID]) depends only on the public key, so the hub can
// compute it from what the device presents. See docs/device-identity.md
// for file formats, the attestation protocol and the threat model.
package devicekey

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// Key kinds.
const (
	KindTPM  = "tpm"
	KindFile = "file"
)

// Files in the data directory.
const (
	// FileKeyName holds the file-backed key: its PKCS#8 encoding sealed
	// with AES-256-GCM under a key derived from the master key.
	FileKeyName = "device.key"
	// TPMKeyName holds the TPM key's public and (TPM-encrypted) private
	// areas; only the TPM that made it can load it.
	TPMKeyName = "device.tpm"
	// MasterKeyName is the default master key file for the file key
	// (32 random bytes, created on first use) when no other source is
	// given.
	MasterKeyName = "device-master.key"
	// SealedMasterName holds a master key sealed to the TPM
	// ([TPMSealedKey]).
	SealedMasterName = "master.tpm"
)

// MasterKeyEnv is the environment variable that, when set, holds the file
// key's master key in base64 (see [DefaultMaster]).
const MasterKeyEnv = "MCPEDGE_DEVICE_KEY"

// TPM selection values for [Options.TPM].
const (
	TPMAuto = "auto"
	TPMOff  = "off"
	// DefaultTPMDevice is the kernel's TPM resource manager, which "auto"
	// uses when it exists.
	DefaultTPMDevice = "/dev/tpmrm0"
)

// DefaultPCRs are the PCRs an attestation quotes when [Options.PCRs] is
// empty: 0–7, which on a PC-client platform measure the firmware, its
// configuration, option ROMs, the boot loader and Secure Boot policy —
// what a verifier can compare against known-good values. PCRs above 7
// (kernel command line, IMA, application use) change too often to enforce
// by default.
var DefaultPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

// Key is this device's identity key (ECDSA P-256).
type Key interface {
	// Signer signs SHA-256 digests; Public returns an *ecdsa.PublicKey
	// and Sign an ASN.1 DER signature, as crypto/ecdsa does.
	crypto.Signer
	// Kind is KindTPM or KindFile.
	Kind() string
	// ID is the stable device id: see [ID].
	ID() string
	// Attest returns evidence that the key is in this TPM and what the
	// TPM measured, bound to nonce. File keys return ErrNotAttestable.
	Attest(nonce []byte) (*Attestation, error)
	// Close releases the TPM connection (a no-op for file keys).
	Close() error
}

// ErrNotAttestable is returned by Attest for a key that is not in a TPM.
var ErrNotAttestable = errors.New("devicekey: the key is not in a TPM and cannot be attested")

// Options say where the key lives.
type Options struct {
	// DataDir is the data directory; the file key is
	// <DataDir>/device.key and the TPM key's blobs <DataDir>/device.tpm.
	DataDir string
	// TPM is "auto" (the default: /dev/tpmrm0 if it exists, else a file
	// key), "off" (always a file key), a device path such as /dev/tpm0,
	// or "tcp://127.0.0.1:PORT", the command port of a software TPM
	// (swtpm socket mode) for tests.
	TPM string
	// PCRs are the sha256-bank PCRs an attestation quotes. Empty means
	// DefaultPCRs.
	PCRs []int
	// Master is the master key that encrypts the file key. Nil means
	// DefaultMaster(DataDir). Unused when the key is in a TPM.
	Master sealbox.KeySource
}

// DefaultMaster is the file key's master key source when Options.Master
// is nil: $MCPEDGE_DEVICE_KEY (base64 of 32 bytes) when set, else the file
// <dataDir>/device-master.key, created with 32 random bytes on first use.
//
// A master key file next to the key it encrypts guards only against
// copies of device.key alone (a backup, a log bundle); keep it elsewhere,
// in the environment, or sealed to a TPM to do better.
func DefaultMaster(dataDir string) sealbox.KeySource {
	if os.Getenv(MasterKeyEnv) != "" {
		return sealbox.EnvKey(MasterKeyEnv)
	}
	return sealbox.FileKey(filepath.Join(dataDir, MasterKeyName))
}

// Open opens this device's key, creating it on first use: in the TPM
// that o.TPM names (or finds), else in <DataDir>/device.key.
//
// With TPM "auto", an existing key wins: device.tpm means the TPM (an
// error if /dev/tpmrm0 is gone), device.key means the file key (even if a
// TPM has appeared since); only a new device chooses, the TPM if
// /dev/tpmrm0 exists. A present TPM that cannot be used is an error, not
// a silent fall back to a file key: a device must not quietly lose its
// hardware identity.
func Open(ctx context.Context, o Options) (Key, error) {
	if o.DataDir == "" {
		return nil, errors.New("devicekey: no data directory: set [server] data_dir")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pcrs, err := normPCRs(o.PCRs)
	if err != nil {
		return nil, err
	}
	o.PCRs = pcrs
	dev, err := tpmPath(o.TPM)
	if err != nil {
		return nil, err
	}
	if isAuto(o.TPM) {
		// "auto" keeps the key the device already has, so that a TPM
		// appearing (enabled in the firmware) or disappearing never
		// silently gives the device a new identity.
		tpmFile, keyFile := exists(filepath.Join(o.DataDir, TPMKeyName)), exists(filepath.Join(o.DataDir, FileKeyName))
		switch {
		case tpmFile && dev == "":
			return nil, fmt.Errorf("devicekey: %s holds a key in a TPM, but %s does not exist: enable the TPM again, or move the file away to use a file key (a new device id, which needs a new enrollment)", filepath.Join(o.DataDir, TPMKeyName), DefaultTPMDevice)
		case !tpmFile && keyFile:
			dev = ""
		}
	}
	if dev == "" {
		master := o.Master
		if master == nil {
			master = DefaultMaster(o.DataDir)
		}
		return openFileKey(ctx, filepath.Join(o.DataDir, FileKeyName), master)
	}
	return openTPMKey(ctx, dev, o)
}

func isAuto(sel string) bool {
	sel = strings.TrimSpace(sel)
	return sel == "" || sel == TPMAuto
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// tpmPath resolves Options.TPM to a device path or tcp:// address, or ""
// for a file key.
func tpmPath(sel string) (string, error) {
	switch sel = strings.TrimSpace(sel); {
	case sel == "" || sel == TPMAuto:
		if _, err := os.Stat(DefaultTPMDevice); err == nil {
			return DefaultTPMDevice, nil
		}
		return "", nil
	case sel == TPMOff:
		return "", nil
	case strings.HasPrefix(sel, "tcp://"), strings.HasPrefix(sel, "/"):
		return sel, nil
	default:
		return "", fmt.Errorf("devicekey: tpm %q: want \"auto\", \"off\", a device path such as /dev/tpmrm0, or tcp://127.0.0.1:PORT", sel)
	}
}

// MaxPCR is the highest PCR index accepted (PC-client TPMs have 24).
const MaxPCR = 23

// normPCRs returns the PCR list sorted and without duplicates, or
// DefaultPCRs for an empty one.
func normPCRs(pcrs []int) ([]int, error) {
	if len(pcrs) == 0 {
		return append([]int(nil), DefaultPCRs...), nil
	}
	var seen [MaxPCR + 1]bool
	for _, p := range pcrs {
		if p < 0 || p > MaxPCR {
			return nil, fmt.Errorf("devicekey: PCR %d is out of range 0..%d", p, MaxPCR)
		}
		seen[p] = true
	}
	var out []int
	for i, s := range seen {
		if s {
			out = append(out, i)
		}
	}
	return out, nil
}

// ID is the device id of a public key: the lowercase hex SHA-256 of its
// PKIX DER encoding, first 32 hex characters (128 bits).
func ID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("devicekey: encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])[:32], nil
}

// checkDigest is the argument check both key kinds share: SHA-256 only.
func checkDigest(digest []byte, opts crypto.SignerOpts) error {
	if opts != nil && opts.HashFunc() != crypto.SHA256 {
		return fmt.Errorf("devicekey: can sign SHA-256 digests only, not %v", opts.HashFunc())
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("devicekey: digest is %d bytes, want a %d-byte SHA-256 digest", len(digest), sha256.Size)
	}
	return nil
}
