package policy

import (
	"regexp"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		glob    string
		match   []string
		noMatch []string
	}{
		{"**", []string{"a", "a/b", "a/b/c", "team-a/app"}, []string{""}},
		{"**/**", []string{"a", "a/b"}, []string{""}},
		{"*", []string{"a", "app.x"}, []string{"a/b", ""}},
		{"a", []string{"a"}, []string{"ab", "a/b", "b/a"}},
		{"a/*", []string{"a/b", "a/c-d"}, []string{"a", "a/b/c", "b/a", "ab/c"}},
		{"a/**", []string{"a/x", "a/x/y", "a/x/y/z"}, []string{"a", "ab/x", "b/a/x"}},
		{"team-a/**", []string{"team-a/app", "team-a/x/y"}, []string{"team-a", "team-ab/app", "team/a"}},
		{"**/cache", []string{"cache", "x/cache", "x/y/cache"}, []string{"cache/x", "xcache", "x/cache2"}},
		{"a/**/b", []string{"a/b", "a/x/b", "a/x/y/b"}, []string{"a", "b", "a/b/c", "x/a/b"}},
		{"a/**/b/**", []string{"a/b/c", "a/x/b/c/d"}, []string{"a/b", "a/x/b"}},
		{"**/a/**", []string{"a/x", "y/a/x", "y/z/a/x/w"}, []string{"a", "y/a"}},
		{"a/**/a", []string{"a/a", "a/a/a", "a/x/a/y/a"}, []string{"a", "a/a/x"}},
		{"base/*", []string{"base/alpine", "base/debian"}, []string{"base", "base/x/y"}},
		{"app-*", []string{"app-", "app-x", "app-x.y"}, []string{"app", "app-x/y", "xapp-x"}},
		{"*-dev/*", []string{"a-dev/x", "-dev/x"}, []string{"a-dev", "a-prod/x", "a/b-dev/x"}},
		{"a?c", []string{"abc", "a-c"}, []string{"ac", "abbc", "a/c"}},
		{"*a*b*", []string{"ab", "xaxbx", "aab", "abab"}, []string{"ba", "a", "a/b"}},
		{"*/*/*", []string{"a/b/c"}, []string{"a/b", "a/b/c/d"}},
		{"**/*/x", []string{"a/x", "a/b/x"}, []string{"x"}},
	} {
		g, err := ParseGlob(c.glob)
		if err != nil {
			t.Fatalf("ParseGlob(%q): %v", c.glob, err)
		}
		if g.String() != c.glob {
			t.Errorf("String() = %q, want %q", g.String(), c.glob)
		}
		ref := refGlob(c.glob)
		for _, n := range c.match {
			if !g.Match(n) {
				t.Errorf("%q does not match %q", c.glob, n)
			}
			if !ref.MatchString(n) {
				t.Errorf("reference %q does not match %q", ref, n)
			}
		}
		for _, n := range c.noMatch {
			if g.Match(n) {
				t.Errorf("%q matches %q", c.glob, n)
			}
			if ref.MatchString(n) {
				t.Errorf("reference %q matches %q", ref, n)
			}
		}
	}
	if (Glob{}).Match("a") {
		t.Error("the zero Glob matches")
	}
	if !MustParseGlob("**").MatchesAll() || !MustParseGlob("**/**").MatchesAll() ||
		MustParseGlob("*/**").MatchesAll() || MustParseGlob("*").MatchesAll() {
		t.Error("MatchesAll is wrong")
	}
}

func TestParseGlobErrors(t *testing.T) {
	for _, c := range []struct{ glob, err string }{
		{"", "empty glob"},
		{"/a", "empty component 1"},
		{"a/", "empty component 2"},
		{"a//b", "empty component 2"},
		{"a**", `component "a**": "**" must be a whole component`},
		{"***", `"**" must be a whole component`},
		{"a/**b", `"**" must be a whole component`},
		{"Team-A/*", `component "Team-A": character 'T' cannot occur in a repository name (repository names are lowercase)`},
		{"a/b c", `character ' ' cannot occur`},
		{"a/[bc]", `character '[' cannot occur`},
		{"a/b*[", `character '[' cannot occur`},
		{"a/-b", `component "-b" is no valid repository name component`},
		{"a/b..c", `component "b..c" is no valid repository name component`},
		{"a/.", `component "." is no valid`},
		{"a/..", `component ".." is no valid`},
		{strings.Repeat("a", 1025), "longer than 1024"},
	} {
		_, err := ParseGlob(c.glob)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseGlob(%q) = %v, want an error with %q", c.glob, err, c.err)
		}
	}
}

func TestGlobMatchAllocs(t *testing.T) {
	g := MustParseGlob("team-*/**/app?")
	if a := testing.AllocsPerRun(100, func() { g.Match("team-a/x/y/app1") }); a != 0 && !raceEnabled {
		t.Errorf("Match allocates %v times", a)
	}
	// Many "**" and a long name: the matcher stays polynomial.
	g = MustParseGlob(strings.Repeat("**/a/", 20) + "b")
	name := strings.Repeat("a/", 120) + "c"
	if g.Match(name) {
		t.Error("matched")
	}
}

// refGlob is the glob semantics written as a regexp, to check Match against.
func refGlob(glob string) *regexp.Regexp {
	comps := strings.Split(glob, "/")
	var out []string
	for i := 0; i < len(comps); i++ {
		if comps[i] == "**" && i+1 < len(comps) && comps[i+1] == "**" {
			continue
		}
		out = append(out, comps[i])
	}
	var b strings.Builder
	b.WriteString("^")
	for i, c := range out {
		last := i == len(out)-1
		switch {
		case c == "**" && last:
			if i > 0 {
				b.WriteString("/")
			}
			b.WriteString("[^/]+(?:/[^/]+)*")
		case c == "**":
			if i > 0 {
				b.WriteString("/")
			}
			b.WriteString("(?:[^/]+/)*")
		default:
			if i > 0 && out[i-1] != "**" {
				b.WriteString("/")
			}
			if c == "*" {
				b.WriteString("[^/]+")
				continue
			}
			for _, r := range c {
				switch r {
				case '*':
					b.WriteString("[^/]*")
				case '?':
					b.WriteString("[^/]")
				default:
					b.WriteString(regexp.QuoteMeta(string(r)))
				}
			}
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// FuzzGlob checks Match against the regexp reference on small alphabets.
func FuzzGlob(f *testing.F) {
	f.Add("a/**/b", "a/x/b")
	f.Add("**", "a")
	f.Add("a/**", "a")
	f.Add("**/a/**/a", "a/a/a")
	f.Add("*a?/*", "bab/c")
	f.Fuzz(func(t *testing.T, glob, name string) {
		g, err := ParseGlob(glob)
		if err != nil {
			return
		}
		if len(name) > 300 {
			return
		}
		want := name != "" && refGlob(glob).MatchString(name)
		// Names in use are valid repository names: ASCII ("?" is one byte, the
		// reference's one rune), without empty components (which the reference
		// knows nothing of). Compare on such names only.
		for _, c := range strings.Split(name, "/") {
			if c == "" {
				g.Match(name) // must not panic
				return
			}
		}
		for i := 0; i < len(name); i++ {
			if name[i] >= 0x80 {
				g.Match(name)
				return
			}
		}
		if got := g.Match(name); got != want {
			t.Errorf("ParseGlob(%q).Match(%q) = %v, reference says %v", glob, name, got, want)
		}
	})
}
