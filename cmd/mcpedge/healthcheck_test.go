package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheckCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"healthcheck", "--url", srv.URL + "/healthz"}, 0, "ok", ""},
		{[]string{"healthcheck", "--url", srv.URL + "/other"}, 1, "", "503 Service Unavailable: draining"},
		{[]string{"healthcheck", "--url", "ftp://x/"}, 1, "", "want http:// or https://"},
		{[]string{"healthcheck", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"healthcheck", "--timeout", "soon"}, 2, "", `invalid argument "soon"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.inStdout) || !strings.Contains(stderr.String(), tt.inStderr) {
			t.Errorf("mcpedge %v: exit %d, stdout %q, stderr %q; want exit %d with %q / %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.inStdout, tt.inStderr)
		}
	}
}
