package guard

import (
	"math"
	"math/bits"
	"regexp"
	"slices"
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
	kind     string
	re       *regexp.Regexp
	anchored *regexp.Regexp // re, matching only at the start
	boundary bool           // re starts with \b
	group    int
	ok       func(string) bool
	hints    []string
	fold     bool
}

// A Redactor replaces secrets (and, when built with personal data,
// e-mail addresses, phone numbers and card numbers) by typed placeholders.
// Build it once with [NewRedactor]; it is safe for concurrent use.
type Redactor struct {
	rules []secretRule
	// The two-byte filter of Finds: pairs has the bit of every pair of
	// bytes that starts a literal of a rule (in any case for a folding
	// rule); first and second have, per byte, the bits of the rules with
	// a literal starting with it, or whose literal's second byte it is.
	pairs         [1 << 16 / 64]uint64
	first, second [256]uint16
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
		{kind: KindGitHubToken, hints: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
			re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b`)},
		{kind: KindSlackToken, hints: []string{"xox"},
			re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
		{kind: KindStripeKey, hints: []string{"sk_live_", "rk_live_"},
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
		hints: []string{"pass", "pwd", "secret", "token", "key", "credential"},
		re:    regexp.MustCompile(`(?i)\b(?:[a-z0-9]{1,20}[_-]){0,3}?(?:password|passwd|passphrase|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|credentials?)\b["']?\s*[:=]\s*["']?([^\s"',;<>]{8,})`)})
	for i := range r.rules {
		rule := &r.rules[i]
		body, flags := rule.re.String(), ""
		if rest, ok := strings.CutPrefix(body, "(?i)"); ok {
			body, flags = rest, "(?i)"
		}
		rule.anchored = regexp.MustCompile(flags + "^(?:" + body + ")")
		rule.boundary = strings.HasPrefix(body, `\b`)
		for _, h := range rule.hints {
			if len(h) < 2 {
				continue // e-mail: its own search in Finds
			}
			for _, a := range caseVariants(h[0], rule.fold) {
				for _, b := range caseVariants(h[1], rule.fold) {
					k := uint16(a)<<8 | uint16(b)
					r.pairs[k>>6] |= 1 << (k & 63)
					r.first[a] |= 1 << i
					r.second[b] |= 1 << i
				}
			}
		}
	}
	return r
}

// caseVariants is c, and its other case when fold.
func caseVariants(c byte, fold bool) []byte {
	switch {
	case fold && c >= 'a' && c <= 'z':
		return []byte{c, c - 'a' + 'A'}
	case fold && c >= 'A' && c <= 'Z':
		return []byte{c, c - 'A' + 'a'}
	}
	return []byte{c}
}

// Finds reports whether Redact may replace anything in s (or s is not
// valid UTF-8): one pass over s, which tries a rule's pattern only where
// a pair of bytes starts one of its literals. When it is false, Redact
// changes nothing: Redact's first replacement is always made on s as
// given, so a rule that matches nowhere in s cannot match after another
// rule's replacement either. (It may be true where Redact, skipping a
// candidate inside a longer match its check refused, changes nothing.)
func (r *Redactor) Finds(s string) bool {
	return !utf8.ValidString(s) || r.finds(s)
}

// WouldChange reports whether Normalize followed by Redact may change s
// (what the results guard does to a text): false means both return it as
// it is. One pass for the normaliser's check, one for the redactor's.
func (r *Redactor) WouldChange(s string) bool {
	return !clean(s) || r.finds(s)
}

// finds is Finds for valid UTF-8.
func (r *Redactor) finds(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		k := uint16(s[i])<<8 | uint16(s[i+1])
		if r.pairs[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		for m := r.first[s[i]] & r.second[s[i+1]]; m != 0; m &= m - 1 {
			rule := &r.rules[bits.TrailingZeros16(m)]
			for _, h := range rule.hints {
				if !hasLiteralAt(s, i, h, rule.fold) {
					continue
				}
				if !rule.fold {
					if rule.hit(s, i) {
						return true
					}
					continue
				}
				var starts [33]int // foldStarts looks at most 32 bytes back
				for _, q := range foldStarts(s, i, starts[:0]) {
					if rule.hit(s, q) {
						return true
					}
				}
			}
		}
	}
	for i := range r.rules {
		rule := &r.rules[i]
		if rule.kind != KindEmail && len(rule.hints) > 0 {
			continue
		}
		for _, p := range rule.candidates(s) {
			if rule.hit(s, p) {
				return true
			}
		}
	}
	return false
}

// hasLiteralAt reports whether s holds the literal h (ASCII; lower case
// when fold, matched in any case) at i.
func hasLiteralAt(s string, i int, h string, fold bool) bool {
	if len(s)-i < len(h) {
		return false
	}
	if !fold {
		return s[i:i+len(h)] == h
	}
	for j := 0; j < len(h); j++ {
		c := s[i+j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != h[j] {
			return false
		}
	}
	return true
}

// foldStarts appends to out where a key-word match holding the literal at
// i may start: each word boundary in the run of word characters and '-'
// that holds it, at most 32 bytes back ("client_secret", "api-key").
func foldStarts(s string, i int, out []int) []int {
	q := i
	for q > 0 && q > i-32 && (isWord(s[q-1]) || s[q-1] == '-') {
		q--
	}
	for ; q <= i; q++ {
		if q == 0 || !isWord(s[q-1]) {
			out = append(out, q)
		}
	}
	return out
}

// hit reports whether the rule replaces something with a match starting
// at p: its pattern matches there, and the value is not a placeholder and
// passes the rule's check.
func (rule *secretRule) hit(s string, p int) bool {
	if (rule.boundary && p > 0 && isWord(s[p-1])) || (rule.fold && !assignNear(s, p)) {
		return false
	}
	loc := rule.anchored.FindStringSubmatchIndex(s[p:])
	if loc == nil {
		return false
	}
	start, end := loc[2*rule.group], loc[2*rule.group+1]
	if start < 0 {
		return false
	}
	v := s[p+start : p+end]
	return !strings.HasPrefix(v, placeholderPrefix) && (rule.ok == nil || rule.ok(v))
}

// Redact returns s with every secret replaced by its placeholder, and the
// count of each kind replaced. Text without any is returned as is.
// Redact(Redact(s)) == Redact(s). Bytes that are not UTF-8 are replaced
// by U+FFFD (counted as [KindInvalid]), so the result is valid UTF-8.
//
// Go's regular expressions cost time in proportion to the text they
// search, several times over for patterns like these; so a rule's
// pattern is tried, anchored, only where a match can start: at each
// occurrence of one of its literals (or, for numbers, at each number).
// The result is what a search of the whole text would find.
func (r *Redactor) Redact(s string) (string, Counts) {
	var counts Counts
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		counts.Add(KindInvalid, 1)
	}
	// Where each rule with literals may match, from one pass over s
	// (starts); taken again after a rule replaced something.
	starts := r.starts(s, 0, nil)
	for i := range r.rules {
		rule := &r.rules[i]
		var cands []int
		if rule.kind != KindEmail && len(rule.hints) > 0 {
			cands = starts[i]
		} else {
			cands = rule.candidates(s)
		}
		if len(cands) == 0 {
			continue
		}
		var b strings.Builder
		last, copied, n := 0, 0, 0
		for _, p := range cands {
			if p < last && rule.kind == KindEmail {
				// An address may start anywhere in the run of its local
				// part: after the previous match, then.
				p = last
			}
			if p < last || (rule.boundary && p > 0 && isWord(s[p-1])) || (rule.fold && !assignNear(s, p)) {
				continue
			}
			loc := rule.anchored.FindStringSubmatchIndex(s[p:])
			if loc == nil {
				continue
			}
			last = p + loc[1]
			start, end := loc[2*rule.group], loc[2*rule.group+1]
			if start < 0 {
				continue
			}
			start, end = p+start, p+end
			v := s[start:end]
			if strings.HasPrefix(v, placeholderPrefix) || (rule.ok != nil && !rule.ok(v)) {
				continue
			}
			b.WriteString(s[copied:start])
			b.WriteString(Placeholder(rule.kind))
			copied = end
			n++
		}
		if n == 0 {
			continue
		}
		b.WriteString(s[copied:])
		s = b.String()
		counts.Add(rule.kind, n)
		if i+1 < len(r.rules) {
			starts = r.starts(s, i+1, starts)
		}
	}
	return s, counts
}

// starts returns, for each rule from the one at index from on that has
// literals (all but the e-mail and number rules), the positions in s
// where its match may start, in order: where one of its literals starts
// (found in one pass with the table of the byte pairs that start a
// literal, as finds does), or, for the key-word rule, each word boundary
// before such a literal in the run that holds it (foldStarts). out, if
// not nil, is reused.
func (r *Redactor) starts(s string, from int, out [][]int) [][]int {
	if out == nil {
		out = make([][]int, len(r.rules))
	}
	for i := from; i < len(r.rules); i++ {
		out[i] = out[i][:0]
	}
	var want uint16 = 0xffff << from
	folded := false
	for i := 0; i+1 < len(s); i++ {
		k := uint16(s[i])<<8 | uint16(s[i+1])
		if r.pairs[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		for m := r.first[s[i]] & r.second[s[i+1]] & want; m != 0; m &= m - 1 {
			ri := bits.TrailingZeros16(m)
			rule := &r.rules[ri]
			if rule.kind == KindEmail {
				continue
			}
			for _, h := range rule.hints {
				if !hasLiteralAt(s, i, h, rule.fold) {
					continue
				}
				if rule.fold {
					out[ri] = foldStarts(s, i, out[ri])
					folded = true
				} else if n := len(out[ri]); n == 0 || out[ri][n-1] != i {
					out[ri] = append(out[ri], i)
				}
				break
			}
		}
	}
	if folded {
		for i := from; i < len(r.rules); i++ {
			if r.rules[i].fold && len(out[i]) > 1 {
				slices.Sort(out[i])
				out[i] = slices.Compact(out[i])
			}
		}
	}
	return out
}

// candidates returns, in order, the positions in s where the match of a
// rule without literals (numbers) or of the e-mail rule may start; the
// other rules' are found by [Redactor.starts].
func (rule *secretRule) candidates(s string) []int {
	var out []int
	switch {
	case rule.kind == KindEmail:
		for from := 0; from < len(s); {
			i := strings.IndexByte(s[from:], '@')
			if i < 0 {
				break
			}
			i += from
			q := i
			for q > 0 && q > i-64 && emailLocal(s[q-1]) {
				q--
			}
			if q < i {
				out = append(out, q)
			}
			from = i + 1
		}
	case len(rule.hints) == 0:
		// Numbers: a digit after a non-word character, or "+digit".
		for i := 0; i < len(s); i++ {
			c := s[i]
			if (isDigit(c) && (i == 0 || !isWord(s[i-1]))) || (c == '+' && i+1 < len(s) && isDigit(s[i+1])) {
				out = append(out, i)
			}
		}
	}
	return out
}

// assignNear reports whether the key word at p may be assigned a value:
// after its run of word characters and '-', an optional quote, spaces and
// ':' or '=' (a cheap test before the key-word pattern, which requires
// as much: "passed" and "keyboard" are common words).
func assignNear(s string, p int) bool {
	i := p
	for i < len(s) && (isWord(s[i]) || s[i] == '-') {
		i++
	}
	if i < len(s) && (s[i] == '"' || s[i] == '\'') {
		i++
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v') {
		i++
	}
	return i < len(s) && (s[i] == ':' || s[i] == '=')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWord(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
}

func emailLocal(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strings.IndexByte("._%+-", c) >= 0
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
