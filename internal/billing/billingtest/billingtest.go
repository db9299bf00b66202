// Package billingtest helps tests of billing: it starts Stripe's official
// mock server (stripe-mock, built once by scripts/test.sh into the tools
// cache) on loopback, records what reaches it, and signs webhook payloads
// the way Stripe documents.
//
// stripe-mock is stateless: it validates each request against Stripe's
// OpenAPI spec and answers with fixtures. So it proves that billing's
// requests are well-formed Stripe API calls, and the Recorder in front of
// it shows what was sent (paths, parameters, idempotency keys). It can not
// prove what Stripe would keep: idempotency is proven by the keys and
// parameters sent, not by Stripe's answers.
package billingtest

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// toolsDir is where scripts/tools.sh builds tools.
func toolsDir() string {
	if d := os.Getenv("MCPEDGE_TOOLS_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "mcpedge-tools")
	}
	return filepath.Join(os.TempDir(), "mcpedge-tools")
}

// repoRoot finds the module root above the working directory.
func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = up
	}
}

// StripeMockPath is the stripe-mock binary of the version scripts/tools.sh
// names. It skips the test when the binary is not built, or fails it when
// MCPEDGE_REQUIRE_SERVICES=1.
func StripeMockPath(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "tools.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^STRIPE_MOCK_VERSION=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/tools.sh does not set STRIPE_MOCK_VERSION")
	}
	p := filepath.Join(toolsDir(), "stripe-mock-"+string(m[1]), "stripe-mock")
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("stripe-mock is not built at %s (scripts/test.sh builds it)", p)
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + "; MCPEDGE_REQUIRE_SERVICES=1")
		}
		t.Skip(msg)
	}
	return p
}

// StartStripeMock starts stripe-mock on loopback ports the system picks
// and returns its HTTP base URL; it stops with the test.
func StartStripeMock(t testing.TB) string {
	t.Helper()
	cmd := exec.Command(StripeMockPath(t), "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		re := regexp.MustCompile(`Listening for HTTP at address: (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("stripe-mock did not say where it listens within 30s")
	}
	return ""
}

// A Call is one request the Recorder passed on.
type Call struct {
	Method, Path   string
	IdempotencyKey string
	Auth           string // the Authorization header
	Form           url.Values
	Status         int // what the Recorder answered; -1: it dropped the connection
}

// Recorder is a loopback proxy in front of stripe-mock that records every
// request, and can make requests of a path fail after stripe-mock
// answered (as when Stripe took a request and the answer was lost).
type Recorder struct {
	URL string
	mu  sync.Mutex
	// calls are the requests, in order.
	calls []Call
	// lose is how many answers to requests of a path are replaced by a
	// 500 after stripe-mock answered them.
	lose map[string]int
	// retry is the Stripe-Should-Retry header of the lost answers.
	retry bool
	// Answer, if set, answers instead of stripe-mock.
	Answer func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

// NewRecorder starts a recorder in front of upstream.
func NewRecorder(t testing.TB, upstream string) *Recorder {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rec := &Recorder{lose: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		c := Call{Method: r.Method, Path: r.URL.Path, IdempotencyKey: r.Header.Get("Idempotency-Key"), Auth: r.Header.Get("Authorization"), Form: form}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec.mu.Lock()
		answer := rec.Answer
		rec.mu.Unlock()
		if answer != nil && answer(w, r, body) {
			rec.add(c, 0)
			return
		}
		rw := httptest.NewRecorder()
		rp.ServeHTTP(rw, r)
		rec.mu.Lock()
		lost := rec.lose[r.URL.Path] > 0
		if lost {
			rec.lose[r.URL.Path]--
		}
		retry := rec.retry
		rec.mu.Unlock()
		if lost && retry {
			// The connection drops before the answer: a network error,
			// which stripe-go retries itself with the same key.
			rec.add(c, -1)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if lost {
			rec.add(c, http.StatusInternalServerError)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"type":"api_error","message":"the answer was lost (test)"}}`)
			return
		}
		rec.add(c, rw.Code)
		for k, vs := range rw.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rw.Code)
		_, _ = w.Write(rw.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

func (r *Recorder) add(c Call, status int) {
	c.Status = status
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}

// LoseAnswers loses the next n answers to requests of path after
// stripe-mock answered them: retry false answers a 500 api_error (which
// stripe-go does not retry), retry true drops the connection (a network
// error, which stripe-go retries itself).
func (r *Recorder) LoseAnswers(path string, n int, retry bool) {
	r.mu.Lock()
	r.lose[path], r.retry = n, retry
	r.mu.Unlock()
}

// Calls returns the requests of path ("" all) so far.
func (r *Recorder) Calls(path string) []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Call
	for _, c := range r.calls {
		if path == "" || c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// Signature is a Stripe-Signature header for payload signed with secret
// at ts, by the scheme Stripe documents: t=<unix>,v1=<hex HMAC-SHA256 of
// "<unix>.<payload>">.
func Signature(payload []byte, secret string, ts time.Time) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", ts.Unix())
	mac.Write(payload)
	return fmt.Sprintf("t=%d,v1=%s", ts.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

// Event is a Stripe event payload of type typ about object (a JSON
// object), created at created.
func Event(id, typ string, created time.Time, object string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2025-08-27.basil","created":%d,"livemode":false,"pending_webhooks":1,"type":%q,"data":{"object":%s}}`,
		id, created.Unix(), typ, strings.TrimSpace(object)))
}
