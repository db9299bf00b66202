package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// FuzzAuthenticate presents arbitrary bearer credentials and client
// addresses to a Service on SQLite in memory that knows one generated API
// key, one imported API key and one access token (tenant "acme", allowlist
// 192.0.2.0/24). Every call must return exactly one of a principal and an
// error; errors are refusals (ErrUnauthenticated or ErrForbidden) with a
// reason and do not grow with the credential; only the three credentials
// (modulo surrounding space; a JWT only in its canonical base64, since
// tokens are decoded strictly: a last character whose unused low bits are
// set is malformed even though a lenient decoder gets the same signature)
// authenticate, from an allowed address, as their own principal; and the
// audit entries of refusals never contain the presented credential.
func FuzzAuthenticate(f *testing.F) {
	var lastAudit []store.AuditEntry
	e := newEnv(f, newTestStore(f), func(o *Options) {
		o.Audit = func(_ context.Context, a *store.AuditEntry) { lastAudit = append(lastAudit, *a) }
	})
	ctx := context.Background()
	tn := e.tenant("acme", func(t *store.Tenant) { t.IPAllowlist = []string{"192.0.2.0/24"} })
	u := e.user(tn.ID, "alice", principal.RoleAdmin, goodPassword)
	key, k := e.key(tn.ID, principal.RoleMember, time.Hour, func(k *store.APIKey) { k.Scopes = []string{"mcp:call"} })
	const imported = "imported-key-0123456789abcdef"
	ik := &store.APIKey{TenantID: tn.ID, Name: "imported", Role: principal.RoleViewer}
	if err := e.svc.ImportKey(ctx, ik, imported); err != nil {
		f.Fatalf("ImportKey: %v", err)
	}
	tok, err := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	if err != nil {
		f.Fatalf("Login: %v", err)
	}
	access := tok.AccessToken
	accessDot := strings.LastIndexByte(access, '.')
	accessSig, err := base64.RawURLEncoding.DecodeString(access[accessDot+1:])
	if err != nil {
		f.Fatal(err)
	}
	allowed := netip.MustParsePrefix("192.0.2.0/24")

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	ips := []string{testIP, "198.51.100.1", "", "192.0.2.10:443", "[::ffff:192.0.2.10]:80", "192.0.2.10%eth0", " 192.0.2.200 ", "2001:db8::1", "not an address"}
	toks := []string{
		key, " " + key + "\t\n", imported, access, "\t" + access + " ",
		flip(key, len(key)-1), key[:len(key)-1], key + "0", strings.ToUpper(key), KeyPrefix, KeyPrefix + strings.Repeat("0", keyRandLen),
		flip(imported, 0), imported[:MinImportedKeyLen-1],
		flip(access, len(access)-1), flip(access, accessDot-1), access[:accessDot+1], access[:accessDot], access + ".x",
		"", "   ", "a.b.c", "...", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer " + key,
		strings.Repeat("a", maxTokenLen+1), strings.Repeat(".", 3) + strings.Repeat("x", maxTokenLen),
		"\x00", "mcpe_\xff\xfe", "é.€.😀",
	}
	for i, t := range toks {
		f.Add(t, ips[i%len(ips)])
	}
	for _, ip := range ips {
		f.Add(key, ip)
		f.Add(access, ip)
	}

	f.Fuzz(func(t *testing.T, token, clientIP string) {
		lastAudit = lastAudit[:0]
		p, err := e.svc.Authenticate(ctx, token, clientIP)
		if (p == nil) == (err == nil) {
			t.Fatalf("Authenticate(%q, %q) = %+v, %v: want exactly one of a principal and an error", token, clientIP, p, err)
		}
		a, ipOK := parseClientIP(clientIP)
		ipOK = ipOK && allowed.Contains(a)
		trimmed := strings.TrimSpace(token)
		var want *principal.Principal // the principal the credential names, if any
		switch {
		case trimmed == key:
			want = &principal.Principal{Kind: principal.KindKey, ID: k.ID, KeyID: k.ID, TenantID: tn.ID, Role: principal.RoleMember}
		case trimmed == imported:
			want = &principal.Principal{Kind: principal.KindKey, ID: ik.ID, KeyID: ik.ID, TenantID: tn.ID, Role: principal.RoleViewer}
		case sameJWT(trimmed, access[:accessDot], accessSig):
			want = &principal.Principal{Kind: principal.KindUser, ID: u.ID, UserID: u.ID, TenantID: tn.ID, Role: principal.RoleAdmin}
		}
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrForbidden) {
				t.Fatalf("Authenticate(%q, %q): %v, want a refusal", token, clientIP, err)
			}
			if Reason(err) == "" || len(err.Error()) > 200 {
				t.Fatalf("Authenticate(%q, %q): error %q without a reason or too long", token, clientIP, err)
			}
			if want != nil {
				if ipOK {
					t.Fatalf("Authenticate(valid credential %q, allowed %q): %v", token, clientIP, err)
				}
				if !errors.Is(err, ErrForbidden) {
					t.Fatalf("Authenticate(valid credential %q, refused %q): %v, want ErrForbidden", token, clientIP, err)
				}
			}
			if len(trimmed) >= 16 {
				for _, a := range lastAudit {
					if bytes.Contains(a.Detail, []byte(trimmed)) || strings.Contains(a.Actor, trimmed) {
						t.Fatalf("audit entry %+v contains the credential %q", a, trimmed)
					}
				}
			}
			return
		}
		if want == nil {
			t.Fatalf("Authenticate(%q, %q) accepted an unknown credential as %+v", token, clientIP, p)
		}
		if !ipOK {
			t.Fatalf("Authenticate(%q, %q) accepted a client address outside the allowlist", token, clientIP)
		}
		if p.Kind != want.Kind || p.ID != want.ID || p.KeyID != want.KeyID || p.UserID != want.UserID ||
			p.TenantID != want.TenantID || p.TenantName != "acme" || p.Role != want.Role {
			t.Fatalf("Authenticate(%q, %q) = %+v, want %+v", token, clientIP, p, want)
		}
	})
}

// sameJWT reports whether tok is the JWT signingString.sig where the
// last segment of tok decodes (leniently, as the JWT library does) to sig.
func sameJWT(tok, signingString string, sig []byte) bool {
	rest, ok := strings.CutPrefix(tok, signingString+".")
	if !ok || strings.Contains(rest, ".") {
		return false
	}
	// Strict, like the token parser (jwt.WithStrictDecoding): a signature
	// with non-zero unused bits in its last character is not this one.
	got, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	return err == nil && bytes.Equal(got, sig)
}

// fuzzArgonBudget bounds the argon2 work FuzzVerifyPasswordPHC lets one
// input cost (memory KiB × passes), so that fuzzing stays fast; the
// bounds VerifyPassword itself enforces are checked separately.
const fuzzArgonBudget = 4096

// FuzzVerifyPasswordPHC feeds arbitrary encoded hashes to VerifyPassword:
// it returns an error (errBadHash) or a verdict, never panics, and a
// hash it accepts asks for at most maxArgonMemory KiB, maxArgonTime passes
// and maxArgonThreads lanes, whatever the string says. A hash made by
// hashWith verifies its own password only.
func FuzzVerifyPasswordPHC(f *testing.F) {
	good, err := hashWith(argonParams{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}, goodPassword)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, goodPassword)
	f.Add(good, "wrong password!")
	f.Add(good, strings.Repeat("x", MaxPasswordLen+1))
	for _, s := range []string{
		"",
		"$",
		"$$$$$",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA$",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19x$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4294967296,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=262145,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=256$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=-64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=064,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64, t=1, p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
		"$argon2id$v=19$m=64,t=1,p=1$!!!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 100000),
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	} {
		f.Add(s, goodPassword)
	}

	f.Fuzz(func(t *testing.T, encoded, pw string) {
		p, salt, key, err := parsePHC(encoded)
		if err != nil {
			if ok, verr := VerifyPassword(encoded, pw); ok || !errors.Is(verr, errBadHash) {
				t.Fatalf("VerifyPassword(%q) = %v, %v for a hash parsePHC refuses (%v)", encoded, ok, verr, err)
			}
			return
		}
		if p.memory < 8 || p.memory > maxArgonMemory || p.time < 1 || p.time > maxArgonTime ||
			p.threads < 1 || p.threads > maxArgonThreads || p.memory < 8*uint32(p.threads) {
			t.Fatalf("parsePHC(%q) accepted parameters %+v outside the bounds", encoded, p)
		}
		if len(salt) < 8 || len(salt) > 64 || len(key) < 16 || len(key) > 64 {
			t.Fatalf("parsePHC(%q): salt of %d and key of %d bytes", encoded, len(salt), len(key))
		}
		if uint64(p.memory)*uint64(p.time) > fuzzArgonBudget {
			return // within the bounds, but too slow to run here
		}
		if _, err := VerifyPassword(encoded, pw); err != nil {
			t.Fatalf("VerifyPassword(%q): %v for a hash parsePHC accepts", encoded, err)
		}
		if encoded == good {
			if ok, _ := VerifyPassword(encoded, pw); ok != (pw == goodPassword) {
				t.Fatalf("VerifyPassword(good, %q) = %v", pw, ok)
			}
		}
	})
}
