package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a policy file.
const MaxFileSize = 1 << 20

// maxErrors bounds the errors one Parse reports.
const maxErrors = 20

// Policy is an ordered list of retention rules. The zero or nil Policy matches
// no repository, so it keeps every tag. A Policy is immutable and safe for
// concurrent use.
type Policy struct {
	// Source is the file the policy was read from, or "command line".
	Source string
	// Rules in order: the first one matching a repository applies to it.
	Rules []*Rule
}

// Rule is one retention rule; see the package documentation for its meaning.
type Rule struct {
	label  string // "rule 2" or "command line"
	source string // file name, "" for flags
	line   int

	repos []Glob

	tagsSrc string
	tags    *regexp.Regexp // nil: every tag

	keepLast   int           // < 0: none
	keepWithin time.Duration // < 0: none

	keepTagsSrc []string
	keepTags    []*regexp.Regexp
	keepTagsAny *regexp.Regexp // all of keepTags in one, nil when none
}

// Match returns the rule that applies to the repository: the first one whose
// globs match it, or nil when none does (the repository keeps all its tags).
func (p *Policy) Match(repo string) *Rule {
	if p == nil {
		return nil
	}
	for _, r := range p.Rules {
		if r.MatchesRepository(repo) {
			return r
		}
	}
	return nil
}

// NeedsPushTimes reports whether any rule needs tag push times (has keep-last
// above 0 or keep-within), so a scan may skip reading them otherwise.
func (p *Policy) NeedsPushTimes() bool {
	if p == nil {
		return false
	}
	for _, r := range p.Rules {
		if r.NeedsPushTimes() {
			return true
		}
	}
	return false
}

// Label names the rule in reasons: "rule N" (1-based, in file order) or
// "command line".
func (r *Rule) Label() string { return r.label }

// String names the rule with its place: "rule 2 (policy.yml:6)" or "command line".
func (r *Rule) String() string {
	if r.source == "" || r.line == 0 {
		return r.label
	}
	return r.label + " (" + r.source + ":" + strconv.Itoa(r.line) + ")"
}

// Line is the rule's line in its file, 0 for command-line rules.
func (r *Rule) Line() int { return r.line }

// Repositories returns the rule's globs; the caller must not modify the slice.
func (r *Rule) Repositories() []Glob { return r.repos }

// Tags returns the selection regex as written, "" when the rule selects every tag.
func (r *Rule) Tags() string { return r.tagsSrc }

// KeepLast returns keep-last's count, ok false when the rule has none.
func (r *Rule) KeepLast() (n int, ok bool) { return max(r.keepLast, 0), r.keepLast >= 0 }

// KeepWithin returns keep-within's duration, ok false when the rule has none.
func (r *Rule) KeepWithin() (d time.Duration, ok bool) {
	return max(r.keepWithin, 0), r.keepWithin >= 0
}

// KeepTags returns keep-tags' regexes as written; the caller must not modify the
// slice.
func (r *Rule) KeepTags() []string { return r.keepTagsSrc }

// MatchesRepository reports whether one of the rule's globs matches repo.
func (r *Rule) MatchesRepository(repo string) bool {
	for i := range r.repos {
		if r.repos[i].Match(repo) {
			return true
		}
	}
	return false
}

// Selects reports whether the rule decides on the tag: its tags regex matches the
// whole name and it is no signature tag (see IsSignatureTag).
func (r *Rule) Selects(tag string) bool {
	if _, sig := IsSignatureTag(tag); sig {
		return false
	}
	return r.tags == nil || r.tags.MatchString(tag)
}

// NeedsPushTimes reports whether the rule's decisions depend on push times at all.
func (r *Rule) NeedsPushTimes() bool { return r.keepLast > 0 || r.keepWithin >= 0 }

// NeedsPushTime reports whether the tag's push time can change the rule's
// decisions, on this tag or (through keep-last's ranking) on others. When it
// returns false the tag may be passed with Known false.
func (r *Rule) NeedsPushTime(tag string) bool {
	if !r.NeedsPushTimes() || !r.Selects(tag) {
		return false
	}
	return r.keepLast > 0 || !r.keptByTags(tag)
}

// keptByTags reports whether one of keep-tags' regexes matches the tag.
func (r *Rule) keptByTags(tag string) bool {
	if r.keepTagsAny != nil {
		return r.keepTagsAny.MatchString(tag)
	}
	for _, re := range r.keepTags {
		if re.MatchString(tag) {
			return true
		}
	}
	return false
}

// Error is a policy error: a bad file or bad flags. Its message reads
// "FILE:LINE: KEY: MSG", leaving out the parts that are unknown or empty.
type Error struct {
	File string // the policy file; "" for command-line flags
	Line int    // 1-based; 0 when unknown
	Key  string // the key at fault ("keep-within", "--keep-tag", "rule 2"), or ""
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses a policy file; errors name the file as path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses and validates a policy file's content; name is the file's name
// for error messages. It reports every error found (up to 20), each an *Error,
// joined with errors.Join when there are several.
func Parse(name string, data []byte) (*Policy, error) {
	p := &parser{file: name}
	pol := p.parse(data)
	if len(p.errs) > 0 {
		if len(p.errs) == 1 {
			return nil, p.errs[0]
		}
		return nil, errors.Join(p.errs...)
	}
	return pol, nil
}

type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(line int, key, format string, args ...any) {
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Msg: "too many errors"})
	}
	if len(p.errs) > maxErrors {
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Key: key, Msg: msg})
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) yamlError(err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errorf(line, "", "bad YAML: %s", m[2])
		return
	}
	p.errorf(0, "", "bad YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

const (
	keyRepositories = "repositories"
	keyTags         = "tags"
	keyKeepLast     = "keep-last"
	keyKeepWithin   = "keep-within"
	keyKeepTags     = "keep-tags"
	ruleKeys        = "repositories, tags, keep-last, keep-within, keep-tags"
)

func (p *parser) parse(data []byte) *Policy {
	if len(data) > MaxFileSize {
		p.errorf(0, "", "larger than %d bytes", MaxFileSize)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			p.errorf(0, "", "empty policy: no rules")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(extra.Line, "", "more than one YAML document")
		return nil
	} else if err != io.EOF {
		p.yamlError(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.errorf(0, "", "empty policy: no rules")
			return nil
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		p.errorf(0, "", "empty policy: no rules")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "", "want a mapping with the key \"rules\", got %s", kindName(root))
		return nil
	}
	var rules *yaml.Node
	var rulesLine int
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), root.Content[i+1]
		key, ok := p.key(k)
		if !ok {
			continue
		}
		if key != "rules" {
			p.errorf(k.Line, key, "unknown key (the only top-level key is \"rules\")")
			continue
		}
		if rules != nil {
			p.errorf(k.Line, key, "repeated key (first on line %d)", rulesLine)
			continue
		}
		rules, rulesLine = resolve(v), k.Line
	}
	if rules == nil {
		if len(p.errs) == 0 {
			p.errorf(root.Line, "rules", "missing: no rules")
		}
		return nil
	}
	if rules.Kind != yaml.SequenceNode {
		if rules.Kind == yaml.ScalarNode && rules.Tag == "!!null" {
			p.errorf(rulesLine, "rules", "no rules")
		} else {
			p.errorf(rules.Line, "rules", "want a list of rules, got %s", kindName(rules))
		}
		return nil
	}
	if len(rules.Content) == 0 {
		p.errorf(rulesLine, "rules", "no rules")
		return nil
	}
	pol := &Policy{Source: p.file, Rules: make([]*Rule, 0, len(rules.Content))}
	for i, n := range rules.Content {
		if r := p.rule(resolve(n), i+1); r != nil {
			pol.Rules = append(pol.Rules, r)
		}
	}
	if len(p.errs) == 0 {
		p.unreachable(pol.Rules)
	}
	return pol
}

// unreachable reports rules that can never apply: an earlier rule matches every
// repository ("**"), or each of their globs is one of earlier rules.
func (p *parser) unreachable(rules []*Rule) {
	seen := map[string]int{} // canonical glob -> index of the first rule with it
	all := -1                // index of the first rule with "**"
	for i, r := range rules {
		if all >= 0 {
			q := rules[all]
			p.errorf(r.line, r.label, "never applies: %s (line %d) matches every repository", q.label, q.line)
			continue
		}
		by := -1
		for _, g := range r.repos {
			j, ok := seen[g.canonical()]
			if !ok {
				by = -1
				break
			}
			by = max(by, j)
		}
		if by >= 0 {
			q := rules[by]
			p.errorf(r.line, r.label, "never applies: each of its globs is in an earlier rule (the last one %s, line %d)", q.label, q.line)
		}
		for _, g := range r.repos {
			if _, ok := seen[g.canonical()]; !ok {
				seen[g.canonical()] = i
			}
			if g.MatchesAll() {
				all = i
			}
		}
	}
}

// canonical spells the glob so that equivalent spellings ("**/**" and "**") agree.
func (g Glob) canonical() string {
	var b strings.Builder
	for i, c := range g.comps {
		if i > 0 {
			b.WriteByte('/')
		}
		switch c.kind {
		case compAny:
			b.WriteByte('*')
		case compDoubleStar:
			b.WriteString("**")
		default:
			b.WriteString(c.pat)
		}
	}
	return b.String()
}

func (p *parser) rule(n *yaml.Node, idx int) *Rule {
	label := "rule " + strconv.Itoa(idx)
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, label, "want a mapping with the keys %s, got %s", ruleKeys, kindName(n))
		return nil
	}
	r := &Rule{label: label, source: p.file, line: n.Line, keepLast: -1, keepWithin: -1}
	nerr := len(p.errs)
	seen := map[string]int{}
	hasRepos := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		key, ok := p.key(k)
		if !ok {
			continue
		}
		if first, dup := seen[key]; dup {
			p.errorf(k.Line, key, "repeated key (first on line %d)", first)
			continue
		}
		seen[key] = k.Line
		switch key {
		case keyRepositories:
			hasRepos = true
			for _, e := range p.list(k, v) {
				g, err := ParseGlob(e.Value)
				if err != nil {
					p.errorf(e.Line, key, "bad glob %q: %v", e.Value, err)
					continue
				}
				r.repos = append(r.repos, g)
			}
		case keyTags:
			if e, ok := p.scalar(k, v); ok {
				re, err := compileWhole(e.Value)
				if err != nil {
					p.errorf(e.Line, key, "%v", err)
					continue
				}
				r.tagsSrc, r.tags = e.Value, re
			}
		case keyKeepLast:
			if e, ok := p.scalar(k, v); ok {
				c, err := parseCount(e.Value)
				if err != nil {
					p.errorf(e.Line, key, "%v", err)
					continue
				}
				r.keepLast = c
			}
		case keyKeepWithin:
			if e, ok := p.scalar(k, v); ok {
				d, err := ParseDuration(e.Value)
				if err != nil {
					p.errorf(e.Line, key, "%v", err)
					continue
				}
				r.keepWithin = d
			}
		case keyKeepTags:
			for _, e := range p.list(k, v) {
				re, err := compileWhole(e.Value)
				if err != nil {
					p.errorf(e.Line, key, "%v", err)
					continue
				}
				r.keepTagsSrc = append(r.keepTagsSrc, e.Value)
				r.keepTags = append(r.keepTags, re)
			}
		default:
			p.errorf(k.Line, key, "unknown key in %s (known: %s)", label, ruleKeys)
		}
	}
	if !hasRepos {
		p.errorf(r.line, label, "missing repositories (a list of globs; \"**\" is every repository)")
	}
	_, hasLast := seen[keyKeepLast]
	_, hasWithin := seen[keyKeepWithin]
	_, hasKeepTags := seen[keyKeepTags]
	if !hasLast && !hasWithin && !hasKeepTags {
		p.errorf(r.line, label, "no keep field: set keep-last, keep-within or keep-tags (keep-last: 0 to delete every selected tag)")
	}
	if len(p.errs) > nerr {
		return nil
	}
	r.keepTagsAny = anyOf(r.keepTagsSrc)
	return r
}

// key returns a mapping key's text.
func (p *parser) key(k *yaml.Node) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		p.errorf(k.Line, "", "a key must be a plain string, not %s", kindName(k))
		return "", false
	}
	if k.Tag == "!!merge" {
		p.errorf(k.Line, k.Value, "merge keys are not supported")
		return "", false
	}
	return k.Value, true
}

// scalar returns v when it is a single, non-null value.
func (p *parser) scalar(k, v *yaml.Node) (*yaml.Node, bool) {
	switch {
	case v.Kind != yaml.ScalarNode:
		p.errorf(v.Line, k.Value, "want a single value, got %s", kindName(v))
		return nil, false
	case v.Tag == "!!null":
		p.errorf(k.Line, k.Value, "missing value")
		return nil, false
	}
	return v, true
}

// list returns the values of a list of strings (one value stands for a list of
// one), reporting an error for an empty list, a null and nested values.
func (p *parser) list(k, v *yaml.Node) []*yaml.Node {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			p.errorf(k.Line, k.Value, "missing value")
			return nil
		}
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			p.errorf(v.Line, k.Value, "empty list")
			return nil
		}
		out := make([]*yaml.Node, 0, len(v.Content))
		for _, e := range v.Content {
			e = resolve(e)
			switch {
			case e.Kind != yaml.ScalarNode:
				p.errorf(e.Line, k.Value, "want a list of strings, found %s", kindName(e))
			case e.Tag == "!!null":
				p.errorf(e.Line, k.Value, "empty list item")
			default:
				out = append(out, e)
			}
		}
		return out
	}
	p.errorf(v.Line, k.Value, "want a list of strings, got %s", kindName(v))
	return nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 100 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return "the value " + strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// parseCount reads keep-last's count: decimal digits.
func parseCount(s string) (int, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("negative count %q", s)
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("want a whole number, got %q", s)
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("count %q too large", s)
	}
	return int(n), nil
}

// compileWhole compiles an RE2 regex to match whole tag names.
func compileWhole(src string) (*regexp.Regexp, error) {
	if src == "" {
		return nil, errors.New("empty regex (it would match no tag)")
	}
	// Compiled alone first: a regex such as "a)|(b" must not escape the anchoring.
	if _, err := regexp.Compile(src); err != nil {
		return nil, fmt.Errorf("bad regex %q: %v", src, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	re, err := regexp.Compile(`^(?:` + src + `)$`)
	if err != nil {
		return nil, fmt.Errorf("bad regex %q: %v", src, err)
	}
	return re, nil
}

// anyOf compiles regexes (each valid) into one whole-name alternation, nil when
// there are fewer than two or the alternation is too large to compile.
func anyOf(srcs []string) *regexp.Regexp {
	if len(srcs) < 2 {
		return nil
	}
	var b strings.Builder
	b.WriteString("^(?:")
	for i, s := range srcs {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString("(?:")
		b.WriteString(s)
		b.WriteByte(')')
	}
	b.WriteString(")$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil
	}
	return re
}

// Flags are the command line's retention flags, which make one rule for every
// repository.
type Flags struct {
	KeepLast   *int           // --keep-last; nil when not given
	KeepWithin *time.Duration // --keep-within; nil when not given
	KeepTags   []string       // --keep-tags: regexes
	Tags       string         // --tags: the selection regex; "" selects every tag
}

// CommandLine is the Source of a policy made by FromFlags and the label of its rule.
const CommandLine = "command line"

// FromFlags makes the policy of the command line's retention flags: one rule,
// labelled "command line", for every repository. It returns nil and no error
// when no retention flag is given. Errors are *Error values naming the flag.
func FromFlags(f Flags) (*Policy, error) {
	if f.KeepLast == nil && f.KeepWithin == nil && len(f.KeepTags) == 0 {
		if f.Tags != "" {
			return nil, &Error{Key: "--tags", Msg: "needs --keep-last, --keep-within or --keep-tags"}
		}
		return nil, nil
	}
	r := &Rule{label: CommandLine, repos: []Glob{MustParseGlob("**")}, keepLast: -1, keepWithin: -1}
	var errs []error
	if f.KeepLast != nil {
		if *f.KeepLast < 0 {
			errs = append(errs, &Error{Key: "--keep-last", Msg: "negative count " + strconv.Itoa(*f.KeepLast)})
		} else {
			r.keepLast = min(*f.KeepLast, 1<<31-1)
		}
	}
	if f.KeepWithin != nil {
		if *f.KeepWithin < 0 {
			errs = append(errs, &Error{Key: "--keep-within", Msg: "negative duration " + FormatDuration(*f.KeepWithin)})
		} else {
			r.keepWithin = *f.KeepWithin
		}
	}
	if f.Tags != "" {
		re, err := compileWhole(f.Tags)
		if err != nil {
			errs = append(errs, &Error{Key: "--tags", Msg: err.Error()})
		}
		r.tagsSrc, r.tags = f.Tags, re
	}
	for _, s := range f.KeepTags {
		re, err := compileWhole(s)
		if err != nil {
			errs = append(errs, &Error{Key: "--keep-tag", Msg: err.Error()})
			continue
		}
		r.keepTagsSrc = append(r.keepTagsSrc, s)
		r.keepTags = append(r.keepTags, re)
	}
	switch len(errs) {
	case 0:
	case 1:
		return nil, errs[0]
	default:
		return nil, errors.Join(errs...)
	}
	r.keepTagsAny = anyOf(r.keepTagsSrc)
	return &Policy{Source: CommandLine, Rules: []*Rule{r}}, nil
}
