package policy

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// componentRE is a repository name component, as distribution's reference grammar
// has it (and internal/layout checks it).
var componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$`)

// Glob matches repository names; see the package documentation for its syntax.
// The zero Glob matches nothing. A Glob is safe for concurrent use.
type Glob struct {
	src   string
	comps []globComp
}

type globComp struct {
	kind uint8  // compLiteral, compWild, compAny, compDoubleStar
	pat  string // literal text or wildcard pattern
}

const (
	compLiteral    = iota // matches exactly pat
	compWild              // pat has '*' or '?'
	compAny               // "*": any one component
	compDoubleStar        // "**": zero or more components
)

// ParseGlob validates and compiles a repository glob.
func ParseGlob(s string) (Glob, error) {
	if s == "" {
		return Glob{}, errors.New("empty glob")
	}
	if len(s) > 1024 {
		return Glob{}, errors.New("glob longer than 1024 characters")
	}
	g := Glob{src: s}
	n := strings.Count(s, "/") + 1
	g.comps = make([]globComp, 0, n+1)
	rest := s
	for k := 0; ; k++ {
		c, tail, more := strings.Cut(rest, "/")
		switch {
		case c == "":
			return Glob{}, errors.New("empty component " + strconv.Itoa(k+1) + " (a leading, trailing or doubled \"/\")")
		case c == "**":
			// Consecutive "**" mean the same as one.
			if len(g.comps) == 0 || g.comps[len(g.comps)-1].kind != compDoubleStar {
				g.comps = append(g.comps, globComp{kind: compDoubleStar})
			}
		case c == "*":
			g.comps = append(g.comps, globComp{kind: compAny})
		case strings.Contains(c, "**"):
			return Glob{}, errors.New("component " + strconv.Quote(c) + ": \"**\" must be a whole component")
		case strings.ContainsAny(c, "*?"):
			for i := 0; i < len(c); i++ {
				if !globChar(c[i]) {
					return Glob{}, badGlobChar(c, c[i])
				}
			}
			g.comps = append(g.comps, globComp{kind: compWild, pat: c})
		default:
			if !componentRE.MatchString(c) {
				for i := 0; i < len(c); i++ {
					if !globChar(c[i]) {
						return Glob{}, badGlobChar(c, c[i])
					}
				}
				return Glob{}, errors.New("component " + strconv.Quote(c) + " is no valid repository name component (lowercase letters and digits, joined by \".\", \"_\", \"__\" or \"-\")")
			}
			g.comps = append(g.comps, globComp{kind: compLiteral, pat: c})
		}
		if !more {
			break
		}
		rest = tail
	}
	// A trailing "**" matches one or more components: "a/**" is "a/*/**", and
	// "**" alone is "*/**".
	if last := len(g.comps) - 1; g.comps[last].kind == compDoubleStar {
		g.comps[last] = globComp{kind: compAny}
		g.comps = append(g.comps, globComp{kind: compDoubleStar})
	}
	return g, nil
}

// MustParseGlob is ParseGlob that panics on an error, for tests and constants.
func MustParseGlob(s string) Glob {
	g, err := ParseGlob(s)
	if err != nil {
		panic("policy: glob " + strconv.Quote(s) + ": " + err.Error())
	}
	return g
}

func globChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '*' || c == '?'
}

func badGlobChar(comp string, c byte) error {
	var why string
	if 'A' <= c && c <= 'Z' {
		why = " (repository names are lowercase)"
	}
	return errors.New("component " + strconv.Quote(comp) + ": character " + strconv.QuoteRune(rune(c)) + " cannot occur in a repository name" + why)
}

// String returns the glob as written.
func (g Glob) String() string { return g.src }

// MatchesAll reports whether the glob is "**" (or "**/**"...), which matches every
// repository.
func (g Glob) MatchesAll() bool {
	return len(g.comps) == 2 && g.comps[0].kind == compAny && g.comps[1].kind == compDoubleStar
}

// Match reports whether the repository name matches the glob. It does not
// allocate; it runs in time O(len(glob components) x len(name)) at worst.
func (g Glob) Match(name string) bool {
	p := g.comps
	if name == "" || len(p) == 0 {
		return false
	}
	// The classic wildcard algorithm with one backtracking point, over components:
	// "**" is the star, and every other component matches exactly one component.
	// Backtracking to the latest "**" only is enough, as with "*" in strings.
	end := len(name)
	pi, n := 0, 0 // next pattern component; start of the next name component (> end: none left)
	starP, starN := -1, 0
	for n <= end {
		j := strings.IndexByte(name[n:], '/')
		if j < 0 {
			j = end
		} else {
			j += n
		}
		if pi < len(p) {
			if p[pi].kind == compDoubleStar {
				starP, starN = pi, n
				pi++
				continue
			}
			if p[pi].match(name[n:j]) {
				pi++
				n = j + 1
				continue
			}
		}
		if starP < 0 {
			return false
		}
		// The latest "**" takes one more component.
		k := strings.IndexByte(name[starN:], '/')
		if k < 0 {
			starN = end + 1
		} else {
			starN += k + 1
		}
		pi, n = starP+1, starN
	}
	for pi < len(p) && p[pi].kind == compDoubleStar {
		pi++
	}
	return pi == len(p)
}

func (c *globComp) match(s string) bool {
	switch c.kind {
	case compLiteral:
		return s == c.pat
	case compAny:
		return s != ""
	case compWild:
		return s != "" && wildMatch(c.pat, s)
	}
	return false
}

// wildMatch matches s against a pattern of literal bytes, '*' (any run) and '?'
// (any one byte; names are ASCII).
func wildMatch(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			default:
				if c == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
