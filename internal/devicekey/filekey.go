package devicekey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"golang.org/x/crypto/hkdf"

	"github.com/mcpedge/mcpedge/internal/fsutil"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// The sealed file key format (device.key):
//
//	magic "MDK1" (4 bytes) | salt (32 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// The AES key is HKDF-SHA256(master key, salt, "mcpedge device key"), so
// the master key itself never encrypts anything (as in sealbox), and the
// additional data is "mcpedge device key" followed by the magic and the
// salt. The plaintext is the PKCS#8 DER of the P-256 private key.
const (
	fileMagic   = "MDK1"
	fileSaltLen = 32
	fileAD      = "mcpedge device key"
	// maxKeyFile bounds what is read from device.key: a sealed P-256
	// PKCS#8 key is under 200 bytes.
	maxKeyFile = 4096
)

type fileKey struct {
	priv *ecdsa.PrivateKey
	id   string
}

// openFileKey reads and opens the sealed key at path, or creates one
// there when the file does not exist.
func openFileKey(ctx context.Context, path string, master sealbox.KeySource) (Key, error) {
	mk, err := master.MasterKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("devicekey: master key for %s: %w", path, err)
	}
	defer clear(mk)
	if len(mk) != sealbox.KeySize {
		return nil, fmt.Errorf("devicekey: master key from %s is %d bytes, want %d", master, len(mk), sealbox.KeySize)
	}
	blob, err := fsutil.ReadBounded(path, maxKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return createFileKey(path, mk, master)
	}
	if err != nil {
		return nil, fmt.Errorf("devicekey: %w", err)
	}
	priv, err := openSealedKey(blob, mk)
	if err != nil {
		return nil, fmt.Errorf("devicekey: %s: %w (master key from %s)", path, err, master)
	}
	return newFileKey(priv)
}

func newFileKey(priv *ecdsa.PrivateKey) (*fileKey, error) {
	id, err := ID(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &fileKey{priv: priv, id: id}, nil
}

// errWrongMaster is what openSealedKey reports for a blob that does not
// authenticate.
var errWrongMaster = errors.New("does not open with this master key: it was sealed with another master key (another key file or environment variable), or it was altered")

// sealKey seals a private key's PKCS#8 encoding under the master key mk.
func sealKey(priv *ecdsa.PrivateKey, mk []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	header := make([]byte, len(fileMagic)+fileSaltLen)
	copy(header, fileMagic)
	if _, err := rand.Read(header[len(fileMagic):]); err != nil {
		return nil, err
	}
	aead, err := fileAEAD(mk, header[len(fileMagic):])
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(header, nonce...)
	return aead.Seal(out, nonce, der, fileAdditional(header)), nil
}

// openSealedKey is the inverse of sealKey.
func openSealedKey(blob, mk []byte) (*ecdsa.PrivateKey, error) {
	hl := len(fileMagic) + fileSaltLen
	if len(blob) < hl || !bytes.Equal(blob[:len(fileMagic)], []byte(fileMagic)) {
		return nil, errors.New("is not a sealed mcpedge device key (bad magic); move it away to make a new key, which gives the device a new id")
	}
	aead, err := fileAEAD(mk, blob[len(fileMagic):hl])
	if err != nil {
		return nil, err
	}
	rest := blob[hl:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("is truncated")
	}
	der, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], fileAdditional(blob[:hl]))
	if err != nil {
		return nil, errWrongMaster
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("holds no PKCS#8 key: %w", err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("holds a %T, want an ECDSA P-256 key", k)
	}
	return priv, nil
}

func fileAEAD(mk, salt []byte) (cipher.AEAD, error) {
	key := make([]byte, 32)
	defer clear(key)
	if _, err := io.ReadFull(hkdf.New(crypto.SHA256.New, mk, salt, []byte(fileAD)), key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func fileAdditional(header []byte) []byte {
	return append([]byte(fileAD), header...)
}

// createFileKey makes a new key and writes it sealed to path, unless
// another process wins the race, whose key it then opens.
func createFileKey(path string, mk []byte, master sealbox.KeySource) (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	blob, err := sealKey(priv, mk)
	if err != nil {
		return nil, fmt.Errorf("devicekey: seal new key: %w", err)
	}
	won, err := fsutil.CreateExclusive(path, blob)
	if err != nil {
		return nil, fmt.Errorf("devicekey: create %s: %w", path, err)
	}
	if !won {
		if blob, err = fsutil.ReadBounded(path, maxKeyFile); err != nil {
			return nil, fmt.Errorf("devicekey: %w", err)
		}
		if priv, err = openSealedKey(blob, mk); err != nil {
			return nil, fmt.Errorf("devicekey: %s: %w (master key from %s)", path, err, master)
		}
	}
	return newFileKey(priv)
}

func (k *fileKey) Public() crypto.PublicKey { return &k.priv.PublicKey }
func (k *fileKey) Kind() string             { return KindFile }
func (k *fileKey) ID() string               { return k.id }
func (k *fileKey) Close() error             { return nil }

func (k *fileKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest(digest, opts); err != nil {
		return nil, err
	}
	return ecdsa.SignASN1(rand.Reader, k.priv, digest)
}

func (k *fileKey) Attest(nonce []byte) (*Attestation, error) { return nil, ErrNotAttestable }
