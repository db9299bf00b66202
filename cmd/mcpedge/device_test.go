package main

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
)

// showJSON runs `mcpedge device show --json` and decodes its answer.
func showJSON(t *testing.T, env []string, cfg string) deviceInfo {
	t.Helper()
	out, errs, code := mcpedge(t, "", env, "device", "show", "--json", "--config", cfg)
	if code != 0 {
		t.Fatalf("device show --json: exit %d\n%s%s", code, out, errs)
	}
	var info deviceInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("device show --json: %v\n%s", err, out)
	}
	block, _ := pem.Decode([]byte(info.PublicKey))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public_key is not a PEM public key: %q", info.PublicKey)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		t.Fatalf("public key is %T", pub)
	}
	sum := sha256.Sum256(block.Bytes)
	if want := hex.EncodeToString(sum[:])[:32]; info.ID != want {
		t.Fatalf("id %s is not the hash of the public key (%s)", info.ID, want)
	}
	return info
}

func TestDeviceShowFileKey(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "[server]\ndata_dir = \""+dir+"\"\n[device]\ntpm = \"off\"\n")
	env := []string{devicekey.MasterKeyEnv + "="}
	first := showJSON(t, env, cfg)
	if first.Kind != "file" || first.PCRs != nil || first.KeyFile != filepath.Join(dir, "device.key") {
		t.Fatalf("file key: %+v", first)
	}
	if _, err := os.Stat(filepath.Join(dir, devicekey.MasterKeyName)); err != nil {
		t.Fatalf("no master key file: %v", err)
	}
	// Stable across runs.
	if again := showJSON(t, env, cfg); again.ID != first.ID {
		t.Fatalf("id changed: %s then %s", first.ID, again.ID)
	}
	// Text output names the same id.
	out, errs, code := mcpedge(t, "", env, "device", "show", "--config", cfg)
	if code != 0 || !strings.Contains(out, "id:       "+first.ID) || !strings.Contains(out, "kind:     file") || !strings.Contains(out, "BEGIN PUBLIC KEY") {
		t.Fatalf("device show: exit %d\n%s%s", code, out, errs)
	}
	// Another master key: a clear error naming the key file and source.
	os.WriteFile(filepath.Join(dir, devicekey.MasterKeyName), make([]byte, 32), 0o600)
	_, errs, code = mcpedge(t, "", env, "device", "show", "--config", cfg)
	if code != 1 || !strings.Contains(errs, "device.key") || !strings.Contains(errs, devicekey.MasterKeyName) {
		t.Fatalf("wrong master key: exit %d\n%s", code, errs)
	}
}

func TestDeviceShowTPM(t *testing.T) {
	sw := swtpmtest.Start(t)
	dir := t.TempDir()
	cfg := writeConfig(t, "[server]\ndata_dir = \""+dir+"\"\n[device]\ntpm = \""+sw.Addr+"\"\npcrs = [0, 7, 23]\n")
	info := showJSON(t, nil, cfg)
	if info.Kind != "tpm" || info.TPM != sw.Addr || info.KeyFile != filepath.Join(dir, "device.tpm") {
		t.Fatalf("tpm key: %+v", info)
	}
	if len(info.PCRs) != 3 || len(info.PCRs["23"]) != 64 {
		t.Fatalf("pcrs: %v", info.PCRs)
	}
	if again := showJSON(t, nil, cfg); again.ID != info.ID {
		t.Fatalf("id changed: %s then %s", info.ID, again.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, "device.key")); err == nil {
		t.Fatal("a TPM key also made device.key")
	}
	out, _, code := mcpedge(t, "", nil, "device", "show", "--config", cfg)
	if code != 0 || !strings.Contains(out, "pcrs (sha256):") || !strings.Contains(out, "23: "+info.PCRs["23"]) {
		t.Fatalf("text output: exit %d\n%s", code, out)
	}
}

func TestDeviceShowErrors(t *testing.T) {
	if _, errs, code := mcpedge(t, "", nil, "device"); code != 2 || !strings.Contains(errs, "device show") {
		t.Errorf("no subcommand: exit %d %s", code, errs)
	}
	if _, errs, code := mcpedge(t, "", nil, "device", "burn"); code != 2 || !strings.Contains(errs, `unknown command "device burn"`) {
		t.Errorf("unknown subcommand: exit %d %s", code, errs)
	}
	if _, errs, code := mcpedge(t, "", nil, "device", "show", "extra"); code != 2 || !strings.Contains(errs, "unexpected argument") {
		t.Errorf("extra argument: exit %d %s", code, errs)
	}
	bad := writeConfig(t, "[device]\ntpm = \"tcp://10.1.2.3:2321\"\n")
	if _, errs, code := mcpedge(t, "", nil, "device", "show", "--config", bad); code != 1 || !strings.Contains(errs, "device.tpm") || !strings.Contains(errs, "loopback") {
		t.Errorf("remote TPM: exit %d %s", code, errs)
	}
	// A TPM that is not there: an error, not a file key in its place.
	cfg := writeConfig(t, "[server]\ndata_dir = \""+t.TempDir()+"\"\n[device]\ntpm = \"/dev/no-such-tpm\"\n")
	if _, errs, code := mcpedge(t, "", nil, "device", "show", "--config", cfg); code != 1 || !strings.Contains(errs, "/dev/no-such-tpm") {
		t.Errorf("missing TPM: exit %d %s", code, errs)
	}
}
