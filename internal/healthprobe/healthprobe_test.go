package healthprobe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer ok.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\x1b[31m" + strings.Repeat("x", 500)))
	}))
	defer failing.Close()
	redirect := httptest.NewServer(http.RedirectHandler(ok.URL+"/healthz", http.StatusFound))
	defer redirect.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "healthy", opts: Options{URL: ok.URL + "/healthz"}},
		{name: "unhealthy status", opts: Options{URL: failing.URL + "/healthz"}, wantErr: "503 Service Unavailable: draining?[31m"},
		{name: "wrong path", opts: Options{URL: ok.URL + "/nope"}, wantErr: "404"},
		{name: "redirect not followed", opts: Options{URL: redirect.URL}, wantErr: "302"},
		{name: "connection refused", opts: Options{URL: closed}, wantErr: "refused"},
		{name: "timeout", opts: Options{URL: hang.URL, Timeout: 200 * time.Millisecond}, wantErr: "did not answer within 200ms"},
		{name: "bad scheme", opts: Options{URL: "ftp://127.0.0.1/healthz"}, wantErr: "want http:// or https://"},
		{name: "no host", opts: Options{URL: "http:///healthz"}, wantErr: "want http:// or https://"},
		{name: "unparsable", opts: Options{URL: "http://[::1"}, wantErr: "bad URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Probe(context.Background(), tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Probe: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Probe error = %v, want one containing %q", err, tt.wantErr)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error not shortened: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestProbeVerifiesCertificates(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	// httptest's certificate is not in the system roots: the probe must
	// refuse it rather than skip verification.
	err := Probe(context.Background(), Options{URL: srv.URL + "/healthz", ServerName: "example.com"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Probe of an unverifiable certificate = %v, want a certificate error", err)
	}
}
