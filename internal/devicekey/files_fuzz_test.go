package devicekey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// FuzzOpenSealedKey feeds arbitrary device.key contents to the decoder:
// errors only, no panics, and nothing but the sealed key itself opens.
func FuzzOpenSealedKey(f *testing.F) {
	mk := make([]byte, 32)
	// A fixed key: fuzz workers run this function again and must seal
	// the same key the coordinator's seeds hold.
	d := make([]byte, 32)
	d[31] = 7
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		f.Fatal(err)
	}
	good, err := sealKey(priv, mk)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("MDK1"))
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := openSealedKey(b, mk)
		if err == nil && !k.Equal(priv) {
			t.Fatal("opened a key that was not sealed")
		}
	})
}

// FuzzParseBlob feeds arbitrary device.tpm / master.tpm contents to the
// blob parser.
func FuzzParseBlob(f *testing.F) {
	f.Add([]byte(`{"format":"mcpedge device key (TPM) v1","public":"AAE=","private":"AAE="}`))
	f.Add([]byte(`{"format":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		blob, err := parseBlob("device.tpm", formatDeviceKey, b)
		if err == nil && (len(blob.Public) == 0 || len(blob.Private) == 0) {
			t.Fatal("accepted a blob without its areas")
		}
	})
}

// FuzzPublicArea feeds arbitrary TPMT_PUBLIC bytes (device.tpm's public
// area, an attestation's key_public or ak_public) to the decoder and the
// P-256 key extraction.
func FuzzPublicArea(f *testing.F) {
	f.Add(tpm2.Marshal(deviceKeyTemplate))
	f.Add(tpm2.Marshal(akTemplate))
	f.Add(tpm2.Marshal(srkTemplate))
	f.Add([]byte{0, 0x23, 0, 0x0b})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := unmarshal[tpm2.TPMTPublic](b, "public")
		if err != nil {
			return
		}
		if pub, err := eccPublic(p); err == nil && !pub.Curve.IsOnCurve(pub.X, pub.Y) {
			t.Fatal("a point off the curve was accepted")
		}
	})
}
