package policy

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Tag is one tag of a repository, as the evaluation needs it.
type Tag struct {
	Name   string
	Pushed time.Time // when the tag was last pushed (its link written)
	Known  bool      // false: Pushed could not be read; the tag counts as pushed now
}

// Decisions holds a rule's decision for each tag of one repository, compactly:
// one byte per tag, plus four bytes per selected tag when keep-last ranks them.
// Keep(i) and Reason(i) refer to the i-th tag given to the evaluation, whose
// slice the Decisions keeps: do not modify it while using them. A Decisions may
// be reused for the next repository by passing it to Evaluate again.
type Decisions struct {
	rule  *Rule // nil: no rule applies
	now   time.Time
	tags  []Tag
	bits  []uint8
	order []int32 // the tags keep-last ranks, most recent first once ranked
	kept  int
}

// Decision bits.
const (
	bitKeep       = 1 << iota // kept
	bitSignature              // a signature tag: never selected
	bitUnselected             // the tags regex does not match
	bitLast                   // kept by keep-last
	bitWithin                 // kept by keep-within
	bitKeepTags               // kept by keep-tags
)

// Evaluate decides, for the rule that applies to the repository, which of its
// tags to keep; a repository that no rule matches keeps them all. See
// Rule.Evaluate for into.
func (p *Policy) Evaluate(repo string, now time.Time, tags []Tag, into *Decisions) *Decisions {
	return p.Match(repo).Evaluate(now, tags, into)
}

// Evaluate decides which of a repository's tags the rule keeps, as of now (see
// the package documentation). It does not allocate when into is non-nil and was
// used before for as many tags or more: the result is into, reused; when into is
// nil a new Decisions is returned. A nil rule keeps every tag. The decisions do
// not depend on the order of tags.
func (r *Rule) Evaluate(now time.Time, tags []Tag, into *Decisions) *Decisions {
	d := into
	if d == nil {
		d = new(Decisions)
	}
	n := len(tags)
	d.rule, d.now, d.tags = r, now, tags
	if cap(d.bits) < n {
		d.bits = make([]uint8, n)
	}
	d.bits = d.bits[:n]
	d.order = d.order[:0]
	if r == nil {
		for i := range d.bits {
			d.bits[i] = bitKeep
		}
		d.kept = n
		return d
	}
	bits := d.bits
	rankAll := r.keepLast > 0
	if rankAll && cap(d.order) < n {
		d.order = make([]int32, 0, n)
	}
	for i := range tags {
		t := &tags[i]
		if _, sig := IsSignatureTag(t.Name); sig {
			bits[i] = bitSignature | bitKeep
			continue
		}
		if r.tags != nil && !r.tags.MatchString(t.Name) {
			bits[i] = bitUnselected | bitKeep
			continue
		}
		var b uint8
		if r.keepTags != nil && r.keptByTags(t.Name) {
			b |= bitKeepTags | bitKeep
		}
		if r.keepWithin >= 0 && (!t.Known || now.Sub(t.Pushed) <= r.keepWithin) {
			b |= bitWithin | bitKeep
		}
		if rankAll {
			d.order = append(d.order, int32(i))
		}
		bits[i] = b
	}
	if len(d.order) > r.keepLast {
		slices.SortFunc(d.order, d.compare)
	}
	for _, i := range d.order[:min(len(d.order), max(r.keepLast, 0))] {
		bits[i] |= bitLast | bitKeep
	}
	d.kept = 0
	for _, b := range bits {
		d.kept += int(b & bitKeep)
	}
	return d
}

// compare orders keep-last's ranking: unknown push times first, then the most
// recent, then names descending, then input order (for repeated names).
func (d *Decisions) compare(a, b int32) int {
	ta, tb := &d.tags[a], &d.tags[b]
	if ta.Known != tb.Known {
		if !ta.Known {
			return -1
		}
		return 1
	}
	if ta.Known {
		if c := tb.Pushed.Compare(ta.Pushed); c != 0 {
			return c
		}
	}
	if c := strings.Compare(tb.Name, ta.Name); c != 0 {
		return c
	}
	return int(a) - int(b)
}

// Len is the number of tags decided on.
func (d *Decisions) Len() int { return len(d.bits) }

// Keep reports whether the i-th tag is kept.
func (d *Decisions) Keep(i int) bool { return d.bits[i]&bitKeep != 0 }

// Kept is the number of tags kept; Len() - Kept() are deleted.
func (d *Decisions) Kept() int { return d.kept }

// Rule is the rule that decided, nil when none applied.
func (d *Decisions) Rule() *Rule { return d.rule }

// Reason says why the i-th tag is kept or deleted, e.g. "rule 2: not among the 10
// most recent (14th); pushed 45d3h ago, not within 30d; matches no keep-tags" or
// "rule 2: among the 10 most recent; matches keep-tags \"latest\"". It is computed
// on demand; a Decisions is cheap until reasons are asked for.
func (d *Decisions) Reason(i int) string {
	b := d.bits[i]
	r := d.rule
	if r == nil {
		return "no retention rule matches the repository"
	}
	if b&bitSignature != 0 {
		return "signature or attestation tag: decided with its subject"
	}
	buf := make([]byte, 0, 96)
	buf = append(buf, r.label...)
	buf = append(buf, ": "...)
	if b&bitUnselected != 0 {
		buf = append(buf, "not selected by tags "...)
		buf = strconv.AppendQuote(buf, r.tagsSrc)
		return string(buf)
	}
	keep := b&bitKeep != 0
	t := &d.tags[i]
	sep := false
	clause := func() {
		if sep {
			buf = append(buf, "; "...)
		}
		sep = true
	}
	if !t.Known && r.NeedsPushTimes() {
		clause()
		buf = append(buf, "push time unknown, counted as now"...)
	}
	if r.keepLast >= 0 && (!keep || b&bitLast != 0) {
		clause()
		buf = d.appendLast(buf, i, b&bitLast != 0)
	}
	if r.keepWithin >= 0 && (!keep || b&bitWithin != 0) {
		clause()
		if t.Known {
			buf = d.appendAge(buf, t.Pushed, b&bitWithin != 0)
			buf = append(buf, ", "...)
		}
		if b&bitWithin == 0 {
			buf = append(buf, "not "...)
		}
		buf = append(buf, "within "...)
		buf = appendDuration(buf, r.keepWithin)
	}
	if r.keepTags != nil && (!keep || b&bitKeepTags != 0) {
		clause()
		if b&bitKeepTags != 0 {
			buf = append(buf, "matches keep-tags "...)
			for k, re := range r.keepTags {
				if re.MatchString(t.Name) {
					buf = strconv.AppendQuote(buf, r.keepTagsSrc[k])
					break
				}
			}
		} else {
			buf = append(buf, "matches no keep-tags"...)
		}
	}
	return string(buf)
}

// appendLast says where the i-th tag stands in keep-last's ranking.
func (d *Decisions) appendLast(buf []byte, i int, kept bool) []byte {
	n := d.rule.keepLast
	switch {
	case n == 0:
		return append(buf, "keep-last 0"...)
	case kept && n == 1:
		return append(buf, "the most recent"...)
	case kept:
		buf = append(buf, "among the "...)
		buf = strconv.AppendInt(buf, int64(n), 10)
		return append(buf, " most recent"...)
	}
	if n == 1 {
		buf = append(buf, "not the most recent"...)
	} else {
		buf = append(buf, "not among the "...)
		buf = strconv.AppendInt(buf, int64(n), 10)
		buf = append(buf, " most recent"...)
	}
	// The ranking is sorted whenever a selected tag is left out of it.
	k, found := slices.BinarySearchFunc(d.order, int32(i), d.compare)
	if found {
		buf = append(buf, " ("...)
		buf = appendOrdinal(buf, k+1)
		buf = append(buf, ')')
	}
	return buf
}

func appendOrdinal(buf []byte, n int) []byte {
	buf = strconv.AppendInt(buf, int64(n), 10)
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return append(buf, "th"...)
	case n%10 == 1:
		return append(buf, "st"...)
	case n%10 == 2:
		return append(buf, "nd"...)
	case n%10 == 3:
		return append(buf, "rd"...)
	}
	return append(buf, "th"...)
}

// appendAge writes "pushed 45d3h ago" (or "pushed 5m in the future"), to two
// units, with more when two would make an age over keep-within's read as within.
func (d *Decisions) appendAge(buf []byte, pushed time.Time, within bool) []byte {
	age := d.now.Sub(pushed)
	buf = append(buf, "pushed "...)
	future := age < 0
	if future {
		age = -age
		if age < 0 { // -minimum duration
			age = 1<<63 - 1
		}
	}
	g := granularity(age)
	if !within && !future {
		for g > 1 && age.Truncate(g) <= d.rule.keepWithin {
			g = finer(g)
		}
	}
	buf = appendDuration(buf, age.Truncate(g))
	if future {
		return append(buf, " in the future"...)
	}
	return append(buf, " ago"...)
}

// granularity is the unit showing an age to two units: hours for days, minutes
// for hours, and so on.
func granularity(age time.Duration) time.Duration {
	switch {
	case age >= Day:
		return time.Hour
	case age >= time.Hour:
		return time.Minute
	case age >= time.Minute:
		return time.Second
	case age >= time.Second:
		return time.Millisecond
	}
	return 1
}

func finer(g time.Duration) time.Duration {
	switch g {
	case time.Hour:
		return time.Minute
	case time.Minute:
		return time.Second
	case time.Second:
		return time.Millisecond
	case time.Millisecond:
		return time.Microsecond
	}
	return 1
}
