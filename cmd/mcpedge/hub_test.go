package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
	"github.com/mcpedge/mcpedge/internal/hub"
)

// The tests in this file run a hub and an edge, both the real binary,
// on loopback: enrollment, forwarding, telemetry, the hub going away
// (SIGTERM and SIGKILL) and coming back, and what the hub refuses.

// freePort returns a loopback port that was free a moment ago, so a hub
// can be restarted on the same address.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// everythingEnvBlock is an everything upstream whose get-env tool shows
// WHERE, to tell which gateway's upstream answered.
func everythingEnvBlock(t *testing.T, name, where string) string {
	return everythingBlock(t, name) + "env = { WHERE = \"" + where + "\" }\n"
}

// testDevice is a device key made in the test, to speak the enrollment
// protocol by hand.
type testDevice struct {
	key *ecdsa.PrivateKey
	der []byte
	id  string
}

func newTestDevice(t *testing.T) *testDevice {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return &testDevice{key: k, der: der, id: hub.DeviceID(der)}
}

func hubNonce(t *testing.T, base string) []byte {
	t.Helper()
	code, b := apiDo(t, http.MethodPost, base+hub.PathNonce, "", "{}")
	var nr hub.NonceResponse
	if code != 200 || json.Unmarshal(b, &nr) != nil || len(nr.Nonce) != hub.NonceBytes {
		t.Fatalf("nonce: %d %s", code, b)
	}
	return nr.Nonce
}

// enrollBody is an enrollment request of d, signed by signer (d's own key
// unless another is given).
func (d *testDevice) enrollBody(t *testing.T, base string, nonce []byte, token string, signer *ecdsa.PrivateKey) string {
	if signer == nil {
		signer = d.key
	}
	sig, err := signer.Sign(rand.Reader, hub.Digest(hub.PurposeEnroll, nonce, d.id, base), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(hub.SignInRequest{DeviceID: d.id, Nonce: nonce, Signature: sig, HubURL: base, PublicKey: d.der, Kind: "file", Token: token, Name: "by-hand"})
	return string(b)
}

func errCode(b []byte) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(b, &e)
	return e.Error.Code
}

// TestHubEnrollmentRefusals: what the hub refuses, each with a clear 4xx
// and an audit entry, and that a refusal never costs the hub: a wrong or
// expired token, a replayed nonce, a signature by another key, a sign-in
// of an unknown device, garbage, and hostile telemetry (not zstd, a zip
// bomb, over the size bound, another device's batch).
func TestHubEnrollmentRefusals(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n")
	p := startServe(t, env, "--config", cfgPath)
	base := p.URL
	cli(t, env, "tenant", "create", "edges", "--config", cfgPath, "--upstreams", "*")
	tok := lastLine(cli(t, env, "hub", "token", "create", "--config", cfgPath, "--tenant", "edges"))
	short := lastLine(cli(t, env, "hub", "token", "create", "--config", cfgPath, "--tenant", "edges", "--ttl", "1s"))
	if !strings.HasPrefix(tok, hub.EnrollTokenPrefix) {
		t.Fatalf("token %q", tok)
	}
	d := newTestDevice(t)
	other := newTestDevice(t)

	cases := []struct {
		name   string
		body   func() string
		path   string
		status int
		code   string
	}{
		{"wrong token", func() string { return d.enrollBody(t, base, hubNonce(t, base), hub.EnrollTokenPrefix+"wrong", nil) }, hub.PathEnroll, 401, "bad_token"},
		{"no token", func() string { return d.enrollBody(t, base, hubNonce(t, base), "", nil) }, hub.PathEnroll, 401, "token_required"},
		{"expired token", func() string {
			time.Sleep(1100 * time.Millisecond)
			return d.enrollBody(t, base, hubNonce(t, base), short, nil)
		}, hub.PathEnroll, 401, "bad_token"},
		{"signature by another key", func() string { return d.enrollBody(t, base, hubNonce(t, base), tok, other.key) }, hub.PathEnroll, 401, "bad_signature"},
		{"nonce the hub never issued", func() string { return d.enrollBody(t, base, bytes.Repeat([]byte{7}, 32), tok, nil) }, hub.PathEnroll, 401, "stale_nonce"},
		{"signed for another hub", func() string {
			n := hubNonce(t, base)
			sig, _ := d.key.Sign(rand.Reader, hub.Digest(hub.PurposeEnroll, n, d.id, "http://evil.example"), crypto.SHA256)
			b, _ := json.Marshal(hub.SignInRequest{DeviceID: d.id, Nonce: n, Signature: sig, HubURL: "http://evil.example", PublicKey: d.der, Kind: "file", Token: tok})
			return string(b)
		}, hub.PathEnroll, 401, "wrong_hub"},
		{"session of an unknown device", func() string {
			n := hubNonce(t, base)
			sig, _ := other.key.Sign(rand.Reader, hub.Digest(hub.PurposeSession, n, other.id, base), crypto.SHA256)
			b, _ := json.Marshal(hub.SignInRequest{DeviceID: other.id, Nonce: n, Signature: sig, HubURL: base})
			return string(b)
		}, hub.PathSession, 401, "unknown_device"},
		{"garbage", func() string { return `{"device_id": 3}` }, hub.PathEnroll, 400, "invalid_request"},
		{"id of another key", func() string {
			b, _ := json.Marshal(hub.SignInRequest{DeviceID: other.id, Nonce: hubNonce(t, base), Signature: []byte{1}, HubURL: base, PublicKey: d.der, Kind: "file"})
			return string(b)
		}, hub.PathEnroll, 400, "invalid_request"},
	}
	for _, c := range cases {
		code, b := apiDo(t, http.MethodPost, base+c.path, "", c.body())
		if code != c.status || errCode(b) != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, b, c.status, c.code)
		}
	}

	// A replayed nonce: the first enrollment with it succeeds, the same
	// request again is refused.
	body := d.enrollBody(t, base, hubNonce(t, base), tok, nil)
	code, b := apiDo(t, http.MethodPost, base+hub.PathEnroll, "", body)
	var sr hub.SignInResponse
	if code != 200 || json.Unmarshal(b, &sr) != nil || sr.DeviceID != d.id || sr.TenantName != "edges" || sr.Token == "" {
		t.Fatalf("enrollment: %d %s", code, b)
	}
	if code, b := apiDo(t, http.MethodPost, base+hub.PathEnroll, "", body); code != 401 || errCode(b) != "stale_nonce" {
		t.Errorf("replayed enrollment: %d %s", code, b)
	}
	// The token was for one device: another device cannot use it again,
	// but the enrolled device enrolls again without one.
	if code, b := apiDo(t, http.MethodPost, base+hub.PathEnroll, "", other.enrollBody(t, base, hubNonce(t, base), tok, nil)); code != 401 || errCode(b) != "bad_token" {
		t.Errorf("a used-up token: %d %s", code, b)
	}
	code, b = apiDo(t, http.MethodPost, base+hub.PathEnroll, "", d.enrollBody(t, base, hubNonce(t, base), "", nil))
	var sr2 hub.SignInResponse
	if code != 200 || json.Unmarshal(b, &sr2) != nil || sr2.Token == sr.Token {
		t.Fatalf("re-enrollment without a token: %d %s", code, b)
	}
	// The first credential was revoked by the second sign-in.
	waitFor(t, 5*time.Second, "the previous credential revoked", func() bool {
		st, _, _ := rawInit(t, base+"/mcp", sr.Token, nil)
		return st == http.StatusUnauthorized
	})
	if st, _, _ := rawInit(t, base+"/mcp", sr2.Token, nil); st != http.StatusOK {
		t.Errorf("the device's credential on /mcp: %d", st)
	}
	// Device credentials may not administer the hub.
	if code, b := apiDo(t, http.MethodGet, base+hub.PathDevices, sr2.Token, ""); code != 403 {
		t.Errorf("a device lists devices: %d %s", code, b)
	}

	// Hostile telemetry, as the device: never a crash, always a 4xx.
	post := func(body []byte, enc string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, base+hub.PathTelemetry, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		req.Header.Set("Authorization", "Bearer "+sr2.Token)
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithWindowSize(1<<20))
	defer enc.Close()
	bomb := enc.EncodeAll(bytes.Repeat([]byte(" "), 64<<20), nil) // 64 MiB of spaces
	batch := func(dev string, from int64) []byte {
		raw, _ := json.Marshal(hub.Batch{DeviceID: dev, SentAt: time.Now(), Snapshots: []hub.Snapshot{{At: time.Now(), Series: map[string]float64{"x": 1}}}, AuditFrom: from, Audit: nil})
		return enc.EncodeAll(raw, nil)
	}
	big := make([]byte, 2<<20)
	_, _ = rand.Read(big)
	for _, c := range []struct {
		name   string
		body   []byte
		enc    string
		status int
	}{
		{"not compressed", []byte(`{"device_id":"x"}`), "", 415},
		{"garbage", []byte("this is not zstd"), "zstd", 400},
		{"zip bomb", bomb, "zstd", 413},
		{"over the size bound", big, "zstd", 413},
		{"another device's batch", batch(other.id, 0), "zstd", 403},
		{"a stale audit position", batch(d.id, 99), "zstd", 409},
	} {
		code, b := post(c.body, c.enc)
		if code != c.status {
			t.Errorf("telemetry %s: %d %s, want %d", c.name, code, b, c.status)
		}
	}
	if code, b := post(batch(d.id, 0), "zstd"); code != 200 {
		t.Errorf("a good batch after all that: %d %s", code, b)
	}
	if !t.Failed() {
		// Every refusal is audited.
		code, b = apiDo(t, http.MethodGet, base+"/api/audit?action=hub.&limit=1000", testAdminKey, "")
		if code != 200 || strings.Count(string(b), `"outcome":"denied"`) < len(cases) {
			t.Errorf("audited refusals: %d %s", code, b)
		}
	}
	if st, _, _ := rawInit(t, base+"/mcp", testAdminKey, nil); st != http.StatusOK {
		t.Errorf("the hub after the hostile requests: %d", st)
	}

	// Removing the device: its credential stops working at once, and it
	// cannot enroll again without a new token.
	if code, b := apiDo(t, http.MethodDelete, base+hub.PathDevices+"/"+d.id, sr2.Token, ""); code != 403 {
		t.Errorf("a device removes itself: %d %s", code, b)
	}
	if code, b := apiDo(t, http.MethodDelete, base+hub.PathDevices+"/"+d.id, testAdminKey, ""); code != 204 {
		t.Fatalf("removing the device: %d %s", code, b)
	}
	if code, _ := apiDo(t, http.MethodGet, base+hub.PathDevices+"/"+d.id, testAdminKey, ""); code != 404 {
		t.Errorf("a removed device: %d", code)
	}
	if st, _, _ := rawInit(t, base+"/mcp", sr2.Token, nil); st != http.StatusUnauthorized {
		t.Errorf("a removed device's credential: %d", st)
	}
	if code, b := apiDo(t, http.MethodPost, base+hub.PathEnroll, "", d.enrollBody(t, base, hubNonce(t, base), "", nil)); code != 401 || errCode(b) != "token_required" {
		t.Errorf("a removed device enrolls without a token: %d %s", code, b)
	}
}

// hubMetric reads one series from a Prometheus text exposition.
func hubMetric(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in the metrics", series)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func scrape(t *testing.T, p *gatewayProc) string {
	t.Helper()
	code, b := apiDo(t, http.MethodGet, p.URL+"/metrics", testAdminKey, "")
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, b)
	}
	return string(b)
}

// children lists the pids of a process's children (Linux /proc).
func children(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

func callText(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	if res.IsError {
		return sb.String(), fmt.Errorf("tool error: %s", sb.String())
	}
	return sb.String(), nil
}

type hubDevice struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Attested    bool      `json:"attested"`
	LastContact time.Time `json:"last_contact"`
	LastAddr    string    `json:"last_addr"`
	AuditSeq    int64     `json:"audit_seq"`
	Tenant      string    `json:"tenant"`
	QueueDepth  *int64    `json:"queue_depth"`
	Metrics     struct {
		At     time.Time          `json:"at"`
		Series map[string]float64 `json:"series"`
	} `json:"metrics"`
}

func getDevice(t *testing.T, base, id string) hubDevice {
	t.Helper()
	code, b := apiDo(t, http.MethodGet, base+hub.PathDevices+"/"+id, testAdminKey, "")
	var d hubDevice
	if code != 200 || json.Unmarshal(b, &d) != nil {
		t.Fatalf("device %s: %d %s", id, code, b)
	}
	return d
}

// edgeAuditOnHub returns the edge sequence numbers of the device's audit
// entries the hub stored, in order.
func edgeAuditOnHub(t *testing.T, base string) []int64 {
	t.Helper()
	var seqs []int64
	after := int64(0)
	for {
		code, b := apiDo(t, http.MethodGet, fmt.Sprintf("%s/api/audit?action=edge.&limit=1000&after=%d", base, after), testAdminKey, "")
		var page struct {
			Entries []struct {
				Seq    int64           `json:"seq"`
				Detail json.RawMessage `json:"detail"`
			} `json:"entries"`
		}
		if code != 200 || json.Unmarshal(b, &page) != nil {
			t.Fatalf("hub audit: %d %s", code, b)
		}
		for _, e := range page.Entries {
			var d struct {
				EdgeSeq int64 `json:"edge_seq"`
			}
			_ = json.Unmarshal(e.Detail, &d)
			seqs = append(seqs, d.EdgeSeq)
			after = e.Seq
		}
		if len(page.Entries) < 1000 {
			return seqs
		}
	}
}

// TestHubEdgeEndToEnd runs a hub with two upstreams and an edge with one
// local upstream of the same name as one of the hub's. The edge enrolls,
// its client calls a hub-only tool through it and a clashing tool that
// the edge answers locally (local first); the hub lists the device with a
// recent contact and receives its compressed telemetry. Then the hub is
// stopped (SIGTERM, later SIGKILL): the edge's local tools keep working,
// hub tools fail with a clear error, and a deferrable hub call is queued;
// when the hub is back, the edge reconnects, delivers the queued call and
// resumes telemetry without duplicating audit entries, having leaked no
// goroutines and no child processes.
func TestHubEdgeEndToEnd(t *testing.T) {
	hubData := t.TempDir()
	hubEnv := []string{"XDG_DATA_HOME=" + hubData, "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN="}
	hubCfg := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n"+everythingBlock(t, "ev")+everythingEnvBlock(t, "shared", "hub"))
	port := freePort(t)
	startHub := func() *gatewayProc {
		hp := startServe(t, hubEnv, "--config", hubCfg, "--listen", "127.0.0.1:"+port)
		hp.waitReadyAuth(t, testAdminKey, "ev", "shared")
		return hp
	}
	hp := startHub()
	hubURL := hp.URL
	cli(t, hubEnv, "tenant", "create", "edges", "--config", hubCfg, "--upstreams", "ev,shared")
	tok := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges"))

	edgeData := t.TempDir()
	edgeEnv := []string{"XDG_DATA_HOME=" + edgeData, "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN=", "MCPEDGE_ENROLL_TOKEN=" + tok}
	edgeCfg := writeConfig(t, "[device]\ntpm = \"off\"\n[hub]\nurl = \""+hubURL+"\"\nenroll_token = \"${MCPEDGE_ENROLL_TOKEN}\"\nname = \"edge-1\"\n"+
		"telemetry_interval = \"1s\"\ntimeout = \"10s\"\ndeferrable = [\"ev__echo\"]\n"+everythingEnvBlock(t, "shared", "edge"))
	ep := startServe(t, edgeEnv, "--config", edgeCfg)
	ep.waitReadyAuth(t, testAdminKey, "shared", "hub")

	cs, err := connectAs(t, ep.URL+"/mcp", testAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := toolNames(t, cs)
	if !names["ev__echo"] || !names["shared__get-env"] || !names["shared__echo"] {
		t.Fatalf("the edge offers %v", names)
	}
	// A hub-only tool answers through the hub.
	out, err := callText(t, cs, "ev__echo", map[string]any{"message": "via the hub"})
	if err != nil || !strings.Contains(out, "via the hub") {
		t.Fatalf("hub tool: %q %v", out, err)
	}
	// A tool both have is answered by the edge's own upstream.
	out, err = callText(t, cs, "shared__get-env", map[string]any{})
	if err != nil || !strings.Contains(out, `"WHERE": "edge"`) && !strings.Contains(out, `"WHERE":"edge"`) {
		t.Fatalf("the clashing tool was not answered locally: %.300q %v", out, err)
	}

	// The hub lists the device, with its telemetry.
	var dev hubDevice
	waitFor(t, 20*time.Second, "the device's telemetry on the hub", func() bool {
		code, b := apiDo(t, http.MethodGet, hubURL+hub.PathDevices, testAdminKey, "")
		var l struct{ Devices []hubDevice }
		if code != 200 || json.Unmarshal(b, &l) != nil || len(l.Devices) != 1 {
			return false
		}
		dev = getDevice(t, hubURL, l.Devices[0].ID)
		return dev.AuditSeq >= 2 && dev.Metrics.Series["go_goroutines"] > 0
	})
	if dev.Name != "edge-1" || dev.Kind != "file" || dev.Attested || dev.Tenant != "edges" || time.Since(dev.LastContact) > 30*time.Second || dev.LastAddr != "127.0.0.1" || dev.QueueDepth == nil {
		t.Errorf("device on the hub: %+v", dev)
	}
	lsOut := cli(t, hubEnv, "hub", "devices", "--config", hubCfg)
	if !strings.Contains(lsOut, dev.ID) || !strings.Contains(lsOut, "edge-1") || !strings.Contains(lsOut, "file") {
		t.Errorf("mcpedge hub devices:\n%s", lsOut)
	}
	if seqs := edgeAuditOnHub(t, hubURL); len(seqs) < 2 || seqs[0] != 1 {
		t.Errorf("the edge's audit entries on the hub: %v", seqs)
	}
	m := scrape(t, ep)
	if hubMetric(t, m, "mcpedge_hub_signed_in") != 1 || hubMetric(t, m, `mcpedge_hub_telemetry_posts_total{outcome="ok"}`) < 1 {
		t.Errorf("edge hub metrics:\n%s", grepLines(m, "mcpedge_hub_"))
	}

	// Steady state: goroutines and children before the hub goes away.
	time.Sleep(2 * time.Second)
	goroutinesBefore := hubMetric(t, scrape(t, ep), "go_goroutines")
	kidsBefore := children(ep.cmd.Process.Pid)

	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		_ = hp.cmd.Process.Signal(sig)
		_ = hp.cmd.Wait()
		// Local tools keep working.
		out, err = callText(t, cs, "shared__echo", map[string]any{"message": "local"})
		if err != nil || !strings.Contains(out, "local") {
			t.Fatalf("round %d: a local tool with the hub down: %q %v", round, out, err)
		}
		// A hub tool that cannot wait fails, saying so, within the
		// upstream's timeout.
		start := time.Now()
		_, err = callText(t, cs, "ev__get-env", map[string]any{})
		if err == nil {
			t.Fatalf("round %d: a hub tool with the hub down answered", round)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("round %d: the failing hub call took %s", round, d)
		}
		t.Logf("round %d (%s): hub tool with the hub down: %v", round, sig, err)
		// A deferrable hub call is queued.
		res, qerr := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": fmt.Sprintf("queued %d", round)}})
		qid := queuedID(res)
		queued := qerr == nil && !res.IsError && qid != ""
		t.Logf("round %d: deferrable call with the hub down: queued=%v err=%v meta=%v", round, queued, qerr, metaOf(res))

		hp = startHub()
		ep.waitReadyAuth(t, testAdminKey, "hub")
		waitFor(t, 30*time.Second, "the hub tool back on the edge", func() bool {
			_, err := callText(t, cs, "ev__get-env", map[string]any{})
			return err == nil
		})
		if queued {
			waitFor(t, 60*time.Second, "the queued call delivered", func() bool {
				code, b := apiDo(t, http.MethodGet, ep.URL+"/api/queue/"+qid, testAdminKey, "")
				return code == 200 && strings.Contains(string(b), `"state":"done"`)
			})
			out, err := callText(t, cs, "mcpedge__queue_result", map[string]any{"id": qid})
			if err != nil || !strings.Contains(out, fmt.Sprintf("queued %d", round)) {
				t.Errorf("round %d: the queued call's result: %q %v", round, out, err)
			}
		} else {
			t.Errorf("round %d: the deferrable hub call was not queued: %v", round, qerr)
		}
	}

	// Telemetry resumed, without duplicates or gaps.
	var last int64
	waitFor(t, 20*time.Second, "telemetry after the restarts", func() bool {
		d := getDevice(t, hubURL, dev.ID)
		last = d.AuditSeq
		return d.AuditSeq > dev.AuditSeq && time.Since(d.LastContact) < 10*time.Second
	})
	seqs := edgeAuditOnHub(t, hubURL)
	if int64(len(seqs)) < last {
		t.Fatalf("the hub holds %d of the edge's audit entries, want at least the %d its sequence says", len(seqs), last)
	}
	for i, s := range seqs {
		if s != int64(i)+1 {
			t.Fatalf("the edge's audit entries on the hub are not 1..%d without duplicates: %v", last, seqs)
		}
	}

	// No leaks: goroutines back to where they were (give the transport's
	// idle connections and the SDK's sessions time to close), the same
	// children (the local upstream's process).
	var goroutinesAfter float64
	waitFor(t, 30*time.Second, "goroutines back to the steady state", func() bool {
		goroutinesAfter = hubMetric(t, scrape(t, ep), "go_goroutines")
		return goroutinesAfter <= goroutinesBefore+5
	})
	t.Logf("edge goroutines: %v before the hub went away, %v after two restarts", goroutinesBefore, goroutinesAfter)
	em := scrape(t, ep)
	posts, sent := hubMetric(t, em, `mcpedge_hub_telemetry_posts_total{outcome="ok"}`), hubMetric(t, em, "mcpedge_hub_telemetry_sent_bytes_total")
	t.Logf("telemetry: %v posts accepted, %v compressed bytes (%.0f per post), %d snapshot series, %d audit entries on the hub", posts, sent, sent/posts, len(getDevice(t, hubURL, dev.ID).Metrics.Series), len(seqs))
	if kidsAfter := children(ep.cmd.Process.Pid); strings.Join(kidsAfter, ",") != strings.Join(kidsBefore, ",") {
		t.Errorf("edge children: %v before, %v after", kidsBefore, kidsAfter)
	}
	// The edge's own data directory holds its device key, not the hub's
	// credential.
	sawKey := false
	_ = filepath.Walk(edgeData, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Size() < 1<<20 {
			sawKey = sawKey || filepath.Base(path) == devicekey.FileKeyName
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("mcpe_")) && !strings.HasSuffix(path, ".db") && !strings.Contains(path, ".db-") {
				t.Errorf("%s holds a credential", path)
			}
		}
		return nil
	})
	if !sawKey {
		t.Errorf("no %s under %s: the credential check looked in the wrong place", devicekey.FileKeyName, edgeData)
	}
}

// queuedID is the queue entry id of a queued call's answer, "" if it was
// not queued.
func queuedID(r *mcp.CallToolResult) string {
	if r == nil || r.Meta == nil {
		return ""
	}
	q, _ := r.Meta["io.mcpedge/queued"].(map[string]any)
	id, _ := q["id"].(string)
	return id
}

func metaOf(r *mcp.CallToolResult) any {
	if r == nil {
		return nil
	}
	return r.Meta
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestHubTPMEnrollment: an edge whose device key is in a (software) TPM
// enrolls with its attestation; the hub verifies it, pins the AK and
// lists the device as a TPM device, attested. After a restart the edge
// signs in again with the same key.
func TestHubTPMEnrollment(t *testing.T) {
	tpm := swtpmtest.Start(t)
	hubEnv := secEnv(t)
	hubCfg := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n")
	hp := startServe(t, hubEnv, "--config", hubCfg)
	cli(t, hubEnv, "tenant", "create", "edges", "--config", hubCfg, "--upstreams", "*")
	tok := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges"))

	edgeEnv := []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN="}
	edgeCfg := writeConfig(t, "[device]\ntpm = \""+tpm.Addr+"\"\n[hub]\nurl = \""+hp.URL+"\"\nenroll_token = \""+tok+"\"\ntelemetry_interval = \"1s\"\n")
	ep := startServe(t, edgeEnv, "--config", edgeCfg)
	var dev hubDevice
	waitFor(t, 30*time.Second, "the TPM device enrolled", func() bool {
		code, b := apiDo(t, http.MethodGet, hp.URL+hub.PathDevices, testAdminKey, "")
		var l struct{ Devices []hubDevice }
		if code != 200 || json.Unmarshal(b, &l) != nil || len(l.Devices) != 1 {
			return false
		}
		dev = l.Devices[0]
		return true
	})
	t.Logf("TPM device on the hub: %+v", dev)
	if dev.Kind != "tpm" || !dev.Attested {
		t.Fatalf("the TPM device on the hub: %+v", dev)
	}
	if out := cli(t, hubEnv, "hub", "devices", "--config", hubCfg); !strings.Contains(out, dev.ID) || !strings.Contains(out, " tpm ") || !strings.Contains(out, " yes ") {
		t.Errorf("mcpedge hub devices:\n%s", out)
	}
	// Restart the edge: it signs in with the same TPM key, no token needed.
	_ = ep.cmd.Process.Signal(syscall.SIGTERM)
	_ = ep.cmd.Wait()
	before := getDevice(t, hp.URL, dev.ID).LastContact
	edgeCfg2 := writeConfig(t, "[device]\ntpm = \""+tpm.Addr+"\"\n[hub]\nurl = \""+hp.URL+"\"\ntelemetry_interval = \"1s\"\n")
	startServe(t, edgeEnv, "--config", edgeCfg2)
	waitFor(t, 30*time.Second, "the TPM device signed in again", func() bool {
		d := getDevice(t, hp.URL, dev.ID)
		return d.LastContact.After(before) && d.Attested
	})
}

// TestHubCLI: the hub commands' usage errors and JSON output, without a
// running gateway (they work on the store directly).
func TestHubCLI(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"hub"}, "give a subcommand"},
		{[]string{"hub", "token"}, "give a subcommand"},
		{[]string{"hub", "token", "create", "--config", cfgPath}, "--tenant NAME is required"},
		{[]string{"hub", "token", "create", "--config", cfgPath, "--tenant", "nope"}, `tenant "nope" does not exist`},
		{[]string{"hub", "token", "create", "--config", cfgPath, "--tenant", "acme", "--uses", "0"}, "uses must be between 1 and 100000"},
		{[]string{"hub", "devices", "--config", cfgPath, "extra"}, "unexpected argument"},
		{[]string{"hub", "devices", "approve", "--config", cfgPath}, "missing the device ID"},
		{[]string{"hub", "devices", "approve", "a", "b", "--config", cfgPath}, `unexpected argument "b"`},
		{[]string{"hub", "devices", "pcrs", "0123456789abcdef0123456789abcdef", "--config", cfgPath}, "missing the policy"},
		{[]string{"hub", "devices", "pcrs", "0123456789abcdef0123456789abcdef", "sometimes", "--config", cfgPath}, `pcr_policy "sometimes"`},
		{[]string{"hub", "devices", "pcrs", "0123456789abcdef0123456789abcdef", "off", "--config", cfgPath}, "is not enrolled with this hub"},
	} {
		out, err := cliErr(env, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("mcpedge %s: %v\n%s\nwant an error saying %q", strings.Join(c.args, " "), err, out, c.want)
		}
	}
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath)
	if out := cli(t, env, "hub", "devices", "--config", cfgPath); !strings.Contains(out, "no devices enrolled") {
		t.Errorf("hub devices on a fresh store: %s", out)
	}
	if out := strings.TrimSpace(cli(t, env, "hub", "devices", "--json", "--config", cfgPath)); out != "[]" {
		t.Errorf("hub devices --json on a fresh store: %s", out)
	}
	out := cli(t, env, "hub", "token", "create", "--json", "--config", cfgPath, "--tenant", "acme", "--uses", "3", "--ttl", "2h", "--name", "line 3")
	var tok struct {
		Token string    `json:"token"`
		Uses  int       `json:"uses"`
		Name  string    `json:"name"`
		Exp   time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Token, hub.EnrollTokenPrefix) || tok.Uses != 3 || tok.Name != "line 3" || time.Until(tok.Exp) < time.Hour {
		t.Errorf("hub token create --json: %v %s", err, out)
	}
	// The token's creation is audited (actor cli).
	if out := cli(t, env, "audit", "export", "--config", cfgPath); !strings.Contains(out, `"hub.token.create"`) {
		t.Errorf("no hub.token.create in the audit log:\n%s", out)
	}
}
