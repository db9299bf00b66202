// Package swtpmtest runs a private software TPM (swtpm, Debian package
// swtpm) for tests, so that TPM code is tested against a real TPM 2.0
// implementation instead of a mock.
//
// StartProvisioned starts one manufactured with EK certificates from a
// local CA (NewLocalCA), as a TPM vendor provisions them.
//
// Tests that call Start or StartProvisioned are skipped when swtpm (or,
// for StartProvisioned, swtpm_setup, swtpm_localca or certtool) is not
// installed, unless MCPEDGE_REQUIRE_SERVICES is set (as scripts/test.sh
// does), in which case they fail: CI must not pass by skipping.
package swtpmtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// TPM is a running swtpm.
type TPM struct {
	// Addr is what devicekey.Options.TPM takes: tcp://127.0.0.1:PORT.
	Addr string
	// Dir holds the TPM's state (its seeds: a new TPM has new keys).
	Dir string

	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// Start starts a swtpm on a free loopback port with its state in a new
// temporary directory, and stops it when the test ends.
func Start(t testing.TB) *TPM {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") != "" {
			t.Fatalf("swtpm is not installed and MCPEDGE_REQUIRE_SERVICES is set (apt-get install swtpm swtpm-tools)")
		}
		t.Skip("swtpm is not installed (apt-get install swtpm swtpm-tools); set MCPEDGE_REQUIRE_SERVICES=1 to fail instead")
	}
	return startIn(t, bin, t.TempDir())
}

func startIn(t testing.TB, bin, dir string) *TPM {
	t.Helper()
	// The port is found free and then handed to swtpm, so another
	// process may take it in between: try again with another port.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := start(bin, dir)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		lastErr = err
	}
	t.Fatalf("swtpmtest: %v", lastErr)
	return nil
}

// LocalCA is a certificate authority of swtpm_localca (Debian package
// swtpm-tools) in a test's temporary directory: a self-signed root and
// an intermediate that signs EK certificates, both made (with certtool)
// when the first TPM is provisioned.
type LocalCA struct {
	// Dir holds the CA's keys and certificates.
	Dir string
	// Root and Issuer are the PEM files of the root certificate and of
	// the intermediate that signs EK certificates; they exist once a TPM
	// has been provisioned.
	Root, Issuer string

	conf string // swtpm_setup's configuration file
}

// NewLocalCA prepares an empty CA directory for StartProvisioned.
func NewLocalCA(t testing.TB) *LocalCA {
	t.Helper()
	dir := t.TempDir()
	ca := &LocalCA{
		Dir:    dir,
		Root:   filepath.Join(dir, "swtpm-localca-rootca-cert.pem"),
		Issuer: filepath.Join(dir, "issuercert.pem"),
		conf:   filepath.Join(dir, "swtpm_setup.conf"),
	}
	localca := filepath.Join(dir, "swtpm-localca.conf")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatalf("swtpmtest: %v", err)
		}
	}
	write(localca, "statedir = "+dir+"\nsigningkey = "+filepath.Join(dir, "signkey.pem")+
		"\nissuercert = "+ca.Issuer+"\ncertserial = "+filepath.Join(dir, "certserial")+"\n")
	write(filepath.Join(dir, "swtpm-localca.options"), "")
	write(ca.conf, "create_certs_tool = "+lookTool(t, "swtpm_localca")+
		"\ncreate_certs_tool_config = "+localca+
		"\ncreate_certs_tool_options = "+filepath.Join(dir, "swtpm-localca.options")+
		"\nactive_pcr_banks = sha256\n")
	return ca
}

// Bundle returns the CA's root and intermediate certificates in one PEM
// bundle, as a verifier's trusted EK roots.
func (ca *LocalCA) Bundle(t testing.TB) []byte {
	t.Helper()
	var out []byte
	for _, p := range []string{ca.Root, ca.Issuer} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("swtpmtest: the local CA has no certificates yet (provision a TPM first): %v", err)
		}
		out = append(out, b...)
	}
	return out
}

// StartProvisioned starts a swtpm whose state was first manufactured by
// swtpm_setup with EKs and EK certificates signed by ca: an RSA 2048 EK
// certificate in NV index 0x01c00002 and an ECC P-384 one in 0x01c00016,
// as a TPM vendor provisions them. It takes about a second more than
// Start (the CA's keys are made at its first use).
func StartProvisioned(t testing.TB, ca *LocalCA) *TPM {
	t.Helper()
	bin := lookTool(t, "swtpm")
	setup := lookTool(t, "swtpm_setup")
	lookTool(t, "swtpm_localca")
	lookTool(t, "certtool")
	dir := t.TempDir()
	cmd := exec.Command(setup, "--tpm2", "--tpmstate", dir, "--config", ca.conf,
		"--create-ek-cert", "--logfile", filepath.Join(dir, "setup.log"))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "setup.log"))
		t.Fatalf("swtpmtest: swtpm_setup: %v\n%s\n%s", err, out, log)
	}
	return startIn(t, bin, dir)
}

// lookTool finds a program of swtpm/swtpm-tools, skipping (or failing,
// with MCPEDGE_REQUIRE_SERVICES) the test when it is not installed.
func lookTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") != "" {
			t.Fatalf("%s is not installed and MCPEDGE_REQUIRE_SERVICES is set (apt-get install swtpm swtpm-tools gnutls-bin)", name)
		}
		t.Skipf("%s is not installed (apt-get install swtpm swtpm-tools gnutls-bin); set MCPEDGE_REQUIRE_SERVICES=1 to fail instead", name)
	}
	return p
}

func start(bin, dir string) (*TPM, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--server", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(port),
		"--flags", "not-need-init,startup-clear")
	cmd.Stdout = &log
	cmd.Stderr = &log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start swtpm: %w", err)
	}
	s := &TPM{Addr: "tcp://127.0.0.1:" + strconv.Itoa(port), Dir: dir, cmd: cmd, log: &log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	// Ready when it answers a command (not merely accepts a connection).
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ping(port)
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("swtpm exited at start (%v): %s", cmd.ProcessState, log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("swtpm did not answer on 127.0.0.1:%d within 20s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var stopMu sync.Mutex

func (s *TPM) stop() {
	stopMu.Lock()
	defer stopMu.Unlock()
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends TPM2_GetRandom(8) and waits for any well-formed answer.
func ping(port int) error {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	cmd := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8} // TPM_ST_NO_SESSIONS, size 12, TPM_CC_GetRandom, 8 bytes
	if _, err := conn.Write(cmd); err != nil {
		return err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return err
	}
	if rc := binary.BigEndian.Uint32(hdr[6:]); rc != 0 {
		return fmt.Errorf("GetRandom answered with code %#x", rc)
	}
	return nil
}

// WriteNV defines the NV index (owner authorization, readable without a
// password, as EK certificate indexes are) and writes data to it, in
// chunks every TPM accepts. Tests use it to put a certificate where a
// manufacturer would, for instance another TPM's EK certificate.
func (s *TPM) WriteNV(t testing.TB, index uint32, data []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.Addr, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatalf("swtpmtest: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tr := transport.FromReadWriter(conn)
	owner := tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	pub := tpm2.TPMSNVPublic{
		NVIndex: tpm2.TPMHandle(index),
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			OwnerWrite: true, OwnerRead: true, AuthRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary,
		},
		DataSize: uint16(len(data)),
	}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: owner, PublicInfo: tpm2.New2B(pub)}).Execute(tr); err != nil {
		t.Fatalf("swtpmtest: NV_DefineSpace %#x: %v", index, err)
	}
	name, err := tpm2.NVName(&pub)
	if err != nil {
		t.Fatalf("swtpmtest: %v", err)
	}
	for off := 0; off < len(data); off += 512 {
		end := min(off+512, len(data))
		if _, err := (tpm2.NVWrite{
			AuthHandle: owner,
			NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(index), Name: *name},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data[off:end]},
			Offset:     uint16(off),
		}).Execute(tr); err != nil {
			t.Fatalf("swtpmtest: NV_Write %#x: %v", index, err)
		}
	}
}
