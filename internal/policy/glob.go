package policy

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Globs (virtual-server tool lists, rule tools) use path.Match syntax on
// the canonical tool name, but there a * or ? never matches '/', and tool
// names of upstreams may contain '/'. A deny rule "gh__*" must cover
// "gh__repo/delete", so globs are matched by globMatch, in which * and ?
// match any character.

// globs caches compiled globs by pattern (patterns come from the store,
// written by administrators; a failed compile is cached as nil). It is
// emptied when it holds maxGlobs, so rules made and deleted over time can
// not grow it without bound.
var (
	globs  sync.Map // string -> *regexp.Regexp
	nGlobs atomic.Int64
)

const maxGlobs = 10000

// globMatch reports whether name matches the path.Match-syntax pattern g,
// with * and ? matching '/' too. A malformed pattern matches nothing.
func globMatch(g, name string) bool {
	v, ok := globs.Load(g)
	if !ok {
		if nGlobs.Load() >= maxGlobs {
			globs.Clear()
			nGlobs.Store(0)
		}
		re, _ := compileGlob(g)
		var loaded bool
		if v, loaded = globs.LoadOrStore(g, re); !loaded {
			nGlobs.Add(1)
		}
	}
	re := v.(*regexp.Regexp)
	return re != nil && re.MatchString(name)
}

// compileGlob translates a path.Match pattern into an anchored regexp:
// * is .*, ? is one character, [...] a class (^ negates), \c the literal
// c. Every literal is written as \x{...}, which means the same inside and
// outside a class.
func compileGlob(g string) (*regexp.Regexp, error) {
	if _, err := path.Match(g, ""); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	lit := func(s string, i int) (int, error) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return 0, fmt.Errorf("invalid UTF-8 in glob %q", g)
		}
		fmt.Fprintf(&b, `\x{%x}`, r)
		return i + n, nil
	}
	var err error
	for i := 0; i < len(g); {
		switch g[i] {
		case '*':
			b.WriteString(`.*`)
			i++
		case '?':
			b.WriteString(`.`)
			i++
		case '\\':
			if i, err = lit(g, i+1); err != nil {
				return nil, err
			}
		case '[':
			b.WriteByte('[')
			i++
			if i < len(g) && g[i] == '^' {
				b.WriteByte('^')
				i++
			}
			for i < len(g) && g[i] != ']' {
				switch g[i] {
				case '\\':
					i, err = lit(g, i+1)
				case '-':
					b.WriteByte('-')
					i++
				default:
					i, err = lit(g, i)
				}
				if err != nil {
					return nil, err
				}
			}
			b.WriteByte(']')
			i++
		default:
			if i, err = lit(g, i); err != nil {
				return nil, err
			}
		}
	}
	b.WriteString(`\z`)
	return regexp.Compile(b.String())
}
