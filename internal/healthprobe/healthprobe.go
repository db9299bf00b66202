// Package healthprobe asks a running gateway whether it is alive, for
// `mcpedge healthcheck`: the container image has no shell, curl or wget, so
// its HEALTHCHECK runs the gateway's own binary.
package healthprobe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is the liveness endpoint of a gateway listening on the
// container's default address (0.0.0.0:8080), seen from inside it.
const DefaultURL = "http://127.0.0.1:8080/healthz"

// maxBody is how much of the answer is read: /healthz answers "ok".
const maxBody = 4 << 10

// Options say how to probe. The zero value probes DefaultURL within 3 s.
type Options struct {
	// URL is the endpoint, http or https; "" means DefaultURL.
	URL string
	// Timeout bounds the whole probe; zero means 3 s.
	Timeout time.Duration
	// ServerName is the name an https endpoint's certificate must carry
	// when URL names an address (such as 127.0.0.1) instead; "" means the
	// URL's host. The certificate is always verified.
	ServerName string
}

// Probe sends GET to the endpoint and returns nil when it answers 200. Any
// other status, a connection failure or a timeout is an error saying which.
// Redirects are not followed: a liveness endpoint answers by itself.
func Probe(ctx context.Context, o Options) error {
	raw := o.URL
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("healthcheck: bad URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("healthcheck: bad URL %q: want http:// or https:// with a host", raw)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		Proxy:             nil, // a probe of this container never goes through a proxy
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{ServerName: o.ServerName, MinVersion: tls.VersionTLS12},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("healthcheck: %s did not answer within %s", u.Redacted(), timeout)
		}
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", u.Redacted(), resp.Status, printable(body, 200))
	}
	return nil
}

// printable shortens an answer for an error message and replaces control
// characters, so a hostile or broken endpoint cannot write to the terminal.
func printable(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
