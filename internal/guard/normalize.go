// Package guard holds the detectors that look at what a model will read
// from an upstream: a normaliser that strips hidden Unicode and terminal
// escape sequences, a redactor of secrets (and, when asked, personal
// data), and a poisoning detector for tool and prompt descriptions whose
// rules are data.
//
// It knows nothing of the gateway: the pipeline stage (internal/stage/guard)
// applies it to results, the upstream's catalog hook to descriptions. Every
// function here is safe for concurrent use; the types holding compiled
// patterns are built once by their constructors and never change.
//
// See docs/guardrails.md, "Scanning", for what is caught and what is not.
package guard

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kinds of what [Normalize] removes, as counted in [Counts].
const (
	// KindTag: Unicode tag characters U+E0000–U+E007F (invisible ASCII
	// look-alikes that carry hidden instructions).
	KindTag = "tag"
	// KindBidi: bidirectional controls (U+202A–U+202E, U+2066–U+2069,
	// U+200E, U+200F, U+061C) that reorder what a reader sees.
	KindBidi = "bidi"
	// KindFormat: other invisible format characters (Unicode category Cf:
	// zero-width space, word joiner, BOM, soft hyphen, …), and ZWJ/ZWNJ
	// where no script needs them.
	KindFormat = "format"
	// KindVariation: a variation selector that does not directly follow a
	// character (a second one in a row, or one at the start): runs of
	// selectors can smuggle bytes.
	KindVariation = "variation"
	// KindEscape: a terminal escape sequence (ESC or C1 introduced: CSI,
	// OSC, DCS, …), removed whole.
	KindEscape = "escape"
	// KindControl: another C0 or C1 control character (all but tab, line
	// feed and carriage return), and DEL.
	KindControl = "control"
	// KindInvalid: a byte that is not valid UTF-8 (replaced by U+FFFD, not
	// removed).
	KindInvalid = "invalid"
)

// Counts says how many of each kind were removed or replaced, by kind. A
// nil Counts means nothing was.
type Counts map[string]int

// Add adds n of kind.
func (c *Counts) Add(kind string, n int) {
	if n == 0 {
		return
	}
	if *c == nil {
		*c = Counts{}
	}
	(*c)[kind] += n
}

// Merge adds every count of o.
func (c *Counts) Merge(o Counts) {
	for k, n := range o {
		c.Add(k, n)
	}
}

// Total is the sum of the counts.
func (c Counts) Total() int {
	t := 0
	for _, n := range c {
		t += n
	}
	return t
}

const (
	zwnj = '\u200C'
	zwj  = '\u200D'
)

// Normalize returns s without hidden Unicode and terminal escape
// sequences, and what it removed. Text that needs no change is returned
// as is, without allocating. Normalize(Normalize(s)) == Normalize(s), and
// the result is valid UTF-8.
//
// Kept on purpose (docs/guardrails.md, "Scanning"): tab, line feed and
// carriage return; U+2028/U+2029; Arabic, Syriac and other prepended
// concatenation marks (U+0600–U+0605, U+06DD, U+070F, U+0890–U+0891,
// U+08E2, U+110BD, U+110CD), which are visible; ZWNJ and ZWJ between two
// letters or marks of a script that uses them (Arabic and Persian,
// Syriac, N'Ko, Mongolian, the Indic scripts, Sinhala, Myanmar, Khmer)
// and ZWJ between two pictographic symbols (emoji sequences); one
// variation selector after a character.
func Normalize(s string) (string, Counts) {
	if clean(s) {
		return s, nil
	}
	var counts Counts
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			counts.Add(KindInvalid, 1)
			b.WriteRune(utf8.RuneError)
			i++
			continue
		}
		switch {
		case r == 0x1b || r == 0x9b || r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f:
			i += escapeLen(s[i:])
			counts.Add(KindEscape, 1)
			continue
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f, r >= 0x80 && r <= 0x9f:
			counts.Add(KindControl, 1)
		case r >= 0xE0000 && r <= 0xE007F:
			counts.Add(KindTag, 1)
		case isBidi(r):
			counts.Add(KindBidi, 1)
		case r == zwj || r == zwnj:
			if joinerNeeded(r, lastRune(b.String()), nextRune(s[i+size:])) {
				b.WriteRune(r)
			} else {
				counts.Add(KindFormat, 1)
			}
		case isVariationSelector(r):
			if last := lastRune(b.String()); last != utf8.RuneError && !isVariationSelector(last) && last != zwj && last != zwnj {
				b.WriteRune(r)
			} else {
				counts.Add(KindVariation, 1)
			}
		case unicode.Is(unicode.Cf, r) && !isConcatenationMark(r):
			counts.Add(KindFormat, 1)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	if counts == nil {
		return s, nil
	}
	return b.String(), counts
}

// clean reports whether s has nothing Normalize would change. It is
// the common case and one pass: eight ASCII bytes at a time while there
// are no controls, and a multi-byte character is decoded only when its
// first byte is one that every removed character starts with
// (suspectLead).
func clean(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			del := x ^ (lo * 0x7f)
			// No byte ≥ 0x80, none below 0x20, none 0x7f.
			if x&hi == 0 && (x-lo*0x20)&^x&hi == 0 && (del-lo)&^del&hi == 0 {
				i += 8
				continue
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
				return false
			}
			i++
			continue
		}
		if !suspectLead(c) {
			i += seqLen(c)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Cf, r) || isVariationSelector(r) || (r >= 0xE0000 && r <= 0xE007F) {
			return false
		}
		i += size
	}
	return true
}

// suspectLead reports whether c is the first byte, in UTF-8, of a C1
// control, a format character (Cf), a variation selector or a tag
// character; no other first byte starts one (TestSuspectLead checks it
// against the unicode tables).
func suspectLead(c byte) bool {
	switch c {
	case 0xC2, 0xD8, 0xDB, 0xDC, 0xE0, 0xE1, 0xE2, 0xEF, 0xF0, 0xF3:
		return true
	}
	return false
}

// seqLen is the length of the UTF-8 sequence that starts with c (valid).
func seqLen(c byte) int {
	switch {
	case c >= 0xF0:
		return 4
	case c >= 0xE0:
		return 3
	}
	return 2
}

// escapeLen is the length of the escape sequence at the start of s (which
// starts with ESC or a C1 introducer): ESC alone (or followed by a
// character that cannot continue a sequence) is 1 byte; a CSI runs to its
// final byte; OSC, DCS, SOS, PM and APC strings run to their terminator
// (BEL, ESC \ or ST), or to the end of s when unterminated (a terminal
// would hide the rest too); other ESC sequences are ESC, intermediate
// bytes and one final byte.
func escapeLen(s string) int {
	var n int     // bytes of the introducer
	var kind byte // '[' CSI, ']' string
	switch {
	case s[0] == 0x1b:
		n = 1
		if len(s) < 2 {
			return 1
		}
		switch c := s[1]; {
		case c == '[':
			kind, n = '[', 2
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			kind, n = ']', 2
		case c >= 0x20 && c <= 0x2f:
			j := 1
			for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
				j++
			}
			if j < len(s) && s[j] >= 0x30 && s[j] <= 0x7e {
				j++
			}
			return j
		case c >= 0x30 && c <= 0x7e:
			return 2
		default:
			return 1
		}
	default:
		// A C1 introducer in UTF-8 (two bytes: U+009B CSI, U+009D OSC, …).
		r, size := utf8.DecodeRuneInString(s)
		n = size
		if r == 0x9b {
			kind = '['
		} else {
			kind = ']'
		}
	}
	if kind == '[' {
		j := n
		for j < len(s) && s[j] >= 0x20 && s[j] <= 0x3f {
			j++
		}
		if j < len(s) && s[j] >= 0x40 && s[j] <= 0x7e {
			j++
		}
		return j
	}
	for j := n; j < len(s); j++ {
		switch {
		case s[j] == 0x07:
			return j + 1
		case s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\':
			return j + 2
		case s[j] == 0xc2 && j+1 < len(s) && s[j+1] == 0x9c: // U+009C ST
			return j + 2
		}
	}
	return len(s)
}

func isBidi(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}

func isVariationSelector(r rune) bool {
	return (r >= 0xFE00 && r <= 0xFE0F) || (r >= 0xE0100 && r <= 0xE01EF) || (r >= 0x180B && r <= 0x180D) || r == 0x180F
}

func isConcatenationMark(r rune) bool {
	return (r >= 0x0600 && r <= 0x0605) || r == 0x06DD || r == 0x070F || r == 0x0890 || r == 0x0891 || r == 0x08E2 || r == 0x110BD || r == 0x110CD
}

// joinerScript reports whether r belongs to a script in which ZWJ and
// ZWNJ change how letters join or conjuncts form.
func joinerScript(r rune) bool {
	for _, t := range []*unicode.RangeTable{
		unicode.Arabic, unicode.Syriac, unicode.Nko, unicode.Mongolian,
		unicode.Devanagari, unicode.Bengali, unicode.Gurmukhi, unicode.Gujarati, unicode.Oriya,
		unicode.Tamil, unicode.Telugu, unicode.Kannada, unicode.Malayalam, unicode.Sinhala,
		unicode.Myanmar, unicode.Khmer,
	} {
		if unicode.Is(t, r) {
			return true
		}
	}
	return false
}

// pictographic approximates Extended_Pictographic (not in the standard
// library): other symbols, and the emoji modifiers and regional
// indicators.
func pictographic(r rune) bool {
	return unicode.Is(unicode.So, r) || (r >= 0x1F3FB && r <= 0x1F3FF) || (r >= 0x1F1E6 && r <= 0x1F1FF)
}

// joinerNeeded reports whether the joiner j between prev and next is kept.
func joinerNeeded(j, prev, next rune) bool {
	if unicode.Is(unicode.Cf, next) || isVariationSelector(next) {
		// next is removed (or decided) itself: what follows the joiner
		// once it is gone is not known here, so the joiner goes too (and
		// Normalize stays idempotent).
		return false
	}
	if joinerScript(prev) && joinerScript(next) {
		return true
	}
	if j == zwj {
		// An emoji sequence: a pictograph (perhaps with its variation
		// selector or modifier) joined to the next one.
		return (pictographic(prev) || prev == 0xFE0F) && pictographic(next)
	}
	return false
}

func lastRune(s string) rune {
	if s == "" {
		return utf8.RuneError
	}
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

func nextRune(s string) rune {
	if s == "" {
		return utf8.RuneError
	}
	r, _ := utf8.DecodeRuneInString(s)
	return r
}
