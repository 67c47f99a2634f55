package plan

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/clean-registry/clean-registry/internal/inventory"
	"github.com/clean-registry/clean-registry/internal/layout"
	"github.com/clean-registry/clean-registry/internal/storage"
)

// Selector names a repository, or one tag of it.
type Selector struct {
	Repo string
	Tag  string // empty: the whole repository
}

func (s Selector) String() string {
	if s.Tag == "" {
		return s.Repo
	}
	return s.Repo + ":" + s.Tag
}

// Policy says what to clean.
type Policy struct {
	// Select limits the untagged purge and -x to these repositories; empty: all.
	// Blobs are swept registry-wide whatever the selection.
	Select []Selector
	// Remove deletes the selected repositories or tags.
	Remove bool
	// Grace keeps everything younger than this. With a grace, an object whose time is
	// not known is kept: the caller fills in the times of the candidates first.
	Grace time.Duration
	// UploadAge is the age from which an unfinished upload is abandoned.
	UploadAge time.Duration
	// Now is the reference time.
	Now time.Time
}

// Plan is what a run deletes, in execution order, and why.
type Plan struct {
	Deletions []Deletion
	// Failures are per-repository errors of the selection (no such repository or tag).
	Failures []string
	// Notes say what the plan deliberately leaves alone, e.g. why no blob is swept.
	Notes []string
	// Kept counts what stays.
	KeptRevisions, KeptBlobs int
}

// Make computes the plan. It is pure: the same inventory and policy give the same plan.
func Make(inv *inventory.Inventory, pol Policy) *Plan {
	p := &Plan{}
	m := marker{inv: inv, pol: pol, keepBlob: map[layout.Digest]struct{}{}}
	scope, removeRepo, removeTags := m.selection(p)

	names := make([]string, 0, len(inv.Repos))
	for name := range inv.Repos {
		names = append(names, name)
	}
	sort.Strings(names)

	blind := len(inv.Blind) > 0
	for _, name := range names {
		r := inv.Repos[name]
		switch {
		case removeRepo[name]:
			p.removeRepository(r)
		case scope != nil && !scope[name]:
			m.keepWhole(r)
		default:
			p.cleanRepository(&m, r, removeTags[name], blind)
		}
	}

	if blind {
		p.Notes = append(p.Notes, fmt.Sprintf("no blob is deleted: the scan cannot see behind %d entries (first: %s)",
			len(inv.Blind), inv.Blind[0]))
	} else {
		for d, b := range inv.Blobs {
			if _, keep := m.keepBlob[d]; keep || m.fresh(b.ModTime) {
				continue
			}
			p.Deletions = append(p.Deletions, Deletion{Kind: Blob, Reason: Unreferenced, Digest: d, Bytes: b.Size})
		}
	}
	p.KeptBlobs = len(inv.Blobs) - p.count(Blob)
	sortDeletions(p.Deletions)
	return p
}

func (p *Plan) count(k Kind) int {
	n := 0
	for _, d := range p.Deletions {
		if d.Kind == k {
			n++
		}
	}
	return n
}

// selection turns the selectors into the repositories in scope (nil: all) and what
// -x removes, recording unknown names as failures.
func (m *marker) selection(p *Plan) (scope, removeRepo map[string]bool, removeTags map[string]map[string]bool) {
	removeRepo = map[string]bool{}
	removeTags = map[string]map[string]bool{}
	if len(m.pol.Select) == 0 {
		return nil, removeRepo, removeTags
	}
	scope = map[string]bool{}
	for _, s := range m.pol.Select {
		r := m.inv.Repos[s.Repo]
		if r == nil {
			p.Failures = append(p.Failures, "No such repository: "+s.Repo)
			continue
		}
		if s.Tag != "" {
			if _, ok := r.Tags[s.Tag]; !ok {
				p.Failures = append(p.Failures, fmt.Sprintf("No such tag: %s in repository %s", s.Tag, s.Repo))
				continue
			}
		}
		scope[s.Repo] = true
		if !m.pol.Remove {
			continue
		}
		if s.Tag == "" {
			removeRepo[s.Repo] = true
			continue
		}
		if removeTags[s.Repo] == nil {
			removeTags[s.Repo] = map[string]bool{}
		}
		removeTags[s.Repo][s.Tag] = true
	}
	// Removing every tag of a repository removes the repository, as the seed did.
	for repo, tags := range removeTags {
		if len(tags) == len(m.inv.Repos[repo].Tags) {
			removeRepo[repo] = true
		}
	}
	return scope, removeRepo, removeTags
}

// removeRepository deletes everything of a repository named with -x, whatever its age:
// tags first, so that a crash leaves at worst a repository whose images are untagged.
func (p *Plan) removeRepository(r *inventory.Repo) {
	for name, t := range r.Tags {
		p.Deletions = append(p.Deletions, Deletion{Kind: Tag, Reason: Removed, Repo: r.Name, Tag: name, files: tagFiles(t)})
	}
	for d := range r.Revisions {
		p.Deletions = append(p.Deletions, Deletion{Kind: Revision, Reason: Removed, Repo: r.Name, Digest: d})
	}
	for d := range r.Layers {
		p.Deletions = append(p.Deletions, Deletion{Kind: LayerLink, Reason: Removed, Repo: r.Name, Digest: d})
	}
	for id, u := range r.Uploads {
		p.Deletions = append(p.Deletions, Deletion{Kind: Upload, Reason: Removed, Repo: r.Name, Upload: id, files: u.Files})
	}
	p.Deletions = append(p.Deletions, Deletion{Kind: Repository, Reason: Removed, Repo: r.Name})
}

// cleanRepository purges what the repository no longer needs and marks, in the
// global blob set, everything it keeps.
func (p *Plan) cleanRepository(m *marker, r *inventory.Repo, removeTags map[string]bool, blind bool) {
	keptTags := 0
	for name, t := range r.Tags {
		if removeTags[name] {
			p.Deletions = append(p.Deletions, Deletion{Kind: Tag, Reason: Removed, Repo: r.Name, Tag: name, files: tagFiles(t)})
			continue
		}
		keptTags++
		if !t.HasCurrent || r.Opaque != "" {
			continue // a tag without a readable current link keeps its whole history
		}
		for d, l := range t.Index {
			if d != t.Current && !m.fresh(l.ModTime) {
				p.Deletions = append(p.Deletions, Deletion{Kind: TagHistory, Reason: NotCurrent, Repo: r.Name, Tag: name, Digest: d})
			}
		}
	}

	marked, opaque := m.markRepository(r, removeTags)
	if opaque {
		m.keepWhole(r)
		p.KeptRevisions += len(r.Revisions)
		p.purgeUploads(m, r)
		return
	}
	keptRevisions := 0
	for d := range r.Revisions {
		if _, keep := marked[d]; keep {
			keptRevisions++
			continue
		}
		reason := Untagged
		if mf := m.inv.Manifests[d]; mf != nil && storage.IsNotExist(mf.Err) {
			reason = DanglingRevision
		}
		p.Deletions = append(p.Deletions, Deletion{Kind: Revision, Reason: reason, Repo: r.Name, Digest: d})
	}
	p.KeptRevisions += keptRevisions

	needed := m.blobsOf(marked)
	keptLayers := 0
	for d, l := range r.Layers {
		_, need := needed[d]
		_, exists := m.inv.Blobs[d]
		switch {
		case m.fresh(l.ModTime):
		case !exists && !blind:
			p.Deletions = append(p.Deletions, Deletion{Kind: LayerLink, Reason: DanglingLink, Repo: r.Name, Digest: d})
			continue
		case !need:
			p.Deletions = append(p.Deletions, Deletion{Kind: LayerLink, Reason: Unneeded, Repo: r.Name, Digest: d})
			continue
		}
		keptLayers++
		m.keepBlob[d] = struct{}{}
	}
	keptUploads := p.purgeUploads(m, r)
	if keptTags == 0 && keptRevisions == 0 && keptLayers == 0 && keptUploads == 0 && r.Unknown == 0 {
		p.Deletions = append(p.Deletions, Deletion{Kind: Repository, Reason: Emptied, Repo: r.Name})
	}
}

// purgeUploads deletes abandoned uploads and returns how many stay.
func (p *Plan) purgeUploads(m *marker, r *inventory.Repo) int {
	kept := 0
	age := max(m.pol.UploadAge, m.pol.Grace)
	for id, u := range r.Uploads {
		if u.StartedAt.IsZero() || m.pol.Now.Sub(u.StartedAt) < age {
			kept++
			continue
		}
		p.Deletions = append(p.Deletions, Deletion{Kind: Upload, Reason: Abandoned, Repo: r.Name, Upload: id, files: u.Files})
	}
	return kept
}

func tagFiles(t *inventory.Tag) []string {
	files := make([]string, 0, 1+len(t.Index))
	if t.HasCurrent || t.CurrentBad {
		files = append(files, "current/link")
	}
	for d := range t.Index {
		files = append(files, "index/sha256/"+d.Hex()+"/link")
	}
	sort.Strings(files)
	return files
}

func sortDeletions(ds []Deletion) {
	sort.Slice(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Repo != b.Repo {
			return a.Repo < b.Repo
		}
		if a.Tag != b.Tag {
			return a.Tag < b.Tag
		}
		if a.Upload != b.Upload {
			return a.Upload < b.Upload
		}
		return bytes.Compare(a.Digest[:], b.Digest[:]) < 0
	})
}
