package plan

import (
	"github.com/clean-registry/clean-registry/internal/inventory"
	"github.com/clean-registry/clean-registry/internal/layout"
	"github.com/clean-registry/clean-registry/internal/storage"
)

// marker computes what is kept: per repository the manifests, globally the blobs.
type marker struct {
	inv      *inventory.Inventory
	pol      Policy
	keepBlob map[layout.Digest]struct{}
}

// fresh reports whether something of time t is within the grace period. An unknown
// time counts as fresh: the caller fills in the times of what it means to delete.
func (m *marker) fresh(t inventory.Time) bool {
	if m.pol.Grace <= 0 {
		return false
	}
	return t == 0 || m.pol.Now.Sub(t.Std()) < m.pol.Grace
}

// markRepository returns the manifests the repository keeps: what its tags point at
// (or, for a tag without a readable current link, ever pointed at), fresh revisions,
// and recursively the children of kept indexes and the referrers of kept subjects.
// opaque is true when the repository must be kept whole: it was already, or a kept
// manifest turns out to be one that cannot be understood.
func (m *marker) markRepository(r *inventory.Repo, removeTags map[string]bool) (marked map[layout.Digest]struct{}, opaque bool) {
	if r.Opaque != "" {
		return nil, true
	}
	referrers := map[layout.Digest][]layout.Digest{}
	for d := range r.Revisions {
		if mf := m.inv.Manifests[d]; mf != nil && mf.Manifest != nil && !mf.Subject.IsZero() {
			referrers[mf.Subject] = append(referrers[mf.Subject], d)
		}
	}
	marked = map[layout.Digest]struct{}{}
	var queue []layout.Digest
	for name, t := range r.Tags {
		switch {
		case removeTags[name]:
		case t.HasCurrent:
			queue = append(queue, t.Current)
		default:
			for d := range t.Index {
				queue = append(queue, d)
			}
		}
	}
	for d, l := range r.Revisions {
		if m.fresh(l.ModTime) {
			queue = append(queue, d)
		}
	}
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, seen := marked[d]; seen {
			continue
		}
		marked[d] = struct{}{}
		if mf := m.inv.Manifests[d]; mf != nil {
			if mf.Err != nil && !storage.IsNotExist(mf.Err) {
				return nil, true
			}
			if mf.Manifest != nil {
				queue = append(queue, mf.Children...)
			}
		}
		queue = append(queue, referrers[d]...)
	}
	for d := range marked {
		m.keepBlob[d] = struct{}{}
		if mf := m.inv.Manifests[d]; mf != nil && mf.Manifest != nil {
			for _, b := range mf.Blobs {
				m.keepBlob[b] = struct{}{}
			}
		}
	}
	return marked, false
}

// blobsOf is every blob the marked manifests reference, themselves included.
func (m *marker) blobsOf(marked map[layout.Digest]struct{}) map[layout.Digest]struct{} {
	needed := make(map[layout.Digest]struct{}, len(marked)*4)
	for d := range marked {
		needed[d] = struct{}{}
		if mf := m.inv.Manifests[d]; mf != nil && mf.Manifest != nil {
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
	var queue []layout.Digest
	for d := range r.Revisions {
		queue = append(queue, d)
	}
	for _, t := range r.Tags {
		if t.HasCurrent {
			queue = append(queue, t.Current)
		}
		for d := range t.Index {
			queue = append(queue, d)
		}
	}
	seen := map[layout.Digest]struct{}{}
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, ok := seen[d]; ok {
			continue
		}
		seen[d] = struct{}{}
		m.keepBlob[d] = struct{}{}
		if mf := m.inv.Manifests[d]; mf != nil && mf.Manifest != nil {
			for _, b := range mf.Blobs {
				m.keepBlob[b] = struct{}{}
			}
			queue = append(queue, mf.Children...)
		}
	}
	for d := range r.Layers {
		m.keepBlob[d] = struct{}{}
	}
}
