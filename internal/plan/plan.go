package plan

import (
	"fmt"
	"iter"
	"sort"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Selector names a repository, or one tag of it.
type Selector = layout.Selector

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
	// Retention deletes the tags its rules select and do not keep; nil: no tag is
	// deleted but by Remove. Tags pushed within Grace are kept all the same.
	Retention *policy.Policy
	// DeleteOrphanSignatures deletes signature tags whose subject no repository
	// holds (by default only those of manifests the run itself deletes go).
	DeleteOrphanSignatures bool
}

// Plan is what a run deletes, in execution order, and why. It holds a compact record
// per deletion (16 bytes; names and digests by index) and hands out Deletions built
// from it: a plan of millions stays small.
type Plan struct {
	phases  [Repository + 1]entries // by kind: each phase in execution order
	digests inventory.Digests
	repos   []string        // sorted; entry.repo indexes it
	extras  []extra         // names and files of tag and upload deletions; entry.extra-1 indexes it
	gone    inventory.IDSet // blobs the plan deletes

	// Failures are per-repository errors of the selection (no such repository or tag).
	Failures []string
	// Notes say what the plan deliberately leaves alone, e.g. why no blob is swept.
	Notes []string
	// Kept counts what stays.
	KeptRevisions, KeptBlobs int
	// KeptBytes weighs the kept blobs: their sizes where the storage told them (object
	// stores list them; manifests were read), else the sizes their manifests declare
	// (a filesystem walk does not stat what it keeps). KeptUnsized counts the kept
	// blobs that neither tells (referenced only by schema1 or unreadable manifests).
	KeptBytes   int64
	KeptUnsized int
	// KeptTags counts, per repository, the tags that stay.
	KeptTags map[string]int
}

// Len is the number of deletions.
func (p *Plan) Len() int {
	n := 0
	for i := range p.phases {
		n += p.phases[i].n
	}
	return n
}

// Phase returns the range of the deletions of kind k: one phase, applied whole before
// the next kind's.
func (p *Plan) Phase(k Kind) (start, end int) {
	for i := range k {
		start += p.phases[i].n
	}
	return start, start + p.phases[k].n
}

// At returns deletion i, in execution order.
func (p *Plan) At(i int) Deletion {
	k := 0
	for ; i >= p.phases[k].n; k++ {
		i -= p.phases[k].n
	}
	e := p.phases[k].at(i)
	d := Deletion{Kind: e.kind, Reason: e.reason}
	if e.kind != Blob {
		d.Repo = p.repos[e.repo]
	}
	if e.extra > 0 {
		x := p.extras[e.extra-1]
		d.files, d.Detail = x.files, x.detail
		if e.kind == Upload {
			d.Upload = x.name
		} else {
			d.Tag = x.name
		}
	}
	switch e.kind {
	case Blob:
		d.Digest, d.Bytes = p.digests.Digest(e.id), p.digests.Size(e.id)
	case TagHistory, Revision, LayerLink:
		d.Digest = p.digests.Digest(e.id)
		if p.gone.Has(e.id) {
			d.LinkedBytes = max(p.digests.Size(e.id), 0)
		}
	}
	return d
}

// All yields every deletion in execution order.
func (p *Plan) All() iter.Seq[Deletion] {
	return func(yield func(Deletion) bool) {
		for i := range p.Len() {
			if !yield(p.At(i)) {
				return
			}
		}
	}
}

// Make computes the plan. It is pure: the same inventory and policy give the same plan.
func Make(inv *inventory.Inventory, pol Policy) *Plan {
	p := &Plan{KeptTags: map[string]int{}}
	m := marker{inv: inv, pol: pol, keepBlob: inv.NewIDSet()}
	if pol.DeleteOrphanSignatures {
		m.held = inv.NewIDSet()
		for _, r := range inv.Repos {
			for _, l := range r.Revisions {
				m.held.Add(l.ID)
			}
		}
	}
	scope, removeRepo, removeTags := m.selection(p)

	p.repos = make([]string, 0, len(inv.Repos))
	for name := range inv.Repos {
		p.repos = append(p.repos, name)
	}
	sort.Strings(p.repos)
	// Sorting compares digests: the table must be there from the start.
	p.digests = inv.Digests()

	blind := len(inv.Blind) > 0
	for i, name := range p.repos {
		r := inv.Repos[name]
		var from [len(p.phases)]int
		for k := range p.phases {
			from[k] = p.phases[k].n
		}
		switch {
		case removeRepo[name]:
			p.removeRepository(&m, uint32(i), r)
		case scope != nil && !scope[name]:
			m.keepWhole(r)
			p.KeptTags[name] = len(r.Tags)
		default:
			p.cleanRepository(&m, uint32(i), r, removeTags[name], blind)
		}
		// Repositories come in name order; within one, each phase's part is sorted.
		for k := range p.phases {
			p.sortTail(&p.phases[k], from[k])
		}
	}

	p.gone = inventory.IDSet{}
	keep := func(b *inventory.Blob) {
		if size, known := b.Weight(); known {
			p.KeptBytes += size
		} else {
			p.KeptUnsized++
		}
	}
	if blind {
		p.Notes = append(p.Notes, fmt.Sprintf("no blob is deleted: the scan cannot see behind %d entries (first: %s)",
			len(inv.Blind), inv.Blind[0]))
		for i := range inv.Blobs {
			keep(&inv.Blobs[i])
		}
	} else {
		p.gone = inv.NewIDSet()
		for i := range inv.Blobs {
			id, b := inventory.ID(i), &inv.Blobs[i]
			if m.keepBlob.Has(id) || m.fresh(b.ModTime) {
				keep(b)
				continue
			}
			p.gone.Add(id)
			p.phases[Blob].add(entry{kind: Blob, reason: Unreferenced, id: id}) // in digest order
		}
	}
	p.KeptBlobs = len(inv.Blobs) - p.phases[Blob].n
	return p
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
				if m.pol.Remove {
					// The repository is still cleaned as removing the tag would have
					// cleaned it: a run killed after deleting the tag left its image
					// untagged, and the same command run again must finish the job.
					scope[s.Repo] = true
				}
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

func (p *Plan) add(kind Kind, reason Reason, repo uint32, id inventory.ID) {
	p.phases[kind].add(entry{kind: kind, reason: reason, repo: repo, id: id})
}

func (p *Plan) addNamed(kind Kind, reason Reason, repo uint32, id inventory.ID, name string, files []string) {
	p.addDetailed(kind, reason, repo, id, name, files, "")
}

func (p *Plan) addDetailed(kind Kind, reason Reason, repo uint32, id inventory.ID, name string, files []string, detail string) {
	p.extras = append(p.extras, extra{name: name, files: files, detail: detail})
	p.phases[kind].add(entry{kind: kind, reason: reason, repo: repo, id: id, extra: uint32(len(p.extras))})
}

// removeRepository deletes everything of a repository named with -x, whatever its age:
// tags first, so that a crash leaves at worst a repository whose images are untagged.
func (p *Plan) removeRepository(m *marker, ri uint32, r *inventory.Repo) {
	for name, t := range r.Tags {
		p.addNamed(Tag, Removed, ri, 0, name, m.tagFiles(t))
	}
	for _, l := range r.Revisions {
		p.add(Revision, Removed, ri, l.ID)
	}
	for _, l := range r.Layers {
		p.add(LayerLink, Removed, ri, l.ID)
	}
	for id, u := range r.Uploads {
		p.addNamed(Upload, Removed, ri, 0, id, u.Files)
	}
	p.add(Repository, Removed, ri, 0)
}

// cleanRepository purges what the repository no longer needs and marks, in the
// global blob set, everything it keeps.
func (p *Plan) cleanRepository(m *marker, ri uint32, r *inventory.Repo, removeTags map[string]bool, blind bool) {
	// Tags go first: on request (-x), then by retention; what they leave untagged
	// follows through the marking below, exactly as for an untagged purge.
	gone := make(map[string]bool, len(removeTags))
	for name := range removeTags {
		gone[name] = true
	}
	for name, t := range r.Tags {
		// Its time is its directory's (Complete): a tag being created right now
		// looks the same for an instant.
		if !gone[name] && remnant(t) && !m.fresh(t.CurrentModTime) {
			gone[name] = true
			p.addNamed(Tag, EmptyTag, ri, 0, name, nil)
		}
	}
	for name, why := range m.retention(r, gone) {
		gone[name] = true
		p.addDetailed(Tag, Retention, ri, 0, name, m.tagFiles(r.Tags[name]), why)
	}
	for name := range removeTags {
		p.addNamed(Tag, Removed, ri, 0, name, m.tagFiles(r.Tags[name]))
	}

	marked, opaque := m.markRepository(r, gone)
	if !opaque {
		// A signature tag follows the manifest it signs: once the run deletes that
		// manifest, the tag goes, and with it the signature manifest, which may
		// itself be signed: repeat until nothing more goes.
		for {
			sigs := m.signaturesGone(r, gone, marked)
			if len(sigs) == 0 {
				break
			}
			for name, reason := range sigs {
				gone[name] = true
				p.addNamed(Tag, reason, ri, 0, name, m.tagFiles(r.Tags[name]))
			}
			marked, opaque = m.markRepository(r, gone)
		}
	}

	keptTags := 0
	for name, t := range r.Tags {
		if gone[name] {
			continue
		}
		keptTags++
		if !t.HasCurrent || r.Opaque != "" {
			continue // a tag without a readable current link keeps its whole history
		}
		for _, l := range t.Index {
			if l.ID != t.Current && !m.fresh(l.ModTime) {
				p.addNamed(TagHistory, NotCurrent, ri, l.ID, name, nil)
			}
		}
	}
	p.KeptTags[r.Name] = keptTags
	if opaque {
		m.keepWhole(r)
		p.KeptRevisions += len(r.Revisions)
		p.purgeUploads(m, ri, r)
		return
	}
	m.keep(marked)
	keptRevisions := 0
	for _, l := range r.Revisions {
		if _, keep := marked[l.ID]; keep {
			keptRevisions++
			continue
		}
		reason := Untagged
		if mf, ok := m.inv.Manifest(l.ID); ok && storage.IsNotExist(mf.Err) {
			reason = DanglingRevision
		}
		p.add(Revision, reason, ri, l.ID)
	}
	p.KeptRevisions += keptRevisions

	needed := m.blobsOf(marked)
	keptLayers := 0
	for _, l := range r.Layers {
		_, need := needed[l.ID]
		switch {
		case m.fresh(l.ModTime):
		case !m.inv.IsBlob(l.ID) && !blind:
			p.add(LayerLink, DanglingLink, ri, l.ID)
			continue
		case !need:
			p.add(LayerLink, Unneeded, ri, l.ID)
			continue
		}
		keptLayers++
		m.keepBlob.Add(l.ID)
	}
	keptUploads := p.purgeUploads(m, ri, r)
	if keptTags == 0 && keptRevisions == 0 && keptLayers == 0 && keptUploads == 0 && r.Unknown == 0 {
		p.add(Repository, Emptied, ri, 0)
	}
}

// purgeUploads deletes abandoned uploads and returns how many stay.
func (p *Plan) purgeUploads(m *marker, ri uint32, r *inventory.Repo) int {
	kept := 0
	age := max(m.pol.UploadAge, m.pol.Grace)
	for id, u := range r.Uploads {
		if u.StartedAt.IsZero() || m.pol.Now.Sub(u.StartedAt) < age {
			kept++
			continue
		}
		p.addNamed(Upload, Abandoned, ri, 0, id, u.Files)
	}
	return kept
}

// tagFiles lists a tag's files in the order they are deleted: its history first,
// its current link last, so that a deletion interrupted inside the tag leaves a tag
// that still resolves, with its push time, and a rerun decides on it as before.
func (m *marker) tagFiles(t *inventory.Tag) []string {
	files := make([]string, 0, 1+len(t.Index))
	for _, l := range t.Index {
		files = append(files, layout.TagIndexFile(m.inv.Digest(l.ID)))
	}
	sort.Strings(files)
	if t.HasCurrent || t.CurrentBad {
		files = append(files, layout.TagCurrentFile)
	}
	return files
}

// remnant reports whether a tag is what an interrupted deletion leaves: directories
// without a current link or any history link. It resolves to nothing and keeps nothing.
func remnant(t *inventory.Tag) bool {
	return !t.HasCurrent && !t.CurrentBad && len(t.Index) == t.IndexMissing && !t.IndexHidden
}
