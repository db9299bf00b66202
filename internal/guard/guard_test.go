package guard

import (
	"maps"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
		counts         Counts
	}{
		{"plain ascii", "hello\tworld\r\n", "hello\tworld\r\n", nil},
		{"tags", "time" + "\U000E0041\U000E0042\U000E007F", "time", Counts{KindTag: 3}},
		{"bidi", "a\u202eb\u2066c\u200fd\u061c", "abcd", Counts{KindBidi: 4}},
		{"zero width", "ig\u200bnore\u2060 \ufeffit\u00ad", "ignore it", Counts{KindFormat: 4}},
		{"csi", "\x1b[31mred\x1b[0m \x1b[1A\x1b[2Kx", "red x", Counts{KindEscape: 4}},
		{"osc with bel and st", "a\x1b]8;;http://x\x07link\x1b]8;;\x1b\\b", "alinkb", Counts{KindEscape: 2}},
		{"osc unterminated hides the rest", "a\x1b]0;title and more", "a", Counts{KindEscape: 1}},
		{"c1 csi", "a\u009b31mb", "ab", Counts{KindEscape: 1}},
		{"lone esc and controls", "a\x1b\x00b\x07c\x7f", "abc", Counts{KindEscape: 1, KindControl: 3}},
		{"esc charset", "a\x1b(Bb", "ab", Counts{KindEscape: 1}},
		{"invalid utf8", "a\xffb", "a\ufffdb", Counts{KindInvalid: 1}},
		{"persian zwnj kept", "می\u200cخواهم", "می\u200cخواهم", nil},
		{"devanagari zwj kept", "क्\u200dष", "क्\u200dष", nil},
		{"zwj between latin dropped", "a\u200db", "ab", Counts{KindFormat: 1}},
		{"emoji zwj kept", "👩\u200d💻", "👩\u200d💻", nil},
		{"emoji vs zwj kept", "❤\ufe0f\u200d🔥", "❤\ufe0f\u200d🔥", nil},
		{"variation run", "a\ufe0f\ufe0f\U000E0100", "a\ufe0f", Counts{KindVariation: 2}},
		{"arabic number sign kept", "\u0600١٢", "\u0600١٢", nil},
		{"line separator kept", "a\u2028b", "a\u2028b", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, c := Normalize(tt.in)
			if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !maps.Equal(c, tt.counts) {
				t.Errorf("counts = %v, want %v", c, tt.counts)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HECdnH\nlWu2/a1gB9JW5TBQ+AVpum9Okx7KfqkfBKL9mcHgSVbDmbs=\n-----END RSA PRIVATE KEY-----"
	tests := []struct {
		name, in, want string
		counts         Counts
		personal       bool
	}{
		{"nothing", "the build passed in 3.2s", "the build passed in 3.2s", nil, false},
		{"aws", "id AKIAIOSFODNN7EXAMPLE ok", "id [REDACTED:aws_access_key] ok", Counts{KindAWSKey: 1}, false},
		{"aws sts", "ASIAY34FZKBOKMUTVV7A", "[REDACTED:aws_access_key]", Counts{KindAWSKey: 1}, false},
		{"pem", "key:\n" + pem + "\ndone", "key:\n[REDACTED:private_key]\ndone", Counts{KindPrivateKey: 1}, false},
		{"pem truncated", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n", "[REDACTED:private_key]", Counts{KindPrivateKey: 1}, false},
		{"github", "ghp_" + strings.Repeat("a1B2", 9) + " and github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[REDACTED:github_token] and [REDACTED:github_token]", Counts{KindGitHubToken: 2}, false},
		{"slack", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "[REDACTED:slack_token]", Counts{KindSlackToken: 1}, false},
		{"stripe", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[REDACTED:stripe_key]", Counts{KindStripeKey: 1}, false},
		{"google", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "[REDACTED:google_api_key]", Counts{KindGoogleAPIKey: 1}, false},
		{"jwt", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "Bearer [REDACTED:jwt]", Counts{KindJWT: 1}, false},
		{"keyword", `{"password": "Tr0ub4dor&3x!", "user": "bob"}`, `{"password": "[REDACTED:secret]", "user": "bob"}`, Counts{KindSecret: 1}, false},
		{"keyword env", "API_KEY=9f8e7d6c5b4a39281706", "API_KEY=[REDACTED:secret]", Counts{KindSecret: 1}, false},
		{"keyword with a prefix", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nGITHUB_TOKEN: 9f8e7d6c5b4a39281706ab", "aws_secret_access_key = [REDACTED:secret]\nGITHUB_TOKEN: [REDACTED:secret]", Counts{KindSecret: 2}, false},
		{"keyword low entropy", "password: ******** token: required", "password: ******** token: required", nil, false},
		{"email off", "mail bob@example.com", "mail bob@example.com", nil, false},
		{"email on", "mail bob@example.com", "mail [REDACTED:email]", Counts{KindEmail: 1}, true},
		{"card luhn", "card 4111 1111 1111 1111 ok, 4111 1111 1111 1112 not", "card [REDACTED:card_number] ok, 4111 1111 1111 1112 not", Counts{KindCard: 1}, true},
		{"phone", "call +44 20 7946 0958 on 2026-12-07 12:47", "call [REDACTED:phone] on 2026-12-07 12:47", Counts{KindPhone: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRedactor(&RedactOptions{PersonalData: tt.personal})
			got, c := r.Redact(tt.in)
			if got != tt.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if !maps.Equal(c, tt.counts) {
				t.Errorf("counts = %v, want %v", c, tt.counts)
			}
			again, c2 := r.Redact(got)
			if again != got || c2 != nil {
				t.Errorf("not idempotent: %q -> %q (%v)", got, again, c2)
			}
		})
	}
}

func TestDetectorRules(t *testing.T) {
	if _, err := NewDetector([]Rule{{ID: "a", Pattern: "("}}); err == nil {
		t.Error("a bad pattern was accepted")
	}
	if _, err := NewDetector([]Rule{{ID: "a", Pattern: "x"}, {ID: "a", Pattern: "y"}}); err == nil {
		t.Error("a duplicate id was accepted")
	}
	if _, err := NewDetector([]Rule{{ID: RuleHiddenUnicode, Pattern: "x"}}); err == nil {
		t.Error("the hidden-unicode id was accepted for a pattern")
	}
	d, err := NewDetector([]Rule{{ID: "mine", Pattern: `(?i)\bexfiltrate\b`, Explain: "ours"}})
	if err != nil {
		t.Fatal(err)
	}
	v := d.Scan("Please EXFILTRATE it\u200b")
	if got := strings.Join(v.Rules(), ","); got != "hidden-unicode,mine" {
		t.Errorf("rules = %s, want hidden-unicode,mine", got)
	}
	if v.Clean != "Please EXFILTRATE it" {
		t.Errorf("clean = %q", v.Clean)
	}
	if v := d.Scan("Reads a file."); v.Flagged() {
		t.Errorf("clean text flagged: %+v", v.Findings)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "plain", "eight by\x7ftes and more", "0123456\t89abcdef\x1f", "Größe \u00ad naïve", "\u2028ok\u202e", "\x1b[31mx\x1b]0;t\x07", "a\u200db", "क्\u200dष", "👩\u200d💻", "\U000E0041", "\xff\xfe", "a\ufe0f\ufe0f", "ب\u200d\u061cx", "\u009b1m\u009dx\u009c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, c := Normalize(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q: %q", s, out)
		}
		if (out != s) != (c != nil) {
			t.Fatalf("changed %v but counts %v", out != s, c)
		}
		again, c2 := Normalize(out)
		if again != out || c2 != nil {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, out, again, c2)
		}
		if clean(s) != cleanSlow(s) {
			t.Fatalf("clean(%q) = %v, the rune-by-rune reference says %v", s, clean(s), cleanSlow(s))
		}
	})
}

// cleanSlow is clean rune by rune, without the fast paths: the reference
// FuzzNormalize holds clean to.
func cleanSlow(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return false
		case (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f:
			return false
		case (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Cf, r) || isVariationSelector(r) || (r >= 0xE0000 && r <= 0xE007F):
			return false
		}
		i += size
	}
	return true
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"", "AKIAIOSFODNN7EXAMPLE", "password=Zx9!kQ2#mP", "-----BEGIN PRIVATE KEY-----\nabc", "4111111111111111", "bob@example.com +1 (555) 010-9999", "eyJabcdefghij.eyJabcdefghij.x", "token: [REDACTED:jwt]"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	plain, personal := NewRedactor(nil), NewRedactor(&RedactOptions{PersonalData: true})
	f.Fuzz(func(t *testing.T, s string, pd bool) {
		r := plain
		if pd {
			r = personal
		}
		out, _ := r.Redact(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		again, c := r.Redact(out)
		if again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, out, again, c)
		}
		if _, n := r.Redact(s); n != nil && !r.Finds(s) {
			t.Fatalf("Finds(%q) = false, but Redact counted %v", s, n)
		}
	})
}

// Finds is "Redact would change something": the one-pass filter that
// lets a clean text through without trying every rule.
func TestFinds(t *testing.T) {
	r, pd := NewRedactor(nil), NewRedactor(&RedactOptions{PersonalData: true})
	for _, tc := range []struct {
		s     string
		r, pd bool
	}{
		{"all good, the build passed and the key step took a token", false, false},
		{"id AKIAIOSFODNN7EXAMPLE", true, true},
		{"AKIAIOSFODNN7EXAMPL", false, false},
		{"PassWord=Zx9!kQ2#mPw", true, true},
		{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", true, true},
		{"password: ********", false, false},
		{"token: [REDACTED:jwt]", false, false},
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nabc", true, true},
		{"mail bob@example.com", false, true},
		{"card 4111 1111 1111 1111", false, true},
		{"a\xffb", true, true},
	} {
		if got := r.Finds(tc.s); got != tc.r {
			t.Errorf("Finds(%q) = %v, want %v", tc.s, got, tc.r)
		}
		if got := pd.Finds(tc.s); got != tc.pd {
			t.Errorf("personal data: Finds(%q) = %v, want %v", tc.s, got, tc.pd)
		}
	}
}

// redactWhole is Redact as a search of the whole text would do it: the
// reference for the anchored search Redact does.
func redactWhole(r *Redactor, s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for _, rule := range r.rules {
		var b strings.Builder
		copied := 0
		for _, loc := range rule.re.FindAllStringSubmatchIndex(s, -1) {
			start, end := loc[2*rule.group], loc[2*rule.group+1]
			if start < 0 {
				continue
			}
			v := s[start:end]
			if strings.HasPrefix(v, placeholderPrefix) || (rule.ok != nil && !rule.ok(v)) {
				continue
			}
			b.WriteString(s[copied:start])
			b.WriteString(Placeholder(rule.kind))
			copied = end
		}
		b.WriteString(s[copied:])
		s = b.String()
	}
	return s
}

// FuzzRedactAnchored checks that trying patterns only where a match can
// start finds what a search of the whole text finds.
func FuzzRedactAnchored(f *testing.F) {
	for _, s := range []string{"a@b.cc.d@e.ff", "x api-key: Zq9!kQ2#mPw", "passed password = Tr0ub4dor&3x! token", "AKIAIOSFODNN7EXAMPLExAKIAIOSFODNN7EXAMPLE", "+1 555 010 9999, 4111-1111-1111-1111", "ghp_" + strings.Repeat("a", 40) + " sk_live_" + strings.Repeat("b", 20)} {
		f.Add(s)
	}
	personal := NewRedactor(&RedactOptions{PersonalData: true})
	f.Fuzz(func(t *testing.T, s string) {
		got, _ := personal.Redact(s)
		if want := redactWhole(personal, s); got != want {
			t.Fatalf("Redact(%q)\n got %q\nwant %q", s, got, want)
		}
	})
}

// TestSuspectLead: every character Normalize removes or judges (C1
// controls, Cf, variation selectors, tags) starts with a byte clean's
// fast path looks at, in the unicode tables of this Go.
func TestSuspectLead(t *testing.T) {
	var b [4]byte
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Cf, r) || isVariationSelector(r) || (r >= 0xE0000 && r <= 0xE007F) {
			utf8.EncodeRune(b[:], r)
			if !suspectLead(b[0]) {
				t.Fatalf("U+%04X starts with %#x, which clean skips", r, b[0])
			}
		}
	}
}
