package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// secretsStatus runs `secrets status --json` and decodes it.
func secretsStatus(t *testing.T, env []string, cfg string) (master string, r store.SecretRing) {
	t.Helper()
	out, errs, code := mcpedge(t, "", env, "secrets", "status", "--json", "--config", cfg)
	if code != 0 {
		t.Fatalf("secrets status: exit %d: %s", code, errs)
	}
	var v struct {
		MasterKey string `json:"master_key"`
		store.SecretRing
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("secrets status --json: %v\n%s", err, out)
	}
	return v.MasterKey, v.SecretRing
}

type rawSecret struct {
	name   string
	value  []byte
	sealed bool
}

// rawSecrets reads the secrets table of a SQLite file under the store.
func rawSecrets(t *testing.T, db string) []rawSecret {
	t.Helper()
	d, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.QueryContext(t.Context(), `SELECT name, value, sealed FROM secrets ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []rawSecret
	for rows.Next() {
		var r rawSecret
		if err := rows.Scan(&r.name, &r.value, &r.sealed); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// checkSealed fails unless every secret row is sealed with key id.
func checkSealed(t *testing.T, db string, id uint32) {
	t.Helper()
	rows := rawSecrets(t, db)
	if len(rows) < 2 {
		t.Fatalf("%d secrets in the store, want the API-key and the token key at least", len(rows))
	}
	for _, r := range rows {
		kid, err := sealbox.KeyID(r.value)
		if !r.sealed || err != nil || kid != id {
			t.Errorf("secret %s at rest: sealed=%v key %d (%v), want sealed with key %d", r.name, r.sealed, kid, err, id)
		}
	}
}

func stop(p *gatewayProc) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// TestSecretsEndToEnd: an API key made through a running gateway keeps
// working across restarts, a rekey made while a gateway runs, a restart
// after the rekey, and secrets left in the clear by an earlier mcpedge;
// at rest the secrets are always ciphertexts; a wrong master key stops
// the gateway at start instead of replacing the secrets.
func TestSecretsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, open.DefaultFile)
	cfg := writeConfig(t, "[server]\ndata_dir = \""+filepath.ToSlash(dir)+"\"\n")
	env := append(secEnv(t), open.KeyEnv+"=")

	p := startServe(t, env, "--config", cfg)
	p.waitReadyAuth(t, testAdminKey, "lattice")
	cli(t, env, "tenant", "create", "acme", "--config", cfg, "--upstreams", "lattice")
	code, b := apiDo(t, http.MethodPost, p.URL+"/api/tenants/acme/keys", testAdminKey, `{"name":"k","role":"member"}`)
	if code != http.StatusCreated {
		t.Fatalf("creating a key through the gateway: %d %s", code, b)
	}
	var created struct{ Secret string }
	if err := json.Unmarshal(b, &created); err != nil || created.Secret == "" {
		t.Fatalf("key create answer: %s", b)
	}
	works := func(p *gatewayProc, when string) {
		t.Helper()
		if st, _, _ := rawInit(t, p.URL+"/mcp", created.Secret, nil); st != http.StatusOK {
			t.Fatalf("%s: the API key gets %d", when, st)
		}
	}
	works(p, "at once")
	checkSealed(t, db, 1)
	keyPath := filepath.Join(dir, open.KeyFile)
	if st, err := os.Stat(keyPath); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Fatalf("master key file: %v %v", st, err)
	}
	master, r := secretsStatus(t, env, cfg)
	if master != "key file "+keyPath || len(r.Keys) != 1 || !r.Keys[0].Active || r.Keys[0].Secrets != r.Secrets || r.Plaintext != 0 ||
		r.Keys[0].Messages == 0 || r.Keys[0].MaxMessages != sealbox.DefaultMaxMessages {
		t.Fatalf("status: %s %+v", master, r)
	}

	stop(p)
	p = startServe(t, env, "--config", cfg)
	p.waitReadyAuth(t, testAdminKey, "lattice")
	works(p, "after a restart")

	// Rekey beside the running gateway.
	out := cli(t, env, "secrets", "rekey", "--config", cfg)
	if !strings.Contains(out, "key 2 is active (master key from key file "+keyPath+")") || !strings.Contains(out, "sealed 2 secrets again") {
		t.Fatalf("secrets rekey: %s", out)
	}
	checkSealed(t, db, 2)
	works(p, "after a rekey beside the gateway")
	apiKeyCLI := lastLine(cli(t, env, "key", "create", "--config", cfg, "--tenant", "acme", "--role", "member"))
	if st, _, _ := rawInit(t, p.URL+"/mcp", apiKeyCLI, nil); st != http.StatusOK {
		t.Fatalf("a key made by the CLI after the rekey, on the running gateway: %d", st)
	}
	stop(p)
	p = startServe(t, env, "--config", cfg)
	p.waitReadyAuth(t, testAdminKey, "lattice")
	works(p, "after the rekey and a restart")
	_, r = secretsStatus(t, env, cfg)
	if len(r.Keys) != 2 || r.Keys[0].Secrets != 0 || r.Keys[1].Secrets != r.Secrets || !r.Keys[1].Active || r.Keys[0].Active {
		t.Fatalf("status after rekey: %+v", r)
	}
	stop(p)

	// A wrong master key: the gateway does not start, and says which key.
	wrong := make([]byte, 32)
	rand.Read(wrong)
	badEnv := append(secEnv(t), open.KeyEnv+"="+base64.StdEncoding.EncodeToString(wrong))
	before := rawSecrets(t, db)
	_, errs, code := mcpedge(t, "", badEnv, "serve", "--listen", "127.0.0.1:0", "--config", cfg)
	if code != 1 || !strings.Contains(errs, "environment variable "+open.KeyEnv) || !strings.Contains(errs, "is not the one key 1 was made with") {
		t.Fatalf("serve with the wrong key: exit %d: %s", code, errs)
	}
	if _, errs, code := mcpedge(t, "", badEnv, "secrets", "rekey", "--config", cfg); code != 1 || !strings.Contains(errs, "environment variable "+open.KeyEnv) {
		t.Fatalf("rekey with the wrong key: exit %d: %s", code, errs)
	}
	after := rawSecrets(t, db)
	for i := range before {
		if string(before[i].value) != string(after[i].value) {
			t.Fatalf("a refused start changed secret %s", before[i].name)
		}
	}

	// Secrets in the clear, as an earlier mcpedge left them: the next
	// start seals them in place and the key still works.
	st, err := open.OpenWithKey(t.Context(), "", dir, sealbox.FileKey(keyPath))
	if err != nil {
		t.Fatal(err)
	}
	d, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range after {
		v, err := st.GetOrCreateSecret(t.Context(), r.name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(t.Context(), `UPDATE secrets SET value = ?, sealed = 0 WHERE name = ?`, v, r.name); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	d.Close()
	for _, r := range rawSecrets(t, db) {
		if r.sealed {
			t.Fatalf("secret %s still sealed", r.name)
		}
	}
	p = startServe(t, env, "--config", cfg)
	p.waitReadyAuth(t, testAdminKey, "lattice")
	works(p, "after sealing plaintext secrets")
	checkSealed(t, db, 2)
}

// A PostgreSQL store needs an explicit master key, and then works with
// the CLI; [store] key settings are checked.
func TestSecretsKeySources(t *testing.T) {
	pg := storetest.PostgresURL(t)
	cfg := writeConfig(t, "[store]\nurl = \""+pg+"\"\n")
	env := append(secEnv(t), open.KeyEnv+"=")
	_, errs, code := mcpedge(t, "", env, "secrets", "status", "--config", cfg)
	if code != 1 || !strings.Contains(errs, "PostgreSQL store needs the master key") || !strings.Contains(errs, open.KeyEnv) {
		t.Fatalf("postgres without a key: exit %d: %s", code, errs)
	}
	missing := filepath.Join(t.TempDir(), "shared.key")
	cfgFile := writeConfig(t, "[store]\nurl = \""+pg+"\"\nkey_file = \""+filepath.ToSlash(missing)+"\"\n")
	if _, errs, code := mcpedge(t, "", env, "secrets", "status", "--config", cfgFile); code != 1 || !strings.Contains(errs, missing+" does not exist") {
		t.Fatalf("postgres with a missing key file: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("the missing key file of a postgres store was created")
	}
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(missing, k, 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(t, env, "secrets", "rekey", "--config", cfgFile)
	if !strings.Contains(out, "key 2 is active (master key from key file "+missing+")") {
		t.Fatalf("rekey: %s", out)
	}
	// The same key through a custom variable opens the same store.
	cfgEnv := writeConfig(t, "[store]\nurl = \""+pg+"\"\nkey = \"env\"\nkey_env = \"SHARED_STORE_KEY\"\n")
	if _, errs, code := mcpedge(t, "", env, "secrets", "status", "--config", cfgEnv); code != 1 || !strings.Contains(errs, "SHARED_STORE_KEY is not set") {
		t.Fatalf("key = env without the variable: exit %d: %s", code, errs)
	}
	master, r := secretsStatus(t, append(env, "SHARED_STORE_KEY="+base64.StdEncoding.EncodeToString(k)), cfgEnv)
	if master != "environment variable SHARED_STORE_KEY" || len(r.Keys) != 2 || !r.Keys[1].Active {
		t.Fatalf("status through the variable: %s %+v", master, r)
	}
	out, errs, code = mcpedge(t, "", env, "secrets", "status", "--config", writeConfig(t, "[store]\nurl = \""+pg+"\"\nkey = \"tpm\"\n"))
	if code != 1 || !strings.Contains(errs, "replicas sharing a PostgreSQL store need the same key") {
		t.Fatalf("key = tpm on postgres: exit %d: %s%s", code, out, errs)
	}
	for _, tc := range []struct{ conf, want string }{
		{"[store]\nkey = \"vault\"\n", "store.key"},
		{"[store]\nkey_env = \"1BAD\"\n", "store.key_env"},
		{"[store]\nkey = \"env\"\nkey_file = \"/x\"\n", "store.key_file"},
	} {
		_, errs, code := mcpedge(t, "", env, "config", "check", "--config", writeConfig(t, tc.conf))
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("config check of %q: exit %d: %s", tc.conf, code, errs)
		}
	}
	if _, errs, code := mcpedge(t, "", env, "secrets", "frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "secrets frobnicate"`) {
		t.Errorf("unknown subcommand: exit %d: %s", code, errs)
	}
	if _, errs, code := mcpedge(t, "", env, "secrets", "rekey", "extra"); code != 2 || !strings.Contains(errs, "unexpected argument") {
		t.Errorf("extra argument: exit %d: %s", code, errs)
	}
}

// [store] key = "tpm": the master key is sealed to the TPM and kept in
// <data_dir>/store.tpm; the same TPM opens the store again, another TPM
// (another machine) is refused with an error naming the key.
func TestSecretsTPMKey(t *testing.T) {
	tpm := swtpmtest.Start(t)
	dir := t.TempDir()
	conf := func(addr string) string {
		return writeConfig(t, "[server]\ndata_dir = \""+filepath.ToSlash(dir)+"\"\n[device]\ntpm = \""+addr+"\"\n[store]\nkey = \"tpm\"\n")
	}
	cfg := conf(tpm.Addr)
	env := append(secEnv(t), open.KeyEnv+"=")
	sealedPath := filepath.Join(dir, "store.tpm")
	master, r := secretsStatus(t, env, cfg)
	if master != "TPM-sealed key "+sealedPath || len(r.Keys) != 1 {
		t.Fatalf("status: %s %+v", master, r)
	}
	if _, err := os.Stat(sealedPath); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, open.KeyFile)); err == nil {
		t.Error("a key file was made beside the TPM-sealed key")
	}
	cli(t, env, "tenant", "create", "acme", "--config", cfg)
	key := lastLine(cli(t, env, "key", "create", "--config", cfg, "--tenant", "acme", "--role", "member"))
	out := cli(t, env, "secrets", "rekey", "--config", cfg)
	if !strings.Contains(out, "key 2 is active (master key from TPM-sealed key "+sealedPath+")") {
		t.Fatalf("rekey: %s", out)
	}
	checkSealed(t, filepath.Join(dir, open.DefaultFile), 2)
	p := startServe(t, env, "--config", cfg)
	p.waitReadyAuth(t, testAdminKey, "lattice")
	if st, _, _ := rawInit(t, p.URL+"/mcp", key, nil); st != http.StatusOK {
		t.Fatalf("a key made before the rekey, on a gateway with the TPM key: %d", st)
	}
	stop(p)

	other := swtpmtest.Start(t)
	if _, errs, code := mcpedge(t, "", env, "secrets", "status", "--config", conf(other.Addr)); code != 1 || !strings.Contains(errs, sealedPath+": it was sealed by another TPM") {
		t.Fatalf("another TPM: exit %d: %s", code, errs)
	}
	if _, errs, code := mcpedge(t, "", env, "secrets", "status", "--config", conf("off")); code != 1 || !strings.Contains(errs, "TPM-sealed key") {
		t.Fatalf("tpm = off with key = tpm: exit %d: %s", code, errs)
	}
}
