package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// sigTag is a signature tag for a made-up digest.
func sigTag(n int, suffix string) string {
	return fmt.Sprintf("sha256-%064x%s", n, suffix)
}

// ago is a tag pushed d before now.
func ago(name string, d time.Duration) Tag { return Tag{Name: name, Pushed: now.Add(-d), Known: true} }

func unknown(name string) Tag { return Tag{Name: name} }

// mustPolicy parses a policy from the rules' YAML.
func mustPolicy(t testing.TB, rules string) *Policy {
	t.Helper()
	p, err := Parse("p.yml", []byte("rules:\n"+rules))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// kept lists the names of the kept tags, sorted.
func kept(d *Decisions, tags []Tag) []string {
	var out []string
	for i := range tags {
		if d.Keep(i) {
			out = append(out, tags[i].Name)
		}
	}
	slices.Sort(out)
	return out
}

func TestIsSignatureTag(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		tag string
		ok  bool
	}{
		{"sha256-" + hex, true},
		{"sha256-" + hex + ".sig", true},
		{"sha256-" + hex + ".att", true},
		{"sha256-" + hex + ".sbom", true},
		{"sha256-" + hex + ".x.y", true},
		{"sha256-" + hex + ".", false},
		{"sha256-" + hex + "x", false},
		{"sha256-" + hex + "-sig", false},
		{"sha256-" + hex[:63], false},
		{"sha256-" + hex[:63] + ".sig", false},
		{"sha256-" + strings.ToUpper(hex), false},
		{"sha256-" + hex[:63] + "g", false},
		{"sha512-" + hex, false},
		{"sha256_" + hex, false},
		{"latest", false},
		{"", false},
	} {
		got, ok := IsSignatureTag(c.tag)
		if ok != c.ok || ok && got != hex || !ok && got != "" {
			t.Errorf("IsSignatureTag(%q) = %q, %v", c.tag, got, ok)
		}
	}
}

func TestEvaluate(t *testing.T) {
	for _, c := range []struct {
		name  string
		rule  string // the rule's YAML, without repositories
		tags  []Tag
		kept  []string
		notes map[string]string // tag -> its exact reason
	}{
		{
			name: "keep-last",
			rule: "keep-last: 2",
			tags: []Tag{ago("a", 3*Day), ago("b", 2*Day), ago("c", Day), ago("d", 4*Day)},
			kept: []string{"b", "c"},
			notes: map[string]string{
				"c": "rule 1: among the 2 most recent",
				"a": "rule 1: not among the 2 most recent (3rd)",
				"d": "rule 1: not among the 2 most recent (4th)",
			},
		},
		{
			name: "keep-last 1",
			rule: "keep-last: 1",
			tags: []Tag{ago("a", 3*Day), ago("b", 2*Day)},
			kept: []string{"b"},
			notes: map[string]string{
				"b": "rule 1: the most recent",
				"a": "rule 1: not the most recent (2nd)",
			},
		},
		{
			name: "equal times go to the name, descending",
			rule: "keep-last: 2",
			tags: []Tag{ago("v1", Day), ago("v3", Day), ago("v2", Day), ago("v0", 2*Day)},
			kept: []string{"v2", "v3"},
			notes: map[string]string{
				"v1": "rule 1: not among the 2 most recent (3rd)",
			},
		},
		{
			name: "N larger than the tag count",
			rule: "keep-last: 10",
			tags: []Tag{ago("a", 300*Day), ago("b", 2*Day), unknown("c")},
			kept: []string{"a", "b", "c"},
			notes: map[string]string{
				"a": "rule 1: among the 10 most recent",
				"c": "rule 1: push time unknown, counted as now; among the 10 most recent",
			},
		},
		{
			name: "keep-last 0 deletes every selected tag",
			rule: "tags: \"pr-.*\"\n    keep-last: 0",
			tags: []Tag{ago("pr-1", time.Minute), unknown("pr-2"), ago("main", 300*Day)},
			kept: []string{"main"},
			notes: map[string]string{
				"pr-1": "rule 1: keep-last 0",
				"pr-2": "rule 1: keep-last 0",
				"main": `rule 1: not selected by tags "pr-.*"`,
			},
		},
		{
			name: "keep-within",
			rule: "keep-within: 30d",
			tags: []Tag{ago("new", 3*Day), ago("edge", 30*Day), ago("old", 45*Day+3*time.Hour+20*time.Minute),
				ago("just-over", 30*Day+5*time.Minute+7*time.Second), ago("future", -5*time.Minute), unknown("unknown")},
			kept: []string{"edge", "future", "new", "unknown"},
			notes: map[string]string{
				"new":       "rule 1: pushed 3d ago, within 30d",
				"edge":      "rule 1: pushed 30d ago, within 30d",
				"old":       "rule 1: pushed 45d3h ago, not within 30d",
				"just-over": "rule 1: pushed 30d5m ago, not within 30d",
				"future":    "rule 1: pushed 5m in the future, within 30d",
				"unknown":   "rule 1: push time unknown, counted as now; within 30d",
			},
		},
		{
			name: "within by a second",
			rule: "keep-within: 1h",
			tags: []Tag{ago("x", time.Hour+time.Second), ago("y", time.Hour+1500*time.Microsecond)},
			notes: map[string]string{
				"x": "rule 1: pushed 1h1s ago, not within 1h",
				"y": "rule 1: pushed 1h1ms ago, not within 1h",
			},
		},
		{
			name: "selection, keep-tags and keep-last together",
			rule: "tags: \"^(main|pr)-.*\"\n    keep-last: 2\n    keep-within: 30d\n    keep-tags: [\"main-latest\", \"main-v[0-9]+\"]",
			tags: []Tag{
				ago("main-latest", time.Hour), // kept by keep-tags, and takes a keep-last place
				ago("main-3", 2*Day),
				ago("main-2", 40*Day),
				ago("main-v1", 400*Day),
				ago("pr-7", 45*Day),
				ago("feature-x", 500*Day),
				ago("latest", 500*Day),
			},
			kept: []string{"feature-x", "latest", "main-3", "main-latest", "main-v1"},
			notes: map[string]string{
				"main-latest": `rule 1: among the 2 most recent; pushed 1h ago, within 30d; matches keep-tags "main-latest"`,
				"main-3":      "rule 1: among the 2 most recent; pushed 2d ago, within 30d",
				"main-v1":     `rule 1: matches keep-tags "main-v[0-9]+"`,
				"main-2":      "rule 1: not among the 2 most recent (3rd); pushed 40d ago, not within 30d; matches no keep-tags",
				"pr-7":        "rule 1: not among the 2 most recent (4th); pushed 45d ago, not within 30d; matches no keep-tags",
				"feature-x":   `rule 1: not selected by tags "^(main|pr)-.*"`,
			},
		},
		{
			name: "keep-tags alone",
			rule: "keep-tags: [latest, \"v.*\"]",
			tags: []Tag{ago("latest", Day), ago("v1", Day), ago("latest-2", Day), unknown("v2")},
			kept: []string{"latest", "v1", "v2"},
			notes: map[string]string{
				"latest-2": "rule 1: matches no keep-tags",
				"v2":       `rule 1: matches keep-tags "v.*"`,
			},
		},
		{
			name: "unknown times rank first",
			rule: "keep-last: 2",
			tags: []Tag{ago("new", time.Second), unknown("u1"), ago("future", -Day), unknown("u2"), unknown("u3")},
			kept: []string{"u2", "u3"},
			notes: map[string]string{
				"u1":     "rule 1: push time unknown, counted as now; not among the 2 most recent (3rd)",
				"future": "rule 1: not among the 2 most recent (4th)",
				"new":    "rule 1: not among the 2 most recent (5th)",
			},
		},
		{
			name: "signature tags are kept and not counted",
			rule: "keep-last: 1\n    keep-within: 1d",
			tags: []Tag{ago(sigTag(1, ".sig"), 0), ago(sigTag(2, ""), 400*Day), ago(sigTag(3, ".att"), 400*Day),
				ago("b", 300*Day), ago("a", 200*Day)},
			kept: []string{"a", sigTag(1, ".sig"), sigTag(2, ""), sigTag(3, ".att")},
			notes: map[string]string{
				sigTag(2, ""): "signature or attestation tag: decided with its subject",
				"a":           "rule 1: the most recent",
				"b":           "rule 1: not the most recent (2nd); pushed 300d ago, not within 1d",
			},
		},
		{
			name: "signature tags are kept by keep-last 0 too",
			rule: "keep-last: 0",
			tags: []Tag{ago(sigTag(1, ".sig"), 0), ago("a", 0)},
			kept: []string{sigTag(1, ".sig")},
		},
		{
			name: "no tags",
			rule: "keep-last: 3",
		},
		{
			name: "many ranks",
			rule: "keep-last: 1",
			tags: func() []Tag {
				var ts []Tag
				for i := range 23 {
					ts = append(ts, ago(fmt.Sprintf("t%02d", i), time.Duration(i)*time.Hour))
				}
				return ts
			}(),
			kept: []string{"t00"},
			notes: map[string]string{
				"t10": "rule 1: not the most recent (11th)",
				"t11": "rule 1: not the most recent (12th)",
				"t12": "rule 1: not the most recent (13th)",
				"t20": "rule 1: not the most recent (21st)",
				"t21": "rule 1: not the most recent (22nd)",
				"t22": "rule 1: not the most recent (23rd)",
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := mustPolicy(t, "  - repositories: [\"**\"]\n    "+c.rule+"\n")
			d := p.Evaluate("a/b", now, c.tags, nil)
			if d.Rule() != p.Rules[0] || d.Len() != len(c.tags) {
				t.Fatalf("rule %v len %d", d.Rule(), d.Len())
			}
			if got := kept(d, c.tags); !slices.Equal(got, c.kept) {
				t.Errorf("kept %q, want %q", got, c.kept)
			}
			if d.Kept() != len(c.kept) {
				t.Errorf("Kept() = %d, want %d", d.Kept(), len(c.kept))
			}
			for i, tag := range c.tags {
				r := d.Reason(i)
				if want, ok := c.notes[tag.Name]; ok && r != want {
					t.Errorf("%s: reason\n%q, want\n%q", tag.Name, r, want)
				}
				if !strings.HasPrefix(r, "rule 1: ") && !strings.HasPrefix(r, "signature") {
					t.Errorf("%s: reason %q", tag.Name, r)
				}
			}
			// The decisions do not depend on the input order.
			for range 20 {
				shuffled := slices.Clone(c.tags)
				rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				d2 := p.Evaluate("a/b", now, shuffled, nil)
				if got := kept(d2, shuffled); !slices.Equal(got, c.kept) {
					t.Fatalf("shuffled: kept %q, want %q", got, c.kept)
				}
				for i, tag := range shuffled {
					if want, ok := c.notes[tag.Name]; ok && !strings.HasPrefix(d2.Reason(i), want) {
						t.Fatalf("shuffled: %s: reason %q, want %q", tag.Name, d2.Reason(i), want)
					}
				}
			}
		})
	}
}

func TestEvaluateRuleChoice(t *testing.T) {
	p := mustPolicy(t, `  - repositories: ["a/*"]
    keep-last: 1
  - repositories: ["a/**", "b"]
    keep-last: 2
  - repositories: ["c/**"]
    keep-tags: [latest]
`)
	tags := []Tag{ago("x", Day), ago("y", 2*Day), ago("z", 3*Day)}
	for _, c := range []struct {
		repo string
		rule int // 0: none
		kept []string
	}{
		{"a/b", 1, []string{"x"}},
		{"a/b/c", 2, []string{"x", "y"}},
		{"b", 2, []string{"x", "y"}},
		{"a", 0, []string{"x", "y", "z"}},
		{"c", 0, []string{"x", "y", "z"}},
		{"c/d", 3, nil},
		{"b/c", 0, []string{"x", "y", "z"}},
	} {
		d := p.Evaluate(c.repo, now, tags, nil)
		if got := kept(d, tags); !slices.Equal(got, c.kept) {
			t.Errorf("%s: kept %q, want %q", c.repo, got, c.kept)
		}
		if c.rule == 0 {
			if d.Rule() != nil || d.Reason(0) != "no retention rule matches the repository" {
				t.Errorf("%s: rule %v, reason %q", c.repo, d.Rule(), d.Reason(0))
			}
		} else if d.Rule() != p.Rules[c.rule-1] || !strings.HasPrefix(d.Reason(2), fmt.Sprintf("rule %d: ", c.rule)) {
			t.Errorf("%s: rule %v, reason %q", c.repo, d.Rule(), d.Reason(2))
		}
	}
	// A nil policy keeps everything.
	var none *Policy
	if d := none.Evaluate("a", now, tags, nil); d.Kept() != 3 || none.NeedsPushTimes() {
		t.Errorf("nil policy: kept %d", d.Kept())
	}
}

func TestEvaluateCommandLine(t *testing.T) {
	n := 1
	p, err := FromFlags(Flags{KeepLast: &n})
	if err != nil {
		t.Fatal(err)
	}
	tags := []Tag{ago("x", Day), ago("y", 2*Day)}
	d := p.Evaluate("any/repo", now, tags, nil)
	if got := d.Reason(1); got != "command line: not the most recent (2nd)" {
		t.Errorf("reason %q", got)
	}
}

// manyTags makes n tags, with a few repeated times, unknown times and signatures.
func manyTags(n int) []Tag {
	tags := make([]Tag, n)
	for i := range tags {
		tags[i] = ago(fmt.Sprintf("build-%d", i), time.Duration(i%(n/2+1))*time.Hour)
		switch i % 100 {
		case 7:
			tags[i].Known = false
		case 9:
			tags[i].Name = sigTag(i, ".sig")
		}
	}
	return tags
}

func TestEvaluateAllocs(t *testing.T) {
	p := mustPolicy(t, "  - repositories: [\"**\"]\n    tags: \"build-.*\"\n    keep-last: 100\n    keep-within: 10d\n    keep-tags: [\"build-1.*\", \"build-2\"]\n")
	tags := manyTags(5000)
	d := p.Evaluate("a", now, tags, nil)
	if a := testing.AllocsPerRun(20, func() { d = p.Evaluate("a", now, tags, d) }); a != 0 && !raceEnabled {
		t.Errorf("Evaluate with a reused Decisions allocates %v times", a)
	}
	// The count kept matches a direct count.
	k := 0
	for i := range tags {
		if d.Keep(i) {
			k++
		}
		if d.Reason(i) == "" {
			t.Fatal("empty reason")
		}
	}
	if k != d.Kept() || k == 0 || k == len(tags) {
		t.Errorf("kept %d, Kept() %d of %d", k, d.Kept(), len(tags))
	}
}

func BenchmarkEvaluate(b *testing.B) {
	p := mustPolicy(b, "  - repositories: [\"**\"]\n    tags: \"build-.*\"\n    keep-last: 100\n    keep-within: 10d\n    keep-tags: [\"build-1.*\", \"build-2\"]\n")
	tags := manyTags(5000)
	var d *Decisions
	b.ReportAllocs()
	for b.Loop() {
		d = p.Evaluate("a", now, tags, d)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tags)), "ns/tag")
}

func BenchmarkReason(b *testing.B) {
	p := mustPolicy(b, "  - repositories: [\"**\"]\n    keep-last: 100\n    keep-within: 10d\n    keep-tags: [\"build-1.*\"]\n")
	tags := manyTags(5000)
	d := p.Evaluate("a", now, tags, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = d.Reason(i % len(tags))
		i++
	}
}
