package canonjson

import "testing"

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		`{"b":1,"a":[2, 1.50,"<x>"]}`: `{"a":[2,1.50,"<x>"],"b":1}`,
		` "s" `:                       `"s"`,
		`null`:                        `null`,
	} {
		got, ok := Canonical([]byte(in))
		if !ok || string(got) != want {
			t.Errorf("Canonical(%s) = %s, %v; want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{``, `{`, `1 2`, `{"a":1}x`} {
		if _, ok := Canonical([]byte(bad)); ok {
			t.Errorf("Canonical(%q) accepted", bad)
		}
	}
}
