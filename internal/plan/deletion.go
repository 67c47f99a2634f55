// Package plan decides, as a pure function of an inventory and a policy, what a run
// deletes and why. Nothing here touches storage: the executor applies a plan, and a
// dry run prints the very same plan.
package plan

import (
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Kind is what a deletion removes. The order of the constants is the order of the
// phases: a crash between any two deletions leaves every kept image whole, because
// what names an object always goes before the object it names.
type Kind uint8

const (
	Tag        Kind = iota + 1 // a whole tag, on request (-x)
	TagHistory                 // a tag's history entry for a digest it no longer points at
	Revision                   // a manifest's link into a repository
	LayerLink                  // a blob's link into a repository
	Upload                     // an abandoned upload
	Blob                       // a blob's content, manifests included
	Repository                 // what remains of a repository removed or left empty
)

// Kinds lists every kind in phase order.
var Kinds = []Kind{Tag, TagHistory, Revision, LayerLink, Upload, Blob, Repository}

func (k Kind) String() string {
	switch k {
	case Tag:
		return "tag"
	case TagHistory:
		return "tag-history"
	case Revision:
		return "revision"
	case LayerLink:
		return "layer-link"
	case Upload:
		return "upload"
	case Blob:
		return "blob"
	case Repository:
		return "repository"
	}
	return "unknown"
}

// Reason says why something is deleted.
type Reason uint8

const (
	Removed            Reason = iota + 1 // named with -x
	NotCurrent                           // tag history entry for a digest the tag no longer points at
	Untagged                             // no tag, kept index or kept subject needs the manifest
	DanglingRevision                     // the revision's manifest blob is missing
	Unneeded                             // no kept manifest of the repository references the blob
	DanglingLink                         // the linked blob is missing
	Unreferenced                         // no kept manifest of any repository references the blob
	Abandoned                            // an upload older than the upload age
	Emptied                              // the repository has nothing left
	Retention                            // a keep rule selects the tag and no keep rule keeps it
	SignatureOfDeleted                   // a signature tag of a manifest the run deletes
	OrphanSignature                      // a signature tag of a manifest no repository holds
	EmptyTag                             // a tag without current link or history: an interrupted deletion\'s remnant
)

func (r Reason) String() string {
	switch r {
	case Removed:
		return "removed on request"
	case NotCurrent:
		return "not the tag's current target"
	case Untagged:
		return "untagged and not needed by a kept index or subject"
	case DanglingRevision:
		return "manifest blob is missing"
	case Unneeded:
		return "no kept manifest of the repository references it"
	case DanglingLink:
		return "blob is missing"
	case Unreferenced:
		return "no kept manifest references it"
	case Abandoned:
		return "abandoned upload"
	case Emptied:
		return "repository has nothing left"
	case Retention:
		return "not kept by the retention rule"
	case SignatureOfDeleted:
		return "signature or attestation of a manifest this run deletes"
	case OrphanSignature:
		return "signature or attestation of a manifest no repository holds"
	case EmptyTag:
		return "tag without current link or history, left by an interrupted deletion"
	}
	return "unknown"
}

// Deletion is one planned deletion.
type Deletion struct {
	Kind   Kind
	Reason Reason
	Repo   string
	Tag    string
	Digest layout.Digest
	Upload string
	// Bytes is the content freed: a blob's size (-1 when not known), or 0.
	Bytes int64
	// LinkedBytes is, for a link whose blob the plan deletes too, that blob's size.
	LinkedBytes int64
	// Detail says more than Reason where one reason covers many cases: for a tag
	// deleted by retention, its push time and which keep rules it missed.
	Detail string
	// files is what the inventory knows lies inside the unit, for tags and uploads.
	files []string
}

// Why is the reason as a person reads it: the detail when there is one.
func (d Deletion) Why() string {
	if d.Detail != "" {
		return d.Detail
	}
	return d.Reason.String()
}

// Dir is the directory the deletion removes (for a repository: the repository's own
// directory, of which only _manifests, _layers and _uploads go).
func (d Deletion) Dir() string {
	switch d.Kind {
	case Tag:
		return layout.TagDir(d.Repo, d.Tag)
	case TagHistory:
		return layout.TagIndexDir(d.Repo, d.Tag, d.Digest)
	case Revision:
		return layout.RevisionDir(d.Repo, d.Digest)
	case LayerLink:
		return layout.LayerDir(d.Repo, d.Digest)
	case Upload:
		return layout.UploadDir(d.Repo, d.Upload)
	case Blob:
		return layout.BlobDir(d.Digest)
	case Repository:
		return layout.RepoDir(d.Repo)
	}
	panic("plan: deletion of unknown kind")
}

// Units are the storage units the deletion removes.
func (d Deletion) Units() []storage.Unit {
	dir := d.Dir()
	switch d.Kind {
	case TagHistory, Revision, LayerLink:
		return []storage.Unit{{Dir: dir, Files: []string{layout.Link}}}
	case Blob:
		return []storage.Unit{{Dir: dir, Files: []string{layout.Data}}}
	case Tag, Upload:
		return []storage.Unit{{Dir: dir, Files: d.files}}
	case Repository:
		if d.Reason != Removed {
			// Left empty by this plan: only its empty directories go (PruneDirs), so
			// whatever was pushed into it since the scan stays.
			return nil
		}
		// Removed on request: the repository's own reserved directories, whatever they
		// still hold, but not a nested repository below them.
		reserved := layout.ReservedDirs(d.Repo)
		units := make([]storage.Unit, len(reserved))
		for i, dir := range reserved {
			units[i] = storage.Unit{Dir: dir}
		}
		return units
	}
	panic("plan: deletion of unknown kind")
}

// PruneDirs are the directories a repository deletion leaves to remove when empty,
// deepest first: the fixed skeleton of the repository's reserved directories, the
// repository's own directory and its parents up to the repositories directory.
func (d Deletion) PruneDirs() []string {
	if d.Kind != Repository {
		return nil
	}
	return append(layout.SkeletonDirs(d.Repo), layout.RepoDirAndParents(d.Repo)...)
}

// Subject names what is deleted, for humans: "repo:tag", "repo@sha256:..." or a digest.
func (d Deletion) Subject() string {
	switch d.Kind {
	case Tag:
		return d.Repo + ":" + d.Tag
	case TagHistory:
		return d.Repo + ":" + d.Tag + "@" + d.Digest.String()
	case Revision, LayerLink:
		return d.Repo + "@" + d.Digest.String()
	case Upload:
		return d.Repo + " upload " + d.Upload
	case Blob:
		return d.Digest.String()
	case Repository:
		return d.Repo
	}
	return ""
}
