// Package policy parses, validates and evaluates retention policies: which tags of
// a repository to keep and which to delete. It is pure: it reads no storage and
// knows no layout; the planner feeds it each repository's tags with their push
// times and turns its decisions into deletions.
//
// # Rules
//
// A policy is an ordered list of rules. For each repository the first rule whose
// repositories globs match applies; a repository that no rule matches keeps all
// of its tags. Among the tags a rule selects (those whose whole name matches its
// tags regex; all tags when it has none), a tag is kept when any of the rule's
// keep fields keeps it, and deleted otherwise:
//
//   - keep-last N keeps the N most recently pushed selected tags. Ranking is by
//     push time, most recent first; equal times go to the name, descending, so
//     the result never depends on the order of the input.
//   - keep-within D keeps the selected tags pushed within D before now (age <= D;
//     a push time in the future is within any D).
//   - keep-tags [REGEX...] keeps the selected tags whose whole name matches one of
//     the regexes.
//
// The keep fields are independent: a tag kept by keep-tags still takes one of
// keep-last's N places when it is among the N most recent. Tags the rule does not
// select are kept. A rule must have at least one keep field; keep-last: 0 counts
// as one when written explicitly (alone it deletes every selected tag, which is
// what it says), while an empty keep-tags list is an error.
//
// Tags whose push time could not be read (Tag.Known false) count as pushed now:
// keep-within keeps them, and keep-last ranks them before every tag with a known
// time (among themselves by name, descending).
//
// Signature and attestation tags (see IsSignatureTag) are never selected: they do
// not count toward keep-last and are always kept by the evaluation; the planner
// deletes them with their subject.
//
// Regexes are RE2 (package regexp) and always match the whole tag name: a regex R
// is compiled as ^(?:R)$, so "latest" does not match "latest-2", and the usual
// leading ^ or trailing $ are harmless.
//
// # Repository globs
//
// A glob is matched component by component, components being separated by "/":
// "*" matches any run of characters within one component, "?" one character, and
// a component "**" matches zero or more whole components, as in .gitignore, except
// that a trailing "**" matches one or more: "team-a/**" matches "team-a/x" and
// "team-a/x/y" but not "team-a"; "**/cache" matches "cache" and "x/y/cache"; "a/**/b"
// matches "a/b" and "a/x/b"; "**" alone matches every repository; "a/*" matches
// "a/b" but not "a/b/c". A component without wildcards must be a valid repository
// name component, and other characters than those of repository names, "*" and "?"
// are refused, so a glob that can never match is reported, not silently ignored.
//
// # Policy file
//
//	rules:
//	  - repositories: ["team-a/**", "base/*"]
//	    tags: "(main|pr)-.*"
//	    keep-last: 10
//	    keep-within: 30d
//	    keep-tags: ["latest", "v[0-9]+(\\.[0-9]+)*"]
//	  - repositories: ["**"]
//	    keep-last: 20
//
// The only top-level key is "rules"; a rule's keys are repositories (a list of
// globs, or one glob), tags, keep-last, keep-within and keep-tags (a list of
// regexes, or one regex). Unknown or repeated keys, bad globs, regexes or
// durations, negative counts, a rule without keep field or without repositories,
// a rule that can never apply (an earlier rule has the glob "**", or each of its
// globs is also an earlier rule's), and a file without rules are errors naming the file, the line and the key, e.g.
// `policy.yml:4: keep-within: bad duration "3x": unknown unit "x" (want ns, us,
// ms, s, m, h, d or w)`.
//
// # Durations
//
// ParseDuration reads Go durations (time.ParseDuration) with two more units, "d"
// (24h) and "w" (7d), e.g. "30d", "2w", "36h", "1w2d12h", "1.5d"; negative
// durations and durations over about 292 years are errors. DurationFlag adapts it
// to pflag.
package policy
