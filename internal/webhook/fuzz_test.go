package webhook

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/events"
)

// FuzzCheckURL: an endpoint URL from a tenant never panics the check, and
// one it accepts is http(s) with a host and no credentials.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/x?t=1", "http://127.0.0.1:8080/", "http://[::1]/", "http://0x7f.1/", "http://u:p@h/", "ftp://h/", "", "http://h/#f", "http://169.254.169.254/latest"} {
		f.Add(s)
	}
	s := &Service{policy: newPolicy(nil)}
	f.Fuzz(func(t *testing.T, raw string) {
		if err := s.CheckURL(raw); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
			t.Fatalf("CheckURL accepted %q", raw)
		}
	})
}

// FuzzCheckEvents: a subscription's event list is accepted only when every
// entry is a known type.
func FuzzCheckEvents(f *testing.F) {
	f.Add("key.created,invoice.paid")
	f.Add("*")
	f.Add("invoice.,x")
	f.Fuzz(func(t *testing.T, list string) {
		evs := strings.Split(list, ",")
		if CheckEvents(evs) != nil {
			return
		}
		for _, e := range evs {
			if !events.Known(e) {
				t.Fatalf("CheckEvents accepted %q", e)
			}
		}
	})
}
