package inventory

import (
	"bytes"
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
)

// Builder collects an inventory from many goroutines at once, then Build freezes it
// into the compact form. Each repository has its own lock and blobs are striped by
// their first byte (as the storage shards them), so that walkers recording a million
// files do not queue on one lock.
//
// Blobs come first: BlobsDone sorts them into the digest table, and every link
// recorded afterwards is held by ID (16 bytes) from the start, never as a digest.
type Builder struct {
	inv       *Inventory
	blobsDone bool
	files     atomic.Int64

	reposMu sync.RWMutex
	repos   map[string]*Repo

	stripes [256]struct {
		mu    sync.Mutex
		blobs []Blob
	}

	mu         sync.Mutex // guards what follows
	problems   []Problem
	blind      []string
	otherBlobs int
}

// NewBuilder starts an inventory of the named storage.
func NewBuilder(storage string) *Builder {
	return &Builder{inv: &Inventory{Storage: storage}, repos: map[string]*Repo{}}
}

// File counts one file seen.
func (b *Builder) File() { b.files.Add(1) }

// Problem records something wrong in the storage.
func (b *Builder) Problem(p Problem) {
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

// Blind records what hides content from the scan: no blob is then deleted.
func (b *Builder) Blind(path string) {
	b.mu.Lock()
	b.blind = append(b.blind, path)
	b.mu.Unlock()
}

// OtherBlob counts a blob of another digest algorithm.
func (b *Builder) OtherBlob() {
	b.mu.Lock()
	b.otherBlobs++
	b.mu.Unlock()
}

// Blob records a stored blob (size -1 and time 0 when not known). All blobs are
// recorded before BlobsDone.
func (b *Builder) Blob(d layout.Digest, size int64, t Time) {
	s := &b.stripes[d[0]]
	s.mu.Lock()
	s.blobs = append(s.blobs, Blob{Digest: d, Size: size, ModTime: t, Declared: -1})
	s.mu.Unlock()
}

// Repo runs fn on the named repository (created if new) under its lock.
func (b *Builder) Repo(name string, fn func(r *Repo)) {
	b.reposMu.RLock()
	r := b.repos[name]
	b.reposMu.RUnlock()
	if r == nil {
		b.reposMu.Lock()
		if r = b.repos[name]; r == nil {
			r = newRepo(name)
			b.repos[name] = r
		}
		b.reposMu.Unlock()
	}
	if fn != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		fn(r)
	}
}

// Revision records a manifest's link into a repository.
func (b *Builder) Revision(repo string, d layout.Digest, t Time) {
	l := b.link(d, t)
	b.Repo(repo, func(r *Repo) { r.Revisions = append(r.Revisions, l) })
}

// Layer records a blob's link into a repository.
func (b *Builder) Layer(repo string, d layout.Digest, t Time) {
	l := b.link(d, t)
	b.Repo(repo, func(r *Repo) { r.Layers = append(r.Layers, l) })
}

// TagIndex records a tag's history entry.
func (b *Builder) TagIndex(repo, tag string, d layout.Digest, t Time) {
	l := b.link(d, t)
	b.Repo(repo, func(r *Repo) {
		tg := r.tag(tag)
		tg.Index = append(tg.Index, l)
	})
}

// TagCurrent records what a tag points at.
func (b *Builder) TagCurrent(repo, tag string, d layout.Digest, t Time) {
	id := b.link(d, t).ID
	b.Repo(repo, func(r *Repo) {
		tg := r.tag(tag)
		tg.Current, tg.HasCurrent, tg.CurrentModTime = id, true, t
	})
}

// Tag records that a tag exists, with no readable current link when bad is set.
func (b *Builder) Tag(repo, tag string, bad bool, t Time) {
	b.Repo(repo, func(r *Repo) {
		tg := r.tag(tag)
		if bad {
			tg.CurrentBad, tg.CurrentModTime = true, t
		}
	})
}

// Upload records one file of an unfinished upload; startedAt is non-zero for its
// readable startedat file.
func (b *Builder) Upload(repo, id, file string, startedAt time.Time) {
	b.Repo(repo, func(r *Repo) {
		u := r.Uploads[id]
		if u == nil {
			u = &Upload{}
			r.Uploads[id] = u
		}
		u.Files = append(u.Files, file)
		if !startedAt.IsZero() {
			u.StartedAt = startedAt
		}
	})
}

// link interns a link's digest; the blob table must be complete.
func (b *Builder) link(d layout.Digest, t Time) Link {
	if !b.blobsDone {
		panic("inventory: a link recorded before BlobsDone")
	}
	return Link{ID: b.inv.Intern(d), ModTime: t}
}

// BlobsDone sorts the recorded blobs into the digest table: blob IDs are fixed from
// here on. It must not run concurrently with anything else.
func (b *Builder) BlobsDone() {
	if b.blobsDone {
		return
	}
	b.blobsDone = true
	n := 0
	for i := range b.stripes {
		n += len(b.stripes[i].blobs)
	}
	// The stripes follow the first byte: sorting each and laying them end to end sorts
	// the whole. Each stripe goes as soon as it is copied.
	blobs := make([]Blob, 0, n)
	for i := range b.stripes {
		s := b.stripes[i].blobs
		slices.SortFunc(s, func(x, y Blob) int { return bytes.Compare(x.Digest[:], y.Digest[:]) })
		for j, bl := range s {
			if j > 0 && bl.Digest == s[j-1].Digest {
				continue
			}
			blobs = append(blobs, bl)
		}
		b.stripes[i].blobs = nil
	}
	b.inv.Blobs = blobs
}

// Build freezes what was recorded: links sorted by ID, each once. The builder must
// not be used afterwards.
func (b *Builder) Build() *Inventory {
	b.BlobsDone()
	inv := b.inv
	inv.Repos, inv.Problems, inv.Blind, inv.OtherBlobs = b.repos, b.problems, b.blind, b.otherBlobs
	inv.Files = b.files.Load()
	for _, r := range inv.Repos {
		r.Revisions = sortLinks(r.Revisions)
		r.Layers = sortLinks(r.Layers)
		for _, t := range r.Tags {
			t.Index = sortLinks(t.Index)
		}
	}
	b.repos, b.inv = nil, nil
	return inv
}

// sortLinks sorts links by ID; of a link found twice (an object store may list a key
// in two overlapping listings) the first recorded counts.
func sortLinks(ls Links) Links {
	slices.SortStableFunc(ls, func(x, y Link) int { return cmp.Compare(x.ID, y.ID) })
	return slices.Clip(slices.CompactFunc(ls, func(x, y Link) bool { return x.ID == y.ID }))
}
