package plan

import (
	"bytes"
	"cmp"
	"sort"
	"strings"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
)

// entry is the compact record of one deletion: names and digests by index.
type entry struct {
	kind   Kind
	reason Reason
	repo   uint32 // index in Plan.repos
	id     inventory.ID
	extra  uint32 // 1 + index in Plan.extras; 0: none
}

type extra struct {
	name   string // tag or upload
	files  []string
	detail string // see Deletion.Detail
}

// entryChunk is the size of the chunks entries grow by: growing never copies, so a
// plan of millions of deletions never holds its list twice.
const entryChunk = 4096

// entries is an append-only list of entries in fixed-size chunks.
type entries struct {
	chunks [][]entry
	n      int
}

func (l *entries) add(e entry) {
	if l.n%entryChunk == 0 {
		l.chunks = append(l.chunks, make([]entry, 0, entryChunk))
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, e)
	l.n++
}

func (l *entries) at(i int) *entry { return &l.chunks[i/entryChunk][i%entryChunk] }

// sortTail puts the entries from `from` on in execution order within one phase and one
// repository: by tag or upload name, then digest.
func (p *Plan) sortTail(l *entries, from int) {
	if l.n-from > 1 {
		sort.Sort(tail{p, l, from})
	}
}

type tail struct {
	p    *Plan
	l    *entries
	from int
}

func (t tail) Len() int      { return t.l.n - t.from }
func (t tail) Swap(i, j int) { a, b := t.l.at(t.from+i), t.l.at(t.from+j); *a, *b = *b, *a }
func (t tail) Less(i, j int) bool {
	a, b := t.l.at(t.from+i), t.l.at(t.from+j)
	if c := cmp.Compare(a.repo, b.repo); c != 0 {
		return c < 0
	}
	if c := strings.Compare(t.p.extraName(a), t.p.extraName(b)); c != 0 {
		return c < 0
	}
	if a.id == b.id {
		return false
	}
	da, db := t.p.digests.Digest(a.id), t.p.digests.Digest(b.id)
	return bytes.Compare(da[:], db[:]) < 0
}

func (p *Plan) extraName(e *entry) string {
	if e.extra == 0 {
		return ""
	}
	return p.extras[e.extra-1].name
}
