package edge

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// fileKey is a software device key for tests (devicekey's file key
// without the file).
type fileKey struct{ *ecdsa.PrivateKey }

func (k fileKey) Kind() string { return "file" }
func (k fileKey) ID() string {
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:16])
}

func newFileKey(t *testing.T) fileKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return fileKey{k}
}

func memStore(t *testing.T) store.Store {
	st, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testHub is the hub side in-process: the real hub.Service over a real
// store and credential service, behind a handler that authenticates like
// the gateway does, and an /mcp that says whether the credential is good.
type testHub struct {
	st   store.Store
	auth *auth.Service
	srv  *httptest.Server
	tok  string
	mcp  chan string // Authorization headers /mcp saw
}

func newTestHub(t *testing.T, opts ...func(*hub.Options)) *testHub {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st := memStore(t)
	al := audit.NewLogger(st, log, audit.LoggerOptions{})
	t.Cleanup(func() { _ = al.Close(context.Background()) })
	as, err := auth.New(ctx, auth.Options{Store: st, Audit: al.Record, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	tn := &store.Tenant{Name: "edges", Plan: "free"}
	if err := st.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	tok, err := hub.CreateToken(ctx, st, tn.ID, "t", 1, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o := hub.Options{Store: st, Credentials: as, Audit: al, Log: log}
	for _, f := range opts {
		f(&o)
	}
	svc := hub.New(o)
	h := &testHub{st: st, auth: as, tok: tok.Token, mcp: make(chan string, 16)}
	public := map[string]bool{}
	for _, p := range hub.PublicPaths {
		public[p] = true
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !public[r.URL.Path] {
			p, err := as.Authenticate(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "127.0.0.1")
			if err != nil {
				http.Error(w, `{"error":{"code":"unauthenticated","message":"`+err.Error()+`"}}`, http.StatusUnauthorized)
				return
			}
			r = r.WithContext(principal.With(r.Context(), p))
		}
		if r.URL.Path == "/mcp" {
			h.mcp <- r.Header.Get("Authorization") + " link=" + r.Header.Get(linkHeader)
			_, _ = io.WriteString(w, "mcp ok")
			return
		}
		svc.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// edgeAudit is the edge's own audit log with n entries.
func edgeAudit(t *testing.T, n int) store.Store {
	st := memStore(t)
	for i := range n {
		e := &store.AuditEntry{Time: time.Now(), Actor: "k", ActorKind: "key", Action: "tool.call", Target: fmt.Sprint("t", i), Outcome: "ok"}
		if err := st.AppendAudit(t.Context(), []*store.AuditEntry{e}, storetest.Seal); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func newLink(t *testing.T, h *testHub, key Key, au store.Audit, buffer int, opts ...func(*Options)) *Link {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpedge_test_gauge", Help: "a gauge"})
	g.Set(7)
	reg.MustRegister(g)
	o := Options{
		Hub: config.Hub{URL: h.srv.URL, EnrollToken: h.tok, Name: "t1", Timeout: config.Duration(5 * time.Second),
			TelemetryInterval: config.Duration(time.Hour), TelemetryBatch: 3, TelemetryBuffer: buffer},
		Key: key, Audit: au, Gatherer: reg, Registerer: reg,
	}
	for _, f := range opts {
		f(&o)
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < d; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within %s", what, d)
}

// TestLink: the edge enrolls, its proxy adds the device credential (and
// admits only the gateway), telemetry sends the audit backlog in batches
// and resumes where the hub stands, a refused credential is replaced, and
// Close leaves no goroutine behind.
func TestLink(t *testing.T) {
	h := newTestHub(t)
	key := newFileKey(t)
	before := runtime.NumGoroutine()
	l := newLink(t, h, key, edgeAudit(t, 7), 10)
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "signed in", func() bool { return l.Status().SignedIn })
	if s := l.Status(); s.Tenant != "edges" || s.DeviceID != key.ID() || s.Kind != "file" {
		t.Errorf("status %+v", s)
	}

	// The proxy: with the link secret, the request reaches /mcp with the
	// device's credential; without it, it is refused.
	u := l.Upstream()
	if u.Name != UpstreamName || u.NamePrefix() != "" || u.Transport != config.TransportHTTP {
		t.Errorf("upstream %+v", u)
	}
	req, _ := http.NewRequest(http.MethodPost, u.URL, strings.NewReader("{}"))
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen := <-h.mcp
	if resp.StatusCode != 200 || string(body) != "mcp ok" || !strings.HasPrefix(seen, "Bearer mcpe_") || !strings.HasSuffix(seen, "link=") {
		t.Errorf("through the proxy: %d %q, the hub saw %q", resp.StatusCode, body, seen)
	}
	resp, err = http.Post(u.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("without the link secret: %d", resp.StatusCode)
	}

	// Telemetry: 7 entries in batches of 3.
	if err := l.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	dev, err := h.st.GetDevice(t.Context(), key.ID())
	if err != nil || dev.AuditSeq != 7 || !strings.Contains(string(dev.Metrics), "mcpedge_test_gauge") {
		t.Fatalf("device after flush: %+v %v", dev, err)
	}
	// The hub lost track (another batch moved it back): the edge resyncs.
	if err := h.st.RecordDeviceTelemetry(t.Context(), key.ID(), 7, 9, nil, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := l.Status(); s.AuditAcked != 9 {
		t.Errorf("after a resync the edge is at %d, want the hub's 9", s.AuditAcked)
	}

	// The hub revokes the credential: the next refusal makes the edge sign
	// in again.
	old := l.token
	if err := h.auth.RevokeKey(t.Context(), dev.TenantID, dev.CredKeyID); err != nil {
		t.Fatal(err)
	}
	_ = l.Flush(t.Context()) // refused, and the credential dropped
	waitUntil(t, 10*time.Second, "a new credential", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.token != "" && l.token != old
	})

	l.Close()
	waitUntil(t, 5*time.Second, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before+2 })
}

// TestLinkHubDown: while the hub is unreachable, snapshots are kept up to
// the buffer and the oldest dropped and counted; calls through the proxy
// fail with 503 or 502, never hang.
func TestLinkHubDown(t *testing.T) {
	h := newTestHub(t)
	h.srv.Close()
	l := newLink(t, h, newFileKey(t), edgeAudit(t, 1), 3)
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 5 {
		l.takeSnapshot()
	}
	if s := l.Status(); s.Buffered != 3 || s.Dropped != 2 || s.SignedIn {
		t.Errorf("status with the hub down: %+v", s)
	}
	u := l.Upstream()
	req, _ := http.NewRequest(http.MethodPost, u.URL, strings.NewReader("{}"))
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "not signed in to the hub") || time.Since(start) > 12*time.Second {
		t.Errorf("through the proxy with the hub down: %d %q after %s", resp.StatusCode, b, time.Since(start))
	}
	if err := l.Flush(t.Context()); err == nil {
		t.Error("flush with the hub down succeeded")
	}
}

var _ crypto.Signer = fileKey{}

// FuzzDecodeRefusal: whatever a hub (or something in its place) answers,
// the edge turns it into an error with a bounded message and never
// panics.
func FuzzDecodeRefusal(f *testing.F) {
	f.Add(401, []byte(`{"error":{"code":"bad_token","message":"the enrollment token is unknown"}}`))
	f.Add(502, []byte("<html>bad gateway</html>"))
	f.Add(409, []byte(`{"error":{"code":"conflict"},"audit_seq":-1}`))
	f.Add(200, []byte{})
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := decodeRefusal(status, body)
		if e == nil || e.code == "" {
			t.Fatal("no error or no code")
		}
		if e.code == "http_"+fmt.Sprint(status) && len(e.msg) > 300 {
			t.Fatalf("an unparsed answer of %d bytes kept whole", len(e.msg))
		}
		_ = e.Error()
		_ = e.permanent()
	})
}
