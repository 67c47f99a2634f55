package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	p, err := Load("testdata/policy.yml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != "testdata/policy.yml" || len(p.Rules) != 3 {
		t.Fatalf("got %+v", p)
	}
	r := p.Rules[0]
	if r.Label() != "rule 1" || r.Line() != 3 || r.String() != "rule 1 (testdata/policy.yml:3)" {
		t.Errorf("rule 1: label %q line %d string %q", r.Label(), r.Line(), r)
	}
	if len(r.Repositories()) != 2 || r.Repositories()[0].String() != "team-a/**" || r.Repositories()[1].String() != "base/*" {
		t.Errorf("rule 1 repositories %v", r.Repositories())
	}
	if r.Tags() != "^(main|pr)-.*" {
		t.Errorf("rule 1 tags %q", r.Tags())
	}
	if n, ok := r.KeepLast(); n != 10 || !ok {
		t.Errorf("rule 1 keep-last %d %v", n, ok)
	}
	if d, ok := r.KeepWithin(); d != 30*Day || !ok {
		t.Errorf("rule 1 keep-within %v %v", d, ok)
	}
	if kt := r.KeepTags(); len(kt) != 2 || kt[0] != "latest" || kt[1] != `v[0-9]+(\.[0-9]+)*` {
		t.Errorf("rule 1 keep-tags %q", kt)
	}
	r = p.Rules[1]
	if n, ok := r.KeepLast(); n != 0 || !ok {
		t.Errorf("rule 2 keep-last %d %v", n, ok)
	}
	if _, ok := r.KeepWithin(); ok {
		t.Error("rule 2 has keep-within")
	}
	if r.Tags() != "" || r.KeepTags() != nil {
		t.Errorf("rule 2 tags %q keep-tags %q", r.Tags(), r.KeepTags())
	}
	if d, _ := p.Rules[2].KeepWithin(); d != 9*Day+12*time.Hour {
		t.Errorf("rule 3 keep-within %v", d)
	}

	for repo, want := range map[string]int{
		"team-a/app": 1, "team-a/x/y": 1, "base/alpine": 1, "team-a": 3, "base/x/y": 3,
		"cache/x": 2, "cache": 3, "other": 3, "team-ab/app": 3,
	} {
		if r := p.Match(repo); r == nil || r != p.Rules[want-1] {
			t.Errorf("Match(%q) = %v, want rule %d", repo, r, want)
		}
	}
	if !p.NeedsPushTimes() {
		t.Error("NeedsPushTimes is false")
	}

	// Selection and what needs a push time.
	r = p.Rules[0]
	for tag, want := range map[string]bool{"main-1": true, "pr-2": true, "latest": false, "feature-x": false, "xmain-1": false} {
		if got := r.Selects(tag); got != want {
			t.Errorf("Selects(%q) = %v", tag, got)
		}
	}
	if !r.NeedsPushTime("main-1") || r.NeedsPushTime("latest") || r.NeedsPushTime(sigTag(1, ".sig")) {
		t.Error("NeedsPushTime is wrong")
	}
	if p.Rules[1].NeedsPushTimes() || p.Rules[1].NeedsPushTime("x") {
		t.Error("keep-last 0 needs no push time")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yml"); err == nil || !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.yml")
	if err := os.WriteFile(big, []byte("#"+strings.Repeat("x", MaxFileSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "big.yml: larger than") {
		t.Errorf("big file: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		errs       []string // each must appear in the error, in this order
	}{
		{"empty file", "", []string{"p.yml: empty policy: no rules"}},
		{"only comments", "# nothing\n", []string{"p.yml: empty policy: no rules"}},
		{"null document", "---\n", []string{"p.yml: empty policy: no rules"}},
		{"no rules key", "x: 1\n", []string{"p.yml:1: x: unknown key (the only top-level key is \"rules\")"}},
		{"rules empty", "rules: []\n", []string{"p.yml:1: rules: no rules"}},
		{"rules null", "rules:\n", []string{"p.yml:1: rules: no rules"}},
		{"rules not a list", "rules: {a: 1}\n", []string{"p.yml:1: rules: want a list of rules, got a mapping"}},
		{"root a list", "- a\n", []string{"p.yml:1: want a mapping with the key \"rules\", got a list"}},
		{"rules repeated", "rules: [{repositories: [a], keep-last: 1}]\nrules: []\n", []string{"p.yml:2: rules: repeated key (first on line 1)"}},
		{"two documents", "rules: [{repositories: [a], keep-last: 1}]\n---\nrules: []\n", []string{"p.yml:2: more than one YAML document"}},
		{"bad yaml", "rules:\n  - repositories: [a\n", []string{"p.yml:", "bad YAML:"}},
		{"tab indent", "rules:\n\t- x\n", []string{"p.yml:2: bad YAML: found character that cannot start any token"}},
		{"rule not a mapping", "rules:\n  - a\n", []string{"p.yml:2: rule 1: want a mapping with the keys repositories, tags, keep-last, keep-within, keep-tags, got the value \"a\""}},
		{"unknown key", "rules:\n  - repositories: [a]\n    keep_last: 3\n", []string{
			"p.yml:3: keep_last: unknown key in rule 1 (known: repositories, tags, keep-last, keep-within, keep-tags)",
			"p.yml:2: rule 1: no keep field"}},
		{"repeated key", "rules:\n  - repositories: [a]\n    keep-last: 3\n    keep-last: 4\n", []string{"p.yml:4: keep-last: repeated key (first on line 3)"}},
		{"merge key", "x: &x {keep-last: 1}\nrules:\n  - repositories: [a]\n    <<: *x\n", []string{"p.yml:1: x: unknown key", "p.yml:4: <<: merge keys are not supported"}},
		{"missing repositories", "rules:\n  - keep-last: 3\n", []string{"p.yml:2: rule 1: missing repositories"}},
		{"empty repositories", "rules:\n  - repositories: []\n    keep-last: 3\n", []string{"p.yml:2: repositories: empty list"}},
		{"null repositories", "rules:\n  - repositories:\n    keep-last: 3\n", []string{"p.yml:2: repositories: missing value"}},
		{"repositories a mapping", "rules:\n  - repositories: {a: b}\n    keep-last: 3\n", []string{"p.yml:2: repositories: want a list of strings, got a mapping"}},
		{"nested list", "rules:\n  - repositories:\n      - [a]\n    keep-last: 3\n", []string{"p.yml:3: repositories: want a list of strings, found a list"}},
		{"null list item", "rules:\n  - repositories:\n      - a\n      -\n    keep-last: 3\n", []string{"p.yml:4: repositories: empty list item"}},
		{"bad glob", "rules:\n  - repositories: [\"team-a/**\",\n      \"Team-B/*\"]\n    keep-last: 3\n", []string{`p.yml:3: repositories: bad glob "Team-B/*": component "Team-B": character 'T' cannot occur in a repository name`}},
		{"bad glob star", "rules:\n  - repositories: [\"a**\"]\n    keep-last: 3\n", []string{`p.yml:2: repositories: bad glob "a**": component "a**": "**" must be a whole component`}},
		{"bad tags regex", "rules:\n  - repositories: [a]\n    tags: \"(main\"\n    keep-last: 3\n", []string{`p.yml:3: tags: bad regex "(main": missing closing ): `}},
		{"escaping regex", "rules:\n  - repositories: [a]\n    tags: \"a)|(b\"\n    keep-last: 3\n", []string{`p.yml:3: tags: bad regex "a)|(b": unexpected )`}},
		{"empty tags regex", "rules:\n  - repositories: [a]\n    tags: \"\"\n    keep-last: 3\n", []string{`p.yml:3: tags: empty regex`}},
		{"null tags", "rules:\n  - repositories: [a]\n    tags:\n    keep-last: 3\n", []string{`p.yml:3: tags: missing value`}},
		{"tags a list", "rules:\n  - repositories: [a]\n    tags: [a]\n    keep-last: 3\n", []string{`p.yml:3: tags: want a single value, got a list`}},
		{"bad keep-tags regex", "rules:\n  - repositories: [a]\n    keep-tags:\n      - latest\n      - \"v[0-9\"\n", []string{`p.yml:5: keep-tags: bad regex "v[0-9": missing closing ]`}},
		{"empty keep-tags", "rules:\n  - repositories: [a]\n    keep-tags: []\n", []string{`p.yml:3: keep-tags: empty list`}},
		{"bad duration", "rules:\n  - repositories: [a]\n    keep-last: 3\n    keep-within: 3x\n", []string{`p.yml:4: keep-within: bad duration "3x": unknown unit "x"`}},
		{"duration no unit", "rules:\n  - repositories: [a]\n    keep-within: 30\n", []string{`p.yml:3: keep-within: bad duration "30": missing unit`}},
		{"negative duration", "rules:\n  - repositories: [a]\n    keep-within: -1d\n", []string{`p.yml:3: keep-within: negative duration "-1d"`}},
		{"huge duration", "rules:\n  - repositories: [a]\n    keep-within: 100000w\n", []string{`p.yml:3: keep-within: bad duration "100000w": too large`}},
		{"negative count", "rules:\n  - repositories: [a]\n    keep-last: -1\n", []string{`p.yml:3: keep-last: negative count "-1"`}},
		{"fractional count", "rules:\n  - repositories: [a]\n    keep-last: 1.5\n", []string{`p.yml:3: keep-last: want a whole number, got "1.5"`}},
		{"hex count", "rules:\n  - repositories: [a]\n    keep-last: 0x10\n", []string{`p.yml:3: keep-last: want a whole number, got "0x10"`}},
		{"huge count", "rules:\n  - repositories: [a]\n    keep-last: 99999999999\n", []string{`p.yml:3: keep-last: count "99999999999" too large`}},
		{"null count", "rules:\n  - repositories: [a]\n    keep-last: ~\n", []string{`p.yml:3: keep-last: missing value`}},
		{"no keep field", "rules:\n  - repositories: [a]\n    tags: x\n", []string{`p.yml:2: rule 1: no keep field: set keep-last, keep-within or keep-tags`}},
		{"unreachable after **", "rules:\n  - repositories: [\"**\"]\n    keep-last: 1\n  - repositories: [a]\n    keep-last: 2\n",
			[]string{`p.yml:4: rule 2: never applies: rule 1 (line 2) matches every repository`}},
		{"unreachable repeated globs", "rules:\n  - repositories: [a, b]\n    keep-last: 1\n  - repositories: [c]\n    keep-last: 1\n  - repositories: [c, a]\n    keep-last: 2\n",
			[]string{`p.yml:6: rule 3: never applies: each of its globs is in an earlier rule (the last one rule 2, line 4)`}},
		{"errors in two rules", "rules:\n  - repositories: [a]\n    keep-within: 3x\n  - repositories: [b]\n    keep-last: -2\n", []string{
			`p.yml:3: keep-within: bad duration "3x"`, `p.yml:5: keep-last: negative count "-2"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse("p.yml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error; got %d rules", len(p.Rules))
			}
			if p != nil {
				t.Error("a policy with the error")
			}
			msg := err.Error()
			rest := msg
			for _, want := range c.errs {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("error\n%s\nlacks (in order) %q", msg, want)
				}
				rest = rest[i+len(want):]
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.File != "p.yml" {
				t.Errorf("not an *Error naming the file: %#v", err)
			}
		})
	}
}

func TestParseTooManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for range 30 {
		b.WriteString("  - repositories: [A]\n    keep-last: 1\n")
	}
	_, err := Parse("p.yml", []byte(b.String()))
	if err == nil || strings.Count(err.Error(), "\n") != 20 || !strings.HasSuffix(err.Error(), "p.yml: too many errors") {
		t.Errorf("got %v", err)
	}
}

func TestParseValid(t *testing.T) {
	for _, c := range []struct{ name, yaml string }{
		{"keep-last 0 alone", "rules:\n  - repositories: [a]\n    keep-last: 0\n"},
		{"keep-within 0", "rules:\n  - repositories: [a]\n    keep-within: 0\n"},
		{"single glob and regex", "rules:\n  - repositories: a\n    keep-tags: latest\n"},
		{"quoted count", "rules:\n  - repositories: [a]\n    keep-last: \"5\"\n"},
		{"numeric tag regex", "rules:\n  - repositories: [a]\n    keep-tags: [2024, 1.0]\n"},
		{"flow style", "rules: [{repositories: [a, \"b/**\"], keep-last: 3}, {repositories: [\"**\"], keep-within: 2w}]\n"},
		{"aliases", "rules:\n  - repositories: &r [a, b]\n    keep-last: 3\n  - repositories: [c]\n    keep-tags: *r\n"},
		{"same glob, another too", "rules:\n  - repositories: [a]\n    keep-last: 3\n  - repositories: [a, b]\n    keep-last: 4\n"},
		{"document marker", "---\nrules:\n  - repositories: [\"**\"]\n    keep-last: 3\n...\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse("p.yml", []byte(c.yaml)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFromFlags(t *testing.T) {
	n, zero, neg := 5, 0, -1
	week, negd := Week, -time.Hour

	p, err := FromFlags(Flags{})
	if p != nil || err != nil {
		t.Errorf("no flags: %v, %v", p, err)
	}

	p, err = FromFlags(Flags{KeepLast: &n, KeepWithin: &week, KeepTags: []string{"latest", "v.*"}, Tags: "main-.*"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != CommandLine || len(p.Rules) != 1 {
		t.Fatalf("%+v", p)
	}
	r := p.Rules[0]
	if r.Label() != "command line" || r.String() != "command line" || r.Line() != 0 {
		t.Errorf("label %q string %q", r.Label(), r)
	}
	if got, _ := r.KeepLast(); got != 5 {
		t.Errorf("keep-last %d", got)
	}
	if got, _ := r.KeepWithin(); got != Week {
		t.Errorf("keep-within %v", got)
	}
	if r.Tags() != "main-.*" || len(r.KeepTags()) != 2 {
		t.Errorf("tags %q keep-tags %q", r.Tags(), r.KeepTags())
	}
	for _, repo := range []string{"a", "a/b/c"} {
		if p.Match(repo) != r {
			t.Errorf("%q unmatched", repo)
		}
	}

	if p, err = FromFlags(Flags{KeepLast: &zero}); err != nil || p == nil {
		t.Errorf("--keep-last 0: %v, %v", p, err)
	}

	for _, c := range []struct {
		f    Flags
		want string
	}{
		{Flags{Tags: "x"}, "--tags: needs --keep-last, --keep-within or --keep-tags"},
		{Flags{KeepLast: &neg}, "--keep-last: negative count -1"},
		{Flags{KeepWithin: &negd}, "--keep-within: negative duration -1h"},
		{Flags{KeepLast: &n, Tags: "("}, `--tags: bad regex "(": missing closing )`},
		{Flags{KeepTags: []string{"ok", "[x"}}, `--keep-tag: bad regex "[x": missing closing ]`},
		{Flags{KeepTags: []string{""}}, `--keep-tag: empty regex`},
	} {
		p, err := FromFlags(c.f)
		if p != nil || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FromFlags(%+v) = %v, %v; want error %q", c.f, p, err, c.want)
		}
	}
	_, err = FromFlags(Flags{KeepLast: &neg, KeepWithin: &negd})
	if err == nil || !strings.Contains(err.Error(), "--keep-last") || !strings.Contains(err.Error(), "--keep-within") {
		t.Errorf("two errors: %v", err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	example, err := os.ReadFile("testdata/policy.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"rules: []\n",
		"rules:\n  - repositories: [a]\n    keep-last: 0\n",
		"rules:\n  - repositories: [\"**\"]\n    keep-within: 3x\n",
		"rules: [{repositories: [a, \"b/**\"], keep-last: 3}, {repositories: [\"**\"], keep-within: 2w}]\n",
		"rules:\n  - repositories: &r [a, b]\n    keep-last: 3\n  - repositories: [c]\n    keep-tags: *r\n",
		"x: &x {keep-last: 1}\nrules:\n  - repositories: [a]\n    <<: *x\n",
		"rules:\n  - repositories: [a]\n    tags: \"a)|(b\"\n    keep-last: 3\n",
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	tags := []Tag{
		{Name: "latest", Pushed: now.Add(-time.Hour), Known: true},
		{Name: "a", Pushed: now.Add(-50 * Day), Known: true},
		{Name: "b", Known: false},
		{Name: "v1.0", Pushed: now.Add(-400 * Day), Known: true},
		{Name: sigTag(1, ".sig"), Pushed: now.Add(-400 * Day), Known: true},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yml", data)
		if err != nil {
			if p != nil {
				t.Fatal("a policy and an error")
			}
			if !strings.HasPrefix(err.Error(), "f.yml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		if len(p.Rules) == 0 {
			t.Fatal("a policy without rules")
		}
		var d *Decisions
		for _, r := range p.Rules {
			_, hasLast := r.KeepLast()
			_, hasWithin := r.KeepWithin()
			if len(r.Repositories()) == 0 || !hasLast && !hasWithin && len(r.KeepTags()) == 0 {
				t.Fatalf("%v: no repositories or no keep field", r)
			}
			d = r.Evaluate(now, tags, d)
			for i := range tags {
				_ = d.Reason(i)
				if _, sig := IsSignatureTag(tags[i].Name); sig && !d.Keep(i) {
					t.Fatalf("%v deletes a signature tag", r)
				}
			}
		}
	})
}
