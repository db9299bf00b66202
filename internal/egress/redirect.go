package egress

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ForUpstream returns the policy of an upstream reached at rawURL (already
// checked with [CheckURL]): public addresses, the ranges in allow, and
// loopback when the URL's host is itself loopback ([IsLoopbackHost]).
func ForUpstream(name, rawURL string, allow []netip.Prefix) *Policy {
	p := &Policy{Who: fmt.Sprintf("upstream %q", name), Allow: allow, AllowKey: "allow_private"}
	if u, err := url.Parse(rawURL); err == nil {
		p.Loopback = IsLoopbackHost(u.Hostname())
	}
	return p
}

// Origin returns u's origin, scheme://host:port in lower case with the
// scheme's default port filled in: two URLs with the same origin reach the
// same server.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String() // one spelling per IPv6 address
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}

// maxRedirects bounds a chain of same-origin redirects, as net/http's
// default policy does.
const maxRedirects = 10

// SameOriginRedirects returns an [http.Client.CheckRedirect] function that
// follows a redirect only within the origin of the chain's first request.
// A redirect elsewhere is refused — the response is not followed, and
// nothing is sent to the other server, so the headers configured for this
// one (credentials, most often) cannot reach it.
func SameOriginRedirects(who string) func(req *http.Request, via []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) == 0 {
			return nil
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("%s: stopped after %d redirects", who, maxRedirects)
		}
		from, to := Origin(via[0].URL), Origin(req.URL)
		if from != to {
			return &RedirectError{Who: who, From: from, To: to}
		}
		return nil
	}
}

// RedirectError is a redirect to another origin that was not followed.
type RedirectError struct {
	Who      string
	From, To string // origins
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("%s: the server at %s redirected to %s; redirects to another origin are not followed, so that the upstream's headers and the call never reach a server that was not configured; if the server has moved, set url to its new address", e.Who, e.From, e.To)
}

// OriginError is a request for another origin than the configured one,
// refused before it was sent: an upstream's server may point the client
// elsewhere (a legacy SSE server names the endpoint messages are posted to),
// but the calls and the headers configured for it go to its own origin only.
type OriginError struct {
	Who       string
	Want, Got string // origins
}

func (e *OriginError) Error() string {
	return fmt.Sprintf("%s: refusing to send a request to %s: only the configured origin %s is sent the upstream's calls and headers (the server pointed the client to another origin)", e.Who, e.Got, e.Want)
}
