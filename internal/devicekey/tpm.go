package devicekey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"path/filepath"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/mcpedge/mcpedge/internal/fsutil"
)

// Object templates. All keys are ECC P-256 with SHA-256 names.
var (
	// srkTemplate is the TCG reference ECC SRK: CreatePrimary under the
	// owner hierarchy makes the same key from it every time, so it is
	// never persisted.
	srkTemplate = tpm2.ECCSRKTemplate

	// deviceKeyTemplate is the device key: an unrestricted ECDSA P-256
	// signing key generated in the TPM (sensitiveDataOrigin) that can
	// never leave it (fixedTPM, fixedParent). Its auth value is empty:
	// whoever can send commands to the TPM can sign, as whoever can read
	// the data directory can with a file key.
	deviceKeyTemplate = eccSigningTemplate(false)

	// akTemplate is the attestation key: a restricted signing key, which
	// the TPM lets sign only digests it computed itself (quotes and
	// certifications), never an outside digest that imitates one. Made
	// from this fixed template under the endorsement hierarchy, it is the
	// same key on every start, so the hub can pin it.
	akTemplate = eccSigningTemplate(true)
)

func eccSigningTemplate(restricted bool) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Restricted:          restricted,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		}),
	}
}

// ekCertIndex is the TCG NV index of the ECC P-256 EK certificate, and
// rsaEKCertIndex that of the RSA 2048 EK certificate.
const (
	ekCertIndex    = tpm2.TPMHandle(0x01c0000a)
	rsaEKCertIndex = tpm2.TPMHandle(0x01c00002)
)

// endorsementKey is the EK in use: loaded for one attestation or
// activation, then closed.
type endorsementKey struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public []byte         // TPMT_PUBLIC
	index  tpm2.TPMHandle // NV index of its certificate
	close  func()
}

// openEK makes available the EK this TPM's attestations present and
// credential activations use: the ECC P-256 EK (TCG template) when the
// TPM holds its certificate or holds no EK certificate at all, else the
// RSA 2048 EK when the TPM holds that one's certificate. Manufacturers
// certify the RSA EK almost always and the ECC EK often (swtpm_setup
// certifies RSA 2048 and ECC P-384); a hub that checks EK certificates
// needs the EK that has one. The choice depends only on which NV indexes
// are defined, so Attest and ActivateCredential make the same one.
//
// When the provisioning persisted the EK at the TCG's handle for it
// (0x81010001 RSA, 0x81010002 ECC) and the key there has exactly the
// EK template, that copy is used: generating an RSA primary key can take
// a hardware TPM seconds. It is the same key CreatePrimary would make; and
// a verifier that checks the EK certificate compares keys, not handles.
func openEK(t transport.TPM) (*endorsementKey, error) {
	tmpl, index, persistent := tpm2.ECCEKTemplate, ekCertIndex, tpm2.TPMHandle(0x81010002)
	if !nvDefined(t, ekCertIndex) && nvDefined(t, rsaEKCertIndex) {
		tmpl, index, persistent = tpm2.RSAEKTemplate, rsaEKCertIndex, tpm2.TPMHandle(0x81010001)
	}
	if rp, err := (tpm2.ReadPublic{ObjectHandle: persistent}).Execute(t); err == nil {
		if pub, err := rp.OutPublic.Contents(); err == nil && hasTemplate(*pub, tmpl) {
			return &endorsementKey{handle: persistent, name: rp.Name, public: rp.OutPublic.Bytes(), index: index, close: func() {}}, nil
		}
	}
	ek, err := createPrimary(t, tpm2.TPMRHEndorsement, tmpl)
	if err != nil {
		return nil, err
	}
	return &endorsementKey{handle: ek.ObjectHandle, name: ek.Name, public: ek.OutPublic.Bytes(), index: index,
		close: func() { flush(t, ek.ObjectHandle) }}, nil
}

// hasTemplate reports whether pub was made from tmpl: equal in every
// field but the key itself (unique).
func hasTemplate(pub, tmpl tpm2.TPMTPublic) bool {
	pub.Unique = tmpl.Unique
	return bytes.Equal(tpm2.Marshal(pub), tpm2.Marshal(tmpl))
}

func nvDefined(t transport.TPM, index tpm2.TPMHandle) bool {
	_, err := tpm2.NVReadPublic{NVIndex: index}.Execute(t)
	return err == nil
}

// Blob file formats: JSON naming what the file holds, with the object's
// TPMT_PUBLIC and its TPM2B_PRIVATE contents (encrypted by the TPM under
// the SRK, so useless to any other TPM), base64 encoded.
const (
	formatDeviceKey = "mcpedge device key (TPM) v1"
	formatMaster    = "mcpedge sealed master key (TPM) v1"
)

type tpmBlob struct {
	Format  string `json:"format"`
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
}

type tpmKey struct {
	dev  string
	pcrs []int

	mu     sync.Mutex
	t      transport.TPMCloser
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	area   []byte // the key's TPMT_PUBLIC
	pub    *ecdsa.PublicKey
	id     string
}

// openTPMKey loads the device key from <DataDir>/device.tpm into the TPM
// dev, creating it first if the file does not exist.
func openTPMKey(ctx context.Context, dev string, o Options) (_ Key, err error) {
	t, err := openTransport(dev)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	path := filepath.Join(o.DataDir, TPMKeyName)
	srk, err := createPrimary(t, tpm2.TPMRHOwner, srkTemplate)
	if err != nil {
		return nil, fmt.Errorf("devicekey: TPM %s: create the storage root key: %w", dev, err)
	}
	defer flush(t, srk.ObjectHandle)

	blob, err := loadOrCreateBlob(path, formatDeviceKey, func() (*tpmBlob, error) {
		rsp, err := tpm2.Create{
			ParentHandle: srkHandle(srk),
			InPublic:     tpm2.New2B(deviceKeyTemplate),
		}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("devicekey: TPM %s: create the device key: %w", dev, err)
		}
		return &tpmBlob{Format: formatDeviceKey, Public: rsp.OutPublic.Bytes(), Private: rsp.OutPrivate.Buffer}, nil
	})
	if err != nil {
		return nil, err
	}
	area, err := unmarshal[tpm2.TPMTPublic](blob.Public, path+": public")
	if err != nil {
		return nil, fmt.Errorf("devicekey: %w", err)
	}
	pub, err := eccPublic(area)
	if err != nil {
		return nil, fmt.Errorf("devicekey: %s: %w", path, err)
	}
	loaded, err := tpm2.Load{
		ParentHandle: srkHandle(srk),
		InPrivate:    tpm2.TPM2BPrivate{Buffer: blob.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](blob.Public),
	}.Execute(t)
	if isForeign(err) {
		return nil, fmt.Errorf("devicekey: TPM %s cannot load %s: it was made by another TPM, or this TPM was cleared (%w); move the file away to create a new key, which gives the device a new id and needs a new enrollment", dev, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("devicekey: TPM %s: load the device key from %s: %w", dev, path, err)
	}
	id, err := ID(pub)
	if err != nil {
		flush(t, loaded.ObjectHandle)
		return nil, err
	}
	// The SRK is flushed on return; the loaded key stays usable, so the
	// key holds one object slot of the TPM (a TPM without a resource
	// manager, like swtpm, has as few as three).
	return &tpmKey{dev: dev, pcrs: o.PCRs, t: t, handle: loaded.ObjectHandle, name: loaded.Name, area: blob.Public, pub: pub, id: id}, nil
}

func (k *tpmKey) Public() crypto.PublicKey { return k.pub }
func (k *tpmKey) Kind() string             { return KindTPM }
func (k *tpmKey) ID() string               { return k.id }

func (k *tpmKey) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.t == nil {
		return nil
	}
	flush(k.t, k.handle)
	err := k.t.Close()
	k.t = nil
	return err
}

// Sign signs a SHA-256 digest in the TPM and returns an ASN.1 DER
// signature.
func (k *tpmKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest(digest, opts); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.t == nil {
		return nil, errors.New("devicekey: key is closed")
	}
	rsp, err := tpm2.Sign{
		KeyHandle: k.authHandle(),
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
		},
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(k.t)
	if err != nil {
		return nil, fmt.Errorf("devicekey: TPM %s: sign: %w", k.dev, err)
	}
	sig, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("devicekey: TPM %s: sign: %w", k.dev, err)
	}
	return asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(sig.SignatureR.Buffer),
		new(big.Int).SetBytes(sig.SignatureS.Buffer),
	})
}

func (k *tpmKey) authHandle() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)}
}

// Attest certifies the device key with the AK and quotes the PCRs, both
// with nonce as qualifying data.
func (k *tpmKey) Attest(nonce []byte) (*Attestation, error) {
	if len(nonce) == 0 || len(nonce) > MaxNonce {
		return nil, fmt.Errorf("devicekey: nonce is %d bytes, want 1..%d", len(nonce), MaxNonce)
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

	// The EK first, flushed before the AK is made: a TPM without a
	// resource manager may have only three object slots.
	ek, err := openEK(t)
	if err != nil {
		return nil, fail("create the endorsement key", err)
	}
	ekPub := ek.public
	ek.close()
	ekCert := readNV(t, ek.index)

	ak, err := createPrimary(t, tpm2.TPMRHEndorsement, akTemplate)
	if err != nil {
		return nil, fail("create the attestation key", err)
	}
	defer flush(t, ak.ObjectHandle)
	akHandle := tpm2.AuthHandle{Handle: ak.ObjectHandle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)}

	cert, err := tpm2.Certify{
		ObjectHandle:   k.authHandle(),
		SignHandle:     akHandle,
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
	}.Execute(t)
	if err != nil {
		return nil, fail("certify the device key", err)
	}

	sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(uintPCRs(k.pcrs)...),
	}}}
	// A PCR may be extended between reading and quoting; then the
	// values do not match the quoted digest and we try again.
	for attempt := 0; ; attempt++ {
		vals, err := readPCRs(t, k.pcrs)
		if err != nil {
			return nil, fail("read PCRs", err)
		}
		q, err := tpm2.Quote{
			SignHandle:     akHandle,
			QualifyingData: tpm2.TPM2BData{Buffer: nonce},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      sel,
		}.Execute(t)
		if err != nil {
			return nil, fail("quote PCRs", err)
		}
		qa, err := q.Quoted.Contents()
		if err != nil {
			return nil, fail("quote PCRs", err)
		}
		qi, err := qa.Attested.Quote()
		if err != nil {
			return nil, fail("quote PCRs", err)
		}
		h := sha256.New()
		for _, i := range k.pcrs {
			h.Write(vals[i])
		}
		if !bytes.Equal(h.Sum(nil), qi.PCRDigest.Buffer) {
			if attempt < 3 {
				continue
			}
			return nil, fail("quote PCRs", errors.New("PCRs keep changing while being quoted"))
		}
		return &Attestation{
			Version:    AttestationVersion,
			AKPublic:   ak.OutPublic.Bytes(),
			EKPublic:   ekPub,
			EKCert:     ekCert,
			KeyPublic:  bytes.Clone(k.area),
			Certify:    cert.CertifyInfo.Bytes(),
			CertifySig: tpm2.Marshal(cert.Signature),
			Quote:      q.Quoted.Bytes(),
			QuoteSig:   tpm2.Marshal(q.Signature),
			PCRs:       vals,
		}, nil
	}
}

// PCRs reads the key's PCRs (sha256 bank) from its TPM.
func (k *tpmKey) PCRs() (map[int][]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.t == nil {
		return nil, errors.New("devicekey: key is closed")
	}
	return readPCRs(k.t, k.pcrs)
}

// PCRReader is implemented by keys in a TPM: the current values of the
// PCRs their attestations quote.
type PCRReader interface {
	PCRs() (map[int][]byte, error)
}

// readPCRs reads the sha256 values of pcrs (a TPM returns at most eight
// per PCR_Read).
func readPCRs(t transport.TPM, pcrs []int) (map[int][]byte, error) {
	out := make(map[int][]byte, len(pcrs))
	for start := 0; start < len(pcrs); start += 8 {
		chunk := pcrs[start:min(start+8, len(pcrs))]
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
			Hash:      tpm2.TPMAlgSHA256,
			PCRSelect: tpm2.PCClientCompatible.PCRs(uintPCRs(chunk)...),
		}}}}.Execute(t)
		if err != nil {
			return nil, err
		}
		got, err := selectedPCRs(rsp.PCRSelectionOut)
		if err != nil || len(got) != len(rsp.PCRValues.Digests) {
			return nil, errors.New("the TPM answered PCR_Read with another selection (is the sha256 bank allocated?)")
		}
		for j, i := range got {
			out[i] = rsp.PCRValues.Digests[j].Buffer
		}
	}
	for _, i := range pcrs {
		if len(out[i]) != sha256.Size {
			return nil, fmt.Errorf("the TPM returned no sha256 value for PCR %d (is the sha256 bank allocated?)", i)
		}
	}
	return out, nil
}

func uintPCRs(pcrs []int) []uint {
	out := make([]uint, len(pcrs))
	for i, p := range pcrs {
		out[i] = uint(p)
	}
	return out
}

// readNV reads a whole NV index, or returns nil when it is not defined or
// not readable without a password: it is used for the optional EK
// certificate.
func readNV(t transport.TPM, index tpm2.TPMHandle) []byte {
	pub, err := tpm2.NVReadPublic{NVIndex: index}.Execute(t)
	if err != nil {
		return nil
	}
	info, err := pub.NVPublic.Contents()
	if err != nil || info.DataSize == 0 {
		return nil
	}
	var out []byte
	const chunk = 512 // below every TPM's TPM_PT_NV_BUFFER_MAX
	for off := uint16(0); off < info.DataSize; {
		n := min(chunk, info.DataSize-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: index, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: pub.NVName},
			Size:       n,
			Offset:     off,
		}.Execute(t)
		if err != nil || len(rsp.Data.Buffer) != int(n) {
			return nil
		}
		out = append(out, rsp.Data.Buffer...)
		off += n
	}
	return out
}

func createPrimary(t transport.TPM, hierarchy tpm2.TPMHandle, tmpl tpm2.TPMTPublic) (*tpm2.CreatePrimaryResponse, error) {
	return tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: hierarchy, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tmpl),
	}.Execute(t)
}

func srkHandle(srk *tpm2.CreatePrimaryResponse) tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)}
}

// isForeign reports whether a TPM2_Load failed because the blob's
// private area does not belong under this SRK: another TPM made it, or
// this TPM's owner seed changed (TPM2_Clear).
func isForeign(err error) bool {
	return errors.Is(err, tpm2.TPMRCIntegrity)
}

// flush frees a transient object; errors are ignored because there is
// nothing to do about them (the object goes when the connection to a
// resource manager closes, or when the TPM restarts).
func flush(t transport.TPM, h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(t)
}

// loadOrCreateBlob reads the blob at path, or makes one with create and
// writes it there (mode 0600) when the file does not exist. If another
// process writes the file first, its blob wins.
func loadOrCreateBlob(path, format string, create func() (*tpmBlob, error)) (*tpmBlob, error) {
	b, err := fsutil.ReadBounded(path, maxBlobFile)
	if errors.Is(err, fs.ErrNotExist) {
		blob, err := create()
		if err != nil {
			return nil, err
		}
		data, err := json.MarshalIndent(blob, "", "  ")
		if err != nil {
			return nil, err
		}
		won, err := fsutil.CreateExclusive(path, append(data, '\n'))
		if err != nil {
			return nil, fmt.Errorf("devicekey: create %s: %w", path, err)
		}
		if won {
			return blob, nil
		}
		b, err = fsutil.ReadBounded(path, maxBlobFile)
	}
	if err != nil {
		return nil, fmt.Errorf("devicekey: %w", err)
	}
	return parseBlob(path, format, b)
}

// maxBlobFile bounds a blob file: a P-256 key's public and private areas
// are a few hundred bytes.
const maxBlobFile = 16 << 10

func parseBlob(path, format string, b []byte) (*tpmBlob, error) {
	var blob tpmBlob
	if err := json.Unmarshal(b, &blob); err != nil {
		return nil, fmt.Errorf("devicekey: %s is not a TPM key file: %w", path, err)
	}
	if blob.Format != format {
		return nil, fmt.Errorf("devicekey: %s holds %q, want %q", path, blob.Format, format)
	}
	if len(blob.Public) == 0 || len(blob.Private) == 0 {
		return nil, fmt.Errorf("devicekey: %s lacks the public or private area", path)
	}
	return &blob, nil
}
