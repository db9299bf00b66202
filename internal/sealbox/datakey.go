package sealbox

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// A DataKey seals records with one key held in memory, such as a tenant's
// own data key (the store keeps it wrapped by the master key and destroys
// it when the tenant is erased: crypto-shredding). Unlike a [Box] it has
// no key ring and no message count: it uses XChaCha20-Poly1305, whose
// 192-bit random nonces make a repeated nonce negligible however many
// messages one key seals, so nothing needs counting across processes.
//
// A ciphertext is
//
//	version (1 byte, 0x81) | nonce (24 bytes) | ciphertext and tag (16 bytes)
//
// and its additional data is "mcpedge-datakey-v1", the version byte, then
// the tenant and the record, each preceded by its length as 4 bytes
// big-endian. The version byte differs from a Box's, so neither is taken
// for the other.
type DataKey struct {
	aead cipher.AEAD
}

// DataKeyOverhead is how many bytes a DataKey's ciphertext is longer than
// its plaintext.
const DataKeyOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

const dataKeyVersion = 0x81

// NewDataKey makes a DataKey of KeySize bytes of key material.
func NewDataKey(key []byte) (*DataKey, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealbox: a data key is %d bytes, got %d", KeySize, len(key))
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &DataKey{aead: aead}, nil
}

// NewDataKeyMaterial returns KeySize fresh random bytes for NewDataKey.
func NewDataKeyMaterial() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// Seal encrypts plaintext for the record ad names.
func (k *DataKey) Seal(ad AD, plaintext []byte) []byte {
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, DataKeyOverhead+len(plaintext))
	out[0] = dataKeyVersion
	rand.Read(out[1:])
	return k.aead.Seal(out, out[1:], plaintext, dataKeyAD(ad))
}

// ErrDataKeyFormat is returned by [DataKey.Open] for bytes that are not a
// DataKey ciphertext at all.
var ErrDataKeyFormat = errors.New("sealbox: not a data key ciphertext")

// Open decrypts a ciphertext made by Seal for the same ad; [ErrOpen] when
// it does not authenticate.
func (k *DataKey) Open(ad AD, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < DataKeyOverhead || ciphertext[0] != dataKeyVersion {
		return nil, ErrDataKeyFormat
	}
	pt, err := k.aead.Open(nil, ciphertext[1:1+chacha20poly1305.NonceSizeX], ciphertext[1+chacha20poly1305.NonceSizeX:], dataKeyAD(ad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// IsDataKeyCiphertext reports whether b starts like a DataKey ciphertext.
func IsDataKeyCiphertext(b []byte) bool {
	return len(b) >= DataKeyOverhead && b[0] == dataKeyVersion
}

func dataKeyAD(ad AD) []byte {
	const tag = "mcpedge-datakey-v1"
	out := make([]byte, 0, len(tag)+1+8+len(ad.Tenant)+len(ad.Record))
	out = append(out, tag...)
	out = append(out, dataKeyVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ad.Tenant)))
	out = append(out, ad.Tenant...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ad.Record)))
	out = append(out, ad.Record...)
	return out
}
