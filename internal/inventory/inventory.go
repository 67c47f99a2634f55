// Package inventory scans a registry's storage, in parallel, into an in-memory model:
// repositories with their tags, revisions, layer links and uploads; blobs; the parsed
// manifests; and every problem found on the way. Problems are reported, never fatal.
//
// The model is compact, because a registry of hundreds of terabytes has millions of
// blobs and links: every digest is held once, in a table sorted by digest, and
// everything else names it by its index there (an ID, four bytes). Links are sorted
// slices, not maps.
package inventory

import (
	"bytes"
	"cmp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
)

// Time is a modification time in Unix nanoseconds; 0 means "not known yet" (a
// filesystem walk does not stat; Complete fills in what a plan needs).
type Time int64

// ID names a digest of the inventory: blobs have the IDs below NumBlobs, in digest
// order; digests that are named (by a link, a tag, a manifest) but not stored get the
// IDs after them.
type ID uint32

// Blob is a stored blob.
type Blob struct {
	Digest  layout.Digest
	Size    int64 // -1: not known yet
	ModTime Time
	// Declared is the size the manifests that reference the blob declare for it (the
	// largest, whatever order they were read in; -1: none): what a kept blob weighs
	// when the walk did not stat it.
	Declared int64
}

// Weight is the blob's size when known, else the size a manifest declares for it;
// known is false when neither is.
func (b *Blob) Weight() (size int64, known bool) {
	switch {
	case b.Size >= 0:
		return b.Size, true
	case b.Declared >= 0:
		return b.Declared, true
	}
	return 0, false
}

// Link is a link file: a revision, a layer link or a tag history entry. Its digest is
// the one its path names (what the registry looks up).
type Link struct {
	ID      ID
	ModTime Time
}

// Links is a set of links sorted by ID.
type Links []Link

// Find returns the link to id, or nil.
func (ls Links) Find(id ID) *Link {
	i, ok := slices.BinarySearchFunc(ls, id, func(l Link, id ID) int { return cmp.Compare(l.ID, id) })
	if !ok {
		return nil
	}
	return &ls[i]
}

// Has reports whether the set links id.
func (ls Links) Has(id ID) bool { return ls.Find(id) != nil }

// Tag is one tag of a repository.
type Tag struct {
	// Current is what the tag points at; valid when HasCurrent.
	Current        ID
	HasCurrent     bool
	CurrentModTime Time
	// CurrentBad is set when the current link exists but cannot be read as a digest.
	CurrentBad bool
	// Index is the tag's history: every digest it ever pointed at.
	Index Links
	// IndexHidden is set when the history holds an entry the scan cannot read.
	IndexHidden bool
	// IndexMissing counts history entries whose directory lacks its link file (what
	// an interrupted deletion leaves): the registry sees none of them.
	IndexMissing int
}

// Upload is an unfinished upload.
type Upload struct {
	Files []string // relative to the upload directory
	// StartedAt is the time recorded in its startedat file; zero when missing or garbled.
	StartedAt time.Time
}

// Repo is one repository.
type Repo struct {
	Name      string
	Revisions Links
	Layers    Links
	Tags      map[string]*Tag
	Uploads   map[string]*Upload
	// Opaque says why this repository holds something clean-registry cannot reason
	// about (an unreadable manifest, a garbled tag, another digest algorithm): then
	// every revision, layer link and blob it links is kept.
	Opaque string
	// Unknown counts files that are not part of the layout: the repository is then
	// never removed as empty.
	Unknown int

	mu sync.Mutex // held by a scan's walkers while they record into the repository
}

// Manifest is a manifest blob as read once for every repository that links it, its
// references interned.
type Manifest struct {
	Err error // unreadable or not understood
	// Blobs are the config and layers; Children the manifests an index names.
	Blobs, Children []ID
	// Subject is what an OCI 1.1 referrer is about; valid when HasSubject.
	Subject    ID
	HasSubject bool
}

// manifestRec is how a manifest is held: its references in the inventory's shared
// arena (no slice headers or allocation per manifest).
type manifestRec struct {
	refs, blobs, children uint32 // refs: start in Inventory.refs
	subject               ID
	err                   uint32 // 1 + index in Inventory.errs; 0: none
	hasSubject            bool
}

// Inventory is the whole storage.
type Inventory struct {
	Storage string
	Repos   map[string]*Repo
	// Blobs are the stored blobs, sorted by digest: a blob's ID is its index.
	Blobs []Blob
	// OtherBlobs counts blobs of other digest algorithms: always kept.
	OtherBlobs int
	Problems   []Problem
	// Files counts every file seen.
	Files int64
	// Blind lists what hides content from the scan (a symbolic link, a directory that
	// is no valid repository): with any, no blob and no dangling link is deleted.
	Blind []string

	mu        sync.Mutex // guards what follows: manifests are recorded concurrently
	named     []layout.Digest
	namedIDs  map[layout.Digest]ID
	manifests map[ID]manifestRec
	refs      []ID
	errs      []error
}

// ProblemKind classifies what is wrong in the storage.
type ProblemKind string

const (
	GarbledLink     ProblemKind = "garbled-link"    // a link file whose content is not its digest
	MissingLink     ProblemKind = "missing-link"    // a tag without current link, a link dir without link
	MissingBlob     ProblemKind = "missing-blob"    // a link or manifest reference to a blob that does not exist
	BadManifest     ProblemKind = "bad-manifest"    // unreadable or not understood: kept with all it may reference
	UnknownFile     ProblemKind = "unknown-file"    // not part of the layout: left alone
	Irregular       ProblemKind = "irregular-file"  // a symlink or device inside the storage: never followed
	TransientFile   ProblemKind = "transient-file"  // a *.tmp file of an interrupted write
	OtherAlgorithm  ProblemKind = "other-algorithm" // a digest algorithm other than sha256: kept
	BadUpload       ProblemKind = "bad-upload"      // an upload without a readable startedat
	DanglingTag     ProblemKind = "dangling-tag"    // a tag pointing at a manifest the repository lacks
	UnreadableFile  ProblemKind = "unreadable-file" // an I/O error reading a file
	InvalidRepoName ProblemKind = "invalid-name"    // a directory that cannot be a repository name
	BadName         ProblemKind = "bad-name"        // a name that is no valid path (not UTF-8): never read
)

// Problem is one thing found wrong in the storage.
type Problem struct {
	Kind   ProblemKind `json:"kind"`
	Path   string      `json:"path,omitempty"`
	Repo   string      `json:"repository,omitempty"`
	Detail string      `json:"detail,omitempty"`
	// Settle, when set, is how the problem ends if it is only a live registry's
	// write under way (see Settled).
	Settle Settle `json:"-"`
}

// Settle names the file whose appearance (Appears) or removal ends a problem that a
// live registry's unfinished write would also show: the link or blob it writes
// last, the temporary file it renames. With DirGone the file's directory also ends
// it by being gone whole: a link directory that lost its half-written link to the
// run's own deletions (or to the registry's). The zero Settle: damage, whatever
// happens.
type Settle struct {
	Path    string
	Appears bool
	DirGone bool
}

// NumBlobs is the number of stored blobs; IDs below it are blobs.
func (inv *Inventory) NumBlobs() int { return len(inv.Blobs) }

// NumIDs is the number of digests the inventory names.
func (inv *Inventory) NumIDs() int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return len(inv.Blobs) + len(inv.named)
}

// IsBlob reports whether id is a stored blob.
func (inv *Inventory) IsBlob(id ID) bool { return int(id) < len(inv.Blobs) }

// Lookup returns the ID of d, if the inventory names it.
func (inv *Inventory) Lookup(d layout.Digest) (ID, bool) {
	// Only the digests are read: sizes and times of other blobs may be filled in
	// concurrently.
	blobs := inv.Blobs
	if i := sort.Search(len(blobs), func(i int) bool { return bytes.Compare(blobs[i].Digest[:], d[:]) >= 0 }); i < len(blobs) && blobs[i].Digest == d {
		return ID(i), true
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	id, ok := inv.namedIDs[d]
	return id, ok
}

// Intern returns the ID of d, naming it if it is new (a digest that is not stored).
func (inv *Inventory) Intern(d layout.Digest) ID {
	if id, ok := inv.Lookup(d); ok {
		return id
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if id, ok := inv.namedIDs[d]; ok {
		return id
	}
	if inv.namedIDs == nil {
		inv.namedIDs = map[layout.Digest]ID{}
	}
	id := ID(len(inv.Blobs) + len(inv.named))
	inv.named = append(inv.named, d)
	inv.namedIDs[d] = id
	return id
}

// Digest returns the digest an ID names.
func (inv *Inventory) Digest(id ID) layout.Digest {
	if inv.IsBlob(id) {
		return inv.Blobs[id].Digest
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.named[int(id)-len(inv.Blobs)]
}

// Holds calls fn once for every manifest r holds whole: its revisions, what its tags
// name (current and history), and the children of indexes among them, to any
// depth. ok is false for a digest never read as a manifest (m is then empty).
// This is what keeping a repository whole keeps, and what -x of it gives up.
func (inv *Inventory) Holds(r *Repo, fn func(id ID, m Manifest, ok bool)) {
	var queue []ID
	for _, l := range r.Revisions {
		queue = append(queue, l.ID)
	}
	for _, t := range r.Tags {
		if t.HasCurrent {
			queue = append(queue, t.Current)
		}
		for _, l := range t.Index {
			queue = append(queue, l.ID)
		}
	}
	seen := map[ID]struct{}{}
	for len(queue) > 0 {
		id := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		m, ok := inv.Manifest(id)
		fn(id, m, ok)
		queue = append(queue, m.Children...)
	}
}

// Manifest returns what reading the manifest id gave; ok is false if it was never read.
func (inv *Inventory) Manifest(id ID) (m Manifest, ok bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	rec, ok := inv.manifests[id]
	if !ok {
		return Manifest{}, false
	}
	if rec.err > 0 {
		m.Err = inv.errs[rec.err-1]
	}
	end := rec.refs + rec.blobs
	m.Blobs = inv.refs[rec.refs:end:end]
	m.Children = inv.refs[end : end+rec.children : end+rec.children]
	m.Subject, m.HasSubject = rec.subject, rec.hasSubject
	return m, true
}

// SetManifest records what reading manifest d gave: its parsed form or the error.
func (inv *Inventory) SetManifest(d layout.Digest, m *manifest.Manifest, err error) {
	var blobs, children []ID
	rec := manifestRec{}
	if m != nil && err == nil {
		blobs, children = inv.internAll(m.Blobs), inv.internAll(m.Children)
		if !m.Subject.IsZero() {
			rec.subject, rec.hasSubject = inv.Intern(m.Subject), true
		}
	}
	id := inv.Intern(d)
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.manifests == nil {
		inv.manifests = map[ID]manifestRec{}
	}
	if err != nil {
		inv.errs = append(inv.errs, err)
		rec.err = uint32(len(inv.errs))
	}
	for i, b := range blobs {
		if int(b) < len(inv.Blobs) && i < len(m.Sizes) && m.Sizes[i] > inv.Blobs[b].Declared {
			inv.Blobs[b].Declared = m.Sizes[i]
		}
	}
	rec.refs, rec.blobs, rec.children = uint32(len(inv.refs)), uint32(len(blobs)), uint32(len(children))
	inv.refs = append(append(inv.refs, blobs...), children...)
	inv.manifests[id] = rec
}

func (inv *Inventory) internAll(ds []layout.Digest) []ID {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]ID, len(ds))
	for i, d := range ds {
		ids[i] = inv.Intern(d)
	}
	return ids
}

func newRepo(name string) *Repo {
	return &Repo{Name: name, Tags: map[string]*Tag{}, Uploads: map[string]*Upload{}}
}

func (r *Repo) tag(name string) *Tag {
	t := r.Tags[name]
	if t == nil {
		t = &Tag{}
		r.Tags[name] = t
	}
	return t
}

func (r *Repo) markOpaque(why string) {
	if r.Opaque == "" {
		r.Opaque = why
	}
}

// ToTime converts a time.Time into a Time (0 for the zero time).
func ToTime(t time.Time) Time {
	if t.IsZero() {
		return 0
	}
	return Time(t.UnixNano())
}

// Std converts a Time back into a time.Time.
func (t Time) Std() time.Time { return time.Unix(0, int64(t)) }

// Digests is the inventory's digest table and blob sizes: what a plan needs of the
// inventory once the rest of it is gone. Sizes that Complete fills in show through.
type Digests struct {
	blobs []Blob
	named []layout.Digest
}

// Digests returns the digest table as it stands.
func (inv *Inventory) Digests() Digests {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return Digests{blobs: inv.Blobs, named: inv.named}
}

// Digest returns the digest an ID names.
func (t Digests) Digest(id ID) layout.Digest {
	if int(id) < len(t.blobs) {
		return t.blobs[id].Digest
	}
	return t.named[int(id)-len(t.blobs)]
}

// Size returns a blob's size: -1 when not known or not a blob.
func (t Digests) Size(id ID) int64 {
	if int(id) < len(t.blobs) {
		return t.blobs[id].Size
	}
	return -1
}
