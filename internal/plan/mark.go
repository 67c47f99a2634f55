package plan

import (
	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// marker computes what is kept: per repository the manifests, globally the blobs.
type marker struct {
	inv      *inventory.Inventory
	pol      Policy
	keepBlob inventory.IDSet
	// held is every manifest some repository links, for orphan signatures.
	held inventory.IDSet
	// Reused across repositories by retention.
	tagBuf    []policy.Tag
	decisions *policy.Decisions
}

type idSet = map[inventory.ID]struct{}

// fresh reports whether something of time t is within the grace period. An unknown
// time counts as fresh: the caller fills in the times of what it means to delete.
func (m *marker) fresh(t inventory.Time) bool {
	if m.pol.Grace <= 0 {
		return false
	}
	return t == 0 || m.pol.Now.Sub(t.Std()) < m.pol.Grace
}

// markRepository returns the manifests the repository keeps (record them with keep): what its tags point at
// (or, for a tag without a readable current link, ever pointed at), fresh revisions,
// and recursively the children of kept indexes and the referrers of kept subjects.
// opaque is true when the repository must be kept whole: it was already, or a kept
// manifest turns out to be one that cannot be understood.
func (m *marker) markRepository(r *inventory.Repo, removeTags map[string]bool) (marked idSet, opaque bool) {
	if r.Opaque != "" {
		return nil, true
	}
	referrers := map[inventory.ID][]inventory.ID{}
	for _, l := range r.Revisions {
		if mf, ok := m.inv.Manifest(l.ID); ok && mf.Err == nil && mf.HasSubject {
			referrers[mf.Subject] = append(referrers[mf.Subject], l.ID)
		}
	}
	marked = idSet{}
	var queue []inventory.ID
	for name, t := range r.Tags {
		switch {
		case removeTags[name]:
		case t.HasCurrent:
			queue = append(queue, t.Current)
		default:
			for _, l := range t.Index {
				queue = append(queue, l.ID)
			}
		}
	}
	for _, l := range r.Revisions {
		if m.fresh(l.ModTime) {
			queue = append(queue, l.ID)
		}
	}
	for len(queue) > 0 {
		id := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, seen := marked[id]; seen {
			continue
		}
		marked[id] = struct{}{}
		if mf, ok := m.inv.Manifest(id); ok {
			if mf.Err != nil && !storage.IsNotExist(mf.Err) {
				return nil, true
			}
			queue = append(queue, mf.Children...)
		}
		queue = append(queue, referrers[id]...)
	}
	return marked, false
}

// keep records, in the global blob set, the marked manifests and what they reference.
func (m *marker) keep(marked idSet) {
	for id := range marked {
		m.keepBlob.Add(id)
		if mf, ok := m.inv.Manifest(id); ok {
			for _, b := range mf.Blobs {
				m.keepBlob.Add(b)
			}
		}
	}
}

// blobsOf is every blob the marked manifests reference, themselves included.
func (m *marker) blobsOf(marked idSet) idSet {
	needed := make(idSet, len(marked)*4)
	for id := range marked {
		needed[id] = struct{}{}
		if mf, ok := m.inv.Manifest(id); ok {
			for _, b := range mf.Blobs {
				needed[b] = struct{}{}
			}
		}
	}
	return needed
}

// keepWhole keeps everything a repository links and everything that references:
// for repositories outside the selection and those that cannot be understood.
func (m *marker) keepWhole(r *inventory.Repo) {
	m.inv.Holds(r, func(id inventory.ID, mf inventory.Manifest, _ bool) {
		m.keepBlob.Add(id)
		for _, b := range mf.Blobs {
			m.keepBlob.Add(b)
		}
	})
	for _, l := range r.Layers {
		m.keepBlob.Add(l.ID)
	}
}
