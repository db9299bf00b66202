package guard

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// RuleShadowing is the id of the built-in check that compares a tool with
// the tools of the other upstreams (tool shadowing): a tool that takes the
// name of another upstream's tool, a name that is nearly the same, or a
// description that names another upstream's tool. It is not a pattern;
// the gateway runs it with the catalogs it holds ([Shadows]). An
// operator's rule file can turn it off (disable = ["shadowing"]).
const RuleShadowing = "shadowing"

// A ShadowTool is a tool as its upstream offers it.
type ShadowTool struct {
	Name, Description string
}

// A ShadowPeer is another upstream and the tools it offers.
type ShadowPeer struct {
	Upstream string
	// Earlier: the peer is listed before the upstream being judged (in the
	// configuration). A name taken, or nearly taken, from an earlier
	// upstream is flagged on the later one only: the earlier upstream
	// keeps its names, so a newcomer cannot get an established tool
	// flagged (or quarantined) by copying its name.
	Earlier bool
	Tools   []ShadowTool
}

// Shadows checks the tools of one upstream against its peers'. Build it
// with [NewShadows]; it is safe for concurrent use once built.
type Shadows struct {
	own map[string]bool // own tool names, lower case
	// exact: lower-case name -> earlier peers' tools of that name.
	exact map[string][]peerTool
	// folded: folded name -> earlier peers' tools (see foldName).
	folded map[string][]peerTool
	// near are the earlier peers' tools whose folded names are long
	// enough to be compared at an edit distance of one.
	near []peerTool
	// words: lower-case distinctive name -> peers' tools (any order) a
	// description could name; names the judged upstream has too are left
	// out (a description naming one names its own tool).
	words map[string][]peerTool
	// prefixed: "upstream__name", lower case -> that peer's tool (the
	// gateway's aggregated name, which names the other upstream whatever
	// the judged one offers).
	prefixed map[string]peerTool
}

type peerTool struct {
	upstream, name, desc, folded string
}

// minNearLen is the shortest folded name compared at an edit distance of
// one: shorter names ("add", "echo") are too alike by chance.
const minNearLen = 6

// NewShadows indexes peers for judging the tools named own (the judged
// upstream's own tools: a description naming one of them names its own
// tool, whatever a peer offers).
func NewShadows(own []string, peers []ShadowPeer) *Shadows {
	s := &Shadows{own: map[string]bool{}, exact: map[string][]peerTool{}, folded: map[string][]peerTool{}, words: map[string][]peerTool{}, prefixed: map[string]peerTool{}}
	for _, n := range own {
		s.own[strings.ToLower(n)] = true
	}
	for _, p := range peers {
		for _, t := range p.Tools {
			if t.Name == "" {
				continue
			}
			pt := peerTool{upstream: p.Upstream, name: t.Name, desc: t.Description, folded: foldName(t.Name)}
			lower := strings.ToLower(t.Name)
			if p.Earlier {
				s.exact[lower] = append(s.exact[lower], pt)
				s.folded[pt.folded] = append(s.folded[pt.folded], pt)
				if utf8.RuneCountInString(pt.folded) >= minNearLen {
					s.near = append(s.near, pt)
				}
			}
			if distinctive(t.Name) && !s.own[lower] {
				s.words[lower] = append(s.words[lower], pt)
			}
			s.prefixed[strings.ToLower(p.Upstream)+"__"+lower] = pt
		}
	}
	return s
}

// Check judges the tool called name, with description desc and texts (the
// description and what else of it a model reads, such as its parameters'
// descriptions). It returns the shadowing finding, if any: at most one,
// naming the first reason found (the same name, a near name, a tool named
// in its texts).
func (s *Shadows) Check(name, desc string, texts []string) (Finding, bool) {
	if s == nil {
		return Finding{}, false
	}
	lower := strings.ToLower(name)
	for _, pt := range s.exact[lower] {
		if pt.name == name && pt.desc == desc {
			// The same tool, word for word: the same server configured
			// twice (two roots of a file server, say), not an impostor.
			continue
		}
		return Finding{Rule: RuleShadowing, Match: clip(name, 80),
			Explain: fmt.Sprintf("takes the name of tool %q of upstream %q, listed before it (tool shadowing)", pt.name, pt.upstream)}, true
	}
	f := foldName(name)
	for _, pt := range s.folded[f] {
		if strings.EqualFold(pt.name, name) {
			continue // the same tool, word for word (above)
		}
		return Finding{Rule: RuleShadowing, Match: clip(name, 80),
			Explain: fmt.Sprintf("has a name that reads as tool %q of upstream %q, listed before it (tool shadowing)", pt.name, pt.upstream)}, true
	}
	if utf8.RuneCountInString(f) >= minNearLen {
		for _, pt := range s.near {
			if pt.folded != f && nearName(f, pt.folded) {
				return Finding{Rule: RuleShadowing, Match: clip(name, 80),
					Explain: fmt.Sprintf("has a name one letter away from tool %q of upstream %q, listed before it (tool shadowing)", pt.name, pt.upstream)}, true
			}
		}
	}
	if len(s.words) > 0 || len(s.prefixed) > 0 {
		for _, t := range texts {
			if w, pt, ok := s.named(t); ok {
				return Finding{Rule: RuleShadowing, Match: clip(w, 80),
					Explain: fmt.Sprintf("names tool %q of another upstream, %q: a description should not tell the model how to use other servers' tools (tool shadowing)", pt.name, pt.upstream)}, true
			}
		}
	}
	return Finding{}, false
}

// named finds, in t, a word that is a peer's tool name after its
// upstream's name and "__" (the gateway's aggregated name), or a peer's
// distinctive tool name, alone or after any prefix and "__".
func (s *Shadows) named(t string) (string, peerTool, bool) {
	for i := 0; i < len(t); {
		if !nameByte(t[i]) {
			i++
			continue
		}
		j := i
		for j < len(t) && nameByte(t[j]) {
			j++
		}
		w := strings.Trim(t[i:j], "._-")
		i = j
		if len(w) < 3 {
			continue
		}
		lw := strings.ToLower(w)
		if pt, ok := s.prefixed[lw]; ok {
			return w, pt, true
		}
		if pts := s.words[lw]; len(pts) > 0 {
			return w, pts[0], true
		}
		if _, after, ok := strings.Cut(lw, "__"); ok {
			if pts := s.words[after]; len(pts) > 0 {
				return w, pts[0], true
			}
		}
	}
	return "", peerTool{}, false
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// distinctive reports whether a tool name is unlike an ordinary word, so
// that finding it in a description means the tool: it joins words with
// '_', '-' or '.', or in camelCase, and is at least 5 characters long.
// "search" or "fetch" is not ("fetch the page"); "send_email" is.
func distinctive(name string) bool {
	if len(name) < 5 {
		return false
	}
	for i := 1; i < len(name)-1; i++ {
		c := name[i]
		if c == '_' || c == '-' || c == '.' {
			if isAlnum(name[i-1]) && isAlnum(name[i+1]) {
				return true
			}
		}
		if c >= 'A' && c <= 'Z' && name[i-1] >= 'a' && name[i-1] <= 'z' {
			return true
		}
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// foldName is a tool name as a reader sees it: lower case, without the
// separators '_', '-', '.' and spaces, digits and letters that pass for
// one another made one ("1", "i", "l" and "|" are "l"; "0" is "o"; "5" is
// "s"…), "rn" read as "m" and "vv" as "w", and Cyrillic and Greek letters
// that look like Latin ones made Latin. Two names that fold alike read
// alike.
func foldName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch r {
		case '_', '-', '.', ' ':
			continue
		}
		if m, ok := lookalike[r]; ok {
			r = m
		}
		b.WriteRune(r)
	}
	f := b.String()
	if strings.Contains(f, "rn") {
		f = strings.ReplaceAll(f, "rn", "m")
	}
	if strings.Contains(f, "vv") {
		f = strings.ReplaceAll(f, "vv", "w")
	}
	return f
}

// lookalike maps a character to the Latin letter it passes for.
var lookalike = map[rune]rune{
	'0': 'o', '1': 'l', 'i': 'l', '|': 'l', '3': 'e', '4': 'a', '5': 's', '7': 't', '8': 'b', '9': 'g',
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c', 'т': 't',
	'у': 'y', 'х': 'x', 'і': 'l', 'ї': 'l', 'ј': 'j', 'ѕ': 's', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'һ': 'h', 'ӏ': 'l',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'n', 'ι': 'l', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x',
	// Latin look-alikes
	'ı': 'l', 'ɡ': 'g', 'ʟ': 'l',
}

// nearName reports whether two folded names differ by one substituted
// character, two swapped neighbours, or one character added or removed
// anywhere but at the end (a plural "s" or a version digit makes a
// different tool: "get_file" and "get_files").
func nearName(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) == len(rb) {
		diff := -1
		for i := range ra {
			if ra[i] != rb[i] {
				if diff >= 0 {
					// A second difference: only two swapped neighbours.
					return i == diff+1 && ra[diff] == rb[i] && ra[i] == rb[diff] && slices.Equal(ra[i+1:], rb[i+1:])
				}
				diff = i
			}
		}
		return diff >= 0
	}
	if len(ra) < len(rb) {
		ra, rb = rb, ra
	}
	if len(ra) != len(rb)+1 {
		return false
	}
	// ra is rb with one character inserted, not at the end.
	for i := range rb {
		if ra[i] != rb[i] {
			return slices.Equal(ra[i+1:], rb[i:])
		}
	}
	return false // the extra character is the last one
}
