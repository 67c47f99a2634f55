// Package inventory scans a registry's storage, in parallel, into an in-memory model:
// repositories with their tags, revisions, layer links and uploads; blobs; the parsed
// manifests; and every problem found on the way. Problems are reported, never fatal.
package inventory

import (
	"time"

	"github.com/clean-registry/clean-registry/internal/layout"
	"github.com/clean-registry/clean-registry/internal/manifest"
)

// Time is a modification time in Unix nanoseconds; 0 means "not known yet" (a
// filesystem walk does not stat; Complete fills in what a plan needs).
type Time int64

// Link is a link file: a revision, a layer link or a tag history entry. Its digest is
// the map key (taken from the path, which is what the registry looks up).
type Link struct {
	ModTime Time
}

// Blob is a blob's data file.
type Blob struct {
	Size    int64 // -1: not known yet
	ModTime Time
}

// Tag is one tag of a repository.
type Tag struct {
	// Current is what the tag points at; valid when HasCurrent.
	Current        layout.Digest
	HasCurrent     bool
	CurrentModTime Time
	// CurrentBad is set when the current link exists but cannot be read as a digest.
	CurrentBad bool
	// Index is the tag's history: every digest it ever pointed at.
	Index map[layout.Digest]Link
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
	Revisions map[layout.Digest]Link
	Layers    map[layout.Digest]Link
	Tags      map[string]*Tag
	Uploads   map[string]*Upload
	// Opaque says why this repository holds something clean-registry cannot reason
	// about (an unreadable manifest, a garbled tag, another digest algorithm): then
	// every revision, layer link and blob it links is kept.
	Opaque string
	// Unknown counts files that are not part of the layout: the repository is then
	// never removed as empty.
	Unknown int
}

// Manifest is a manifest blob as read once for every repository that links it.
type Manifest struct {
	*manifest.Manifest       // nil when Err is set
	Err                error // unreadable or not understood
	Size               int64 // bytes read
}

// Inventory is the whole storage.
type Inventory struct {
	Storage   string
	Repos     map[string]*Repo
	Blobs     map[layout.Digest]Blob
	Manifests map[layout.Digest]*Manifest
	// OtherBlobs counts blobs of other digest algorithms: always kept.
	OtherBlobs int
	Problems   []Problem
	// Files counts every file seen.
	Files int64
	// Blind lists what hides content from the scan (a symbolic link, a directory that
	// is no valid repository): with any, no blob and no dangling link is deleted.
	Blind []string
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
)

// Problem is one thing found wrong in the storage.
type Problem struct {
	Kind   ProblemKind `json:"kind"`
	Path   string      `json:"path,omitempty"`
	Repo   string      `json:"repository,omitempty"`
	Detail string      `json:"detail,omitempty"`
}

func newRepo(name string) *Repo {
	return &Repo{
		Name:      name,
		Revisions: map[layout.Digest]Link{},
		Layers:    map[layout.Digest]Link{},
		Tags:      map[string]*Tag{},
		Uploads:   map[string]*Upload{},
	}
}

func (r *Repo) tag(name string) *Tag {
	t := r.Tags[name]
	if t == nil {
		t = &Tag{Index: map[layout.Digest]Link{}}
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
