package guard

import (
	"bytes"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Kinds of what a [Redactor] replaces: the placeholder is
// "[REDACTED:<kind>]".
const (
	KindAWSKey       = "aws_access_key"
	KindPrivateKey   = "private_key"
	KindGitHubToken  = "github_token"
	KindSlackToken   = "slack_token"
	KindStripeKey    = "stripe_key"
	KindGoogleAPIKey = "google_api_key"
	KindJWT          = "jwt"
	KindSecret       = "secret" // a high-entropy value after a key word
	KindEmail        = "email"
	KindPhone        = "phone"
	KindCard         = "card_number"
)

// Placeholder is what replaces a redacted value of kind.
func Placeholder(kind string) string { return "[REDACTED:" + kind + "]" }

const placeholderPrefix = "[REDACTED:"

// A secretRule finds one kind of secret: re's match (or, when group > 0,
// that submatch) is replaced, if ok (when set) accepts it. hint is a
// literal that every match contains (case-insensitive when fold), checked
// first so that a text without it costs one substring search.
type secretRule struct {
	kind  string
	re    *regexp.Regexp
	group int
	ok    func(string) bool
	hints []string
	fold  bool
}

// A Redactor replaces secrets (and, when built with personal data,
// e-mail addresses, phone numbers and card numbers) by typed placeholders.
// Build it once with [NewRedactor]; it is safe for concurrent use.
type Redactor struct {
	rules []secretRule
}

// RedactOptions configure a [Redactor]. The zero value redacts secrets
// only.
type RedactOptions struct {
	// PersonalData also redacts e-mail addresses, phone numbers and card
	// numbers (with a valid Luhn check digit).
	PersonalData bool
}

// NewRedactor compiles the redactor's patterns; o may be nil.
func NewRedactor(o *RedactOptions) *Redactor {
	var opts RedactOptions
	if o != nil {
		opts = *o
	}
	r := &Redactor{rules: []secretRule{
		{kind: KindPrivateKey, hints: []string{"-----BEGIN"},
			re: regexp.MustCompile(`-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,.\-]*)`)},
		{kind: KindAWSKey, hints: []string{"AKIA", "ASIA", "ABIA", "ACCA"},
			re: regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b`)},
		{kind: KindGitHubToken, hints: []string{"gh", "github_pat_"},
			re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b`)},
		{kind: KindSlackToken, hints: []string{"xox"},
			re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
		{kind: KindStripeKey, hints: []string{"_live_"},
			re: regexp.MustCompile(`\b[sr]k_live_[A-Za-z0-9]{16,}\b`)},
		{kind: KindGoogleAPIKey, hints: []string{"AIza"},
			re: regexp.MustCompile(`\bAIza[0-9A-Za-z_\-]{35,}`)},
		{kind: KindJWT, hints: []string{"eyJ"},
			re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)},
	}}
	if opts.PersonalData {
		r.rules = append(r.rules,
			secretRule{kind: KindEmail, hints: []string{"@"},
				re: regexp.MustCompile(`[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}\b`)},
			secretRule{kind: KindCard,
				re: regexp.MustCompile(`\b(?:\d[ -]?){12,18}\d\b`), ok: luhnOK},
			secretRule{kind: KindPhone,
				re: regexp.MustCompile(`(?:\+|\b)\d[\d .()\-]{6,20}\d\b`), ok: phoneOK},
		)
	}
	// Last: a value after a key word, when it looks random. Earlier rules
	// have replaced the values they know, and placeholders are skipped.
	r.rules = append(r.rules, secretRule{kind: KindSecret, group: 1, ok: highEntropy, fold: true,
		hints: []string{"pass", "pwd", "secret", "token", "key", "credential", "auth"},
		re:    regexp.MustCompile(`(?i)\b(?:password|passwd|passphrase|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|credentials?)\b["']?\s*[:=]\s*["']?([^\s"',;<>]{8,})`)})
	return r
}

// Redact returns s with every secret replaced by its placeholder, and the
// count of each kind replaced. Text without any is returned as is.
// Redact(Redact(s)) == Redact(s). Bytes that are not UTF-8 are replaced
// by U+FFFD (counted as [KindInvalid]), so the result is valid UTF-8.
func (r *Redactor) Redact(s string) (string, Counts) {
	var counts Counts
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		counts.Add(KindInvalid, 1)
	}
	var lower string
	for _, rule := range r.rules {
		if len(rule.hints) > 0 {
			found := false
			for _, h := range rule.hints {
				if rule.fold {
					if lower == "" {
						lower = strings.ToLower(s)
					}
					h = strings.ToLower(h)
					found = strings.Contains(lower, h)
				} else {
					found = strings.Contains(s, h)
				}
				if found {
					break
				}
			}
			if !found {
				continue
			}
		} else if !strings.ContainsAny(s, "0123456789") {
			continue
		}
		locs := rule.re.FindAllStringSubmatchIndex(s, -1)
		if len(locs) == 0 {
			continue
		}
		var b strings.Builder
		last, n := 0, 0
		for _, loc := range locs {
			start, end := loc[2*rule.group], loc[2*rule.group+1]
			if start < 0 {
				continue
			}
			v := s[start:end]
			if strings.HasPrefix(v, placeholderPrefix) || (rule.ok != nil && !rule.ok(v)) {
				continue
			}
			b.WriteString(s[last:start])
			b.WriteString(Placeholder(rule.kind))
			last = end
			n++
		}
		if n == 0 {
			continue
		}
		b.WriteString(s[last:])
		s, lower = b.String(), ""
		counts.Add(rule.kind, n)
	}
	return s, counts
}

// highEntropy accepts a value after a key word that looks generated: at
// least two kinds of characters (lower, upper, digits, others) and a
// Shannon entropy of at least 3 bits per character. "********",
// "required" and "<redacted>" pass through.
func highEntropy(v string) bool {
	var lower, upper, digit, other int
	freq := map[rune]int{}
	n := 0
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z':
			lower = 1
		case c >= 'A' && c <= 'Z':
			upper = 1
		case c >= '0' && c <= '9':
			digit = 1
		default:
			other = 1
		}
		freq[c]++
		n++
	}
	if lower+upper+digit+other < 2 {
		return false
	}
	var h float64
	for _, k := range freq {
		p := float64(k) / float64(n)
		h -= p * math.Log2(p)
	}
	return h >= 3
}

// luhnOK accepts 13 to 19 digits (separators ignored) with a valid Luhn
// check digit.
func luhnOK(v string) bool {
	var digits []int
	for _, c := range v {
		if c >= '0' && c <= '9' {
			digits = append(digits, int(c-'0'))
		}
	}
	if len(digits) < 13 || len(digits) > 19 {
		return false
	}
	sum := 0
	for i := range digits {
		d := digits[len(digits)-1-i]
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// phoneOK accepts 8 to 15 digits written as a phone number: with a
// leading "+", or grouped by separators (a bare run of digits is more
// often an id or a count).
func phoneOK(v string) bool {
	digits, seps := 0, 0
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
			seps++
		}
	}
	if digits < 8 || digits > 15 || dateLike(v) {
		return false
	}
	return strings.HasPrefix(v, "+") || seps >= 2
}

// dateLike reports whether v starts like a date (2026-12-07, 07.12.2026):
// those are not phone numbers.
func dateLike(v string) bool {
	d := func(i int) bool { return i < len(v) && v[i] >= '0' && v[i] <= '9' }
	iso := len(v) >= 10 && d(0) && d(1) && d(2) && d(3) && (v[4] == '-' || v[4] == '.' || v[4] == '/') && d(5) && d(6) && v[7] == v[4] && d(8) && d(9)
	eu := len(v) >= 10 && d(0) && d(1) && (v[2] == '-' || v[2] == '.' || v[2] == '/') && d(3) && d(4) && v[5] == v[2] && d(6) && d(7) && d(8) && d(9)
	return iso || eu
}

// MayMatch reports whether b (text, or JSON holding it) could hold
// anything the redactor replaces: false means Redact would find nothing
// in any string b spells without escapes. It is a cheap prefilter (one
// search per literal the rules need); JSON with \u escapes must be
// decoded to be sure.
func (r *Redactor) MayMatch(b []byte) bool {
	for _, rule := range r.rules {
		if len(rule.hints) == 0 {
			if bytes.ContainsAny(b, "0123456789") {
				return true
			}
			continue
		}
		for _, h := range rule.hints {
			if rule.fold {
				if containsFoldASCII(b, h) {
					return true
				}
			} else if bytes.Contains(b, []byte(h)) {
				return true
			}
		}
	}
	return false
}

// containsFoldASCII reports whether b contains lower (ASCII, lower case)
// in any case.
func containsFoldASCII(b []byte, lower string) bool {
	n := len(lower)
	for i := 0; i+n <= len(b); i++ {
		j := 0
		for j < n {
			c := b[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}
