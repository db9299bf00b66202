package auth

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func post(t *testing.T, srv *httptest.Server, path, body, bearer string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: body %q is not JSON", path, b)
		}
	}
	if resp.StatusCode != http.StatusNoContent && resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q", path, resp.Header.Get("Cache-Control"))
	}
	return resp.StatusCode, m
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	e, tn, _ := sessionEnv(t)
	mux := http.NewServeMux()
	e.svc.Routes(mux, func(r *http.Request) string { return testIP })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	code, m := post(t, srv, "/api/auth/login", `{"tenant":"acme","user":"alice","password":"`+goodPassword+`"}`, "")
	if code != 200 || m["token_type"] != "Bearer" || m["access_token"] == "" || m["refresh_token"] == "" || m["expires_in"] != float64(900) {
		t.Fatalf("login: %d %v", code, m)
	}
	access, refresh := m["access_token"].(string), m["refresh_token"].(string)

	code, m = post(t, srv, "/api/auth/refresh", `{"refresh_token":"`+refresh+`"}`, "")
	if code != 200 || m["access_token"] == access {
		t.Fatalf("refresh: %d %v", code, m)
	}
	access2 := m["access_token"].(string)

	// Reuse of the first refresh token.
	code, m = post(t, srv, "/api/auth/refresh", `{"refresh_token":"`+refresh+`"}`, "")
	if e := apiError(m); code != 401 || e["code"] != "unauthenticated" || !strings.Contains(e["message"], "session was revoked") {
		t.Fatalf("refresh reuse: %d %v", code, m)
	}
	// That revoked the session, so log in again and log out.
	code, m = post(t, srv, "/api/auth/login", `{"tenant":"acme","user":"alice","password":"`+goodPassword+`"}`, "")
	if code != 200 {
		t.Fatalf("login: %d %v", code, m)
	}
	access3 := m["access_token"].(string)
	if code, m = post(t, srv, "/api/auth/logout", "", access3); code != 204 {
		t.Fatalf("logout: %d %v", code, m)
	}
	if code, _ = post(t, srv, "/api/auth/logout", "", access3); code != 401 {
		t.Fatalf("second logout: %d", code)
	}
	if code, _ = post(t, srv, "/api/auth/logout", "", access2); code != 401 {
		t.Fatalf("logout with a token of the revoked session: %d", code)
	}
	secret, _ := e.key(tn.ID, "member", 0)
	if code, m = post(t, srv, "/api/auth/logout", "", secret); code != 400 {
		t.Fatalf("logout with an API key: %d %v", code, m)
	}
}

func TestRoutesErrors(t *testing.T) {
	t.Parallel()
	e, tn, _ := sessionEnv(t)
	mux := http.NewServeMux()
	e.svc.Routes(mux, nil)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		path, body, bearer string
		code               int
		errCode            string
	}{
		{"/api/auth/login", `{"tenant":"acme","user":"alice","password":"wrong password"}`, "", 401, "unauthenticated"},
		{"/api/auth/login", `{"tenant":"nope","user":"alice","password":"wrong password"}`, "", 401, "unauthenticated"},
		{"/api/auth/login", `{"tenant":"acme"}`, "", 400, "invalid_argument"},
		{"/api/auth/login", `not json`, "", 400, "invalid_json"},
		{"/api/auth/login", `{"tenant":"acme","user":"alice","password":"x","extra":1}`, "", 400, "invalid_json"},
		{"/api/auth/login", `{"tenant":"acme","user":"alice","password":"x"} {}`, "", 400, "invalid_json"},
		{"/api/auth/login", `{"tenant":"` + strings.Repeat("a", maxAuthBody) + `"}`, "", 413, "body_too_large"},
		{"/api/auth/refresh", `{}`, "", 400, "invalid_argument"},
		{"/api/auth/refresh", `{"refresh_token":"mcpr_nope-nope-nope-nope-nope"}`, "", 401, "unauthenticated"},
		{"/api/auth/logout", ``, "", 401, "unauthenticated"},
		{"/api/auth/logout", ``, "garbage", 401, "unauthenticated"},
	} {
		code, m := post(t, srv, c.path, c.body, c.bearer)
		if e := apiError(m); code != c.code || e["code"] != c.errCode || e["message"] == "" {
			t.Errorf("%s %.40s: %d %v, want %d %s", c.path, c.body, code, m, c.code, c.errCode)
		}
	}
	// The tenant's allowlist applies to logins (the remote address of a
	// loopback test client is 127.0.0.1).
	tn.IPAllowlist = []string{"10.0.0.0/8"}
	e.updateTenant(tn)
	code, m := post(t, srv, "/api/auth/login", `{"tenant":"acme","user":"alice","password":"`+goodPassword+`"}`, "")
	if code != 403 || apiError(m)["code"] != "forbidden" {
		t.Fatalf("login from outside the allowlist: %d %v", code, m)
	}
	resp, err := srv.Client().Get(srv.URL + "/api/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET login: %d", resp.StatusCode)
	}
}

// apiError is the {"error": {"code", "message"}} of an error answer, the
// shape of every API error; empty when the body has another shape.
func apiError(m map[string]any) map[string]string {
	e, _ := m["error"].(map[string]any)
	out := map[string]string{}
	for _, k := range []string{"code", "message"} {
		if v, ok := e[k].(string); ok {
			out[k] = v
		}
	}
	return out
}
