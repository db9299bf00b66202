package devicekey

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
)

// An EK certificate in the TCG NV index (as a manufacturer provisions it)
// is read in chunks and reported in the attestation. Defined here with
// owner authorization, as swtpm starts without one.
func TestAttestationEKCert(t *testing.T) {
	sw := swtpmtest.Start(t)
	ctx := context.Background()
	cert := bytes.Repeat([]byte("certificate bytes "), 70) // 1260 bytes: three NV reads
	tr, err := openTransport(sw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := readNV(tr, ekCertIndex); got != nil {
		t.Fatalf("EK certificate before one was written: %d bytes", len(got))
	}
	pub := tpm2.TPMSNVPublic{
		NVIndex: ekCertIndex,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			OwnerWrite: true, OwnerRead: true, AuthRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary,
		},
		DataSize: uint16(len(cert)),
	}
	if _, err := (tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(pub),
	}).Execute(tr); err != nil {
		t.Fatalf("NV_DefineSpace: %v", err)
	}
	name, err := tpm2.NVName(&pub)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(cert); off += 512 {
		end := min(off+512, len(cert))
		if _, err := (tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: ekCertIndex, Name: *name},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: cert[off:end]},
			Offset:     uint16(off),
		}).Execute(tr); err != nil {
			t.Fatalf("NV_Write: %v", err)
		}
	}
	k, err := Open(ctx, Options{DataDir: t.TempDir(), TPM: sw.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	n := []byte("a nonce")
	att, err := k.Attest(n)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(att.EKCert, cert) {
		t.Fatalf("EK certificate: %d bytes, want the %d written", len(att.EKCert), len(cert))
	}
	v, err := Verify(att, k.Public(), n, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.EKCert, cert) || !bytes.Equal(v.EKPublic, att.EKPublic) {
		t.Fatal("Verified does not carry the EK data")
	}
}
