// Package usage says where a registry's space goes: per repository the bytes of
// every blob its manifests reference, those no other repository holds on to (what
// removing the repository with -x frees) and those it shares. It is pure: the
// figures come from an inventory whose blob sizes are known.
package usage

import (
	"cmp"
	"fmt"
	"slices"
	"sort"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Repo is one repository's figures.
type Repo struct {
	Name string `json:"repository"`
	// Tags counts its tags; Manifests its revisions (tagged or not).
	Tags      int `json:"tags"`
	Manifests int `json:"manifests"`
	// Blobs and Bytes are the distinct stored blobs its manifests reference, each
	// once: the manifests themselves, index children, configs, layers.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	// UniqueBlobs and UniqueBytes are those no other repository references or
	// links: what "clean-registry -x NAME" frees (with the garbage any run frees).
	UniqueBlobs int   `json:"unique_blobs"`
	UniqueBytes int64 `json:"unique_bytes"`
	// SharedBytes is Bytes - UniqueBytes: they stay for the other repositories.
	SharedBytes int64 `json:"shared_bytes"`
	// LowerBound, when set, says why the figures may fall short: a manifest that
	// cannot be understood (its references are unknown) or blobs whose size could
	// not be read.
	LowerBound string `json:"lower_bound,omitempty"`
}

// Totals are the storage's figures.
type Totals struct {
	Repositories int `json:"repositories"`
	// Blobs and Bytes are every stored (sha256) blob.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	// Referenced are the blobs some repository's manifests reference (or, for a
	// repository that cannot be understood, link); Unreferenced the rest: garbage
	// that a plain run deletes once older than the grace period.
	ReferencedBlobs   int   `json:"referenced_blobs"`
	ReferencedBytes   int64 `json:"referenced_bytes"`
	UnreferencedBlobs int   `json:"unreferenced_blobs"`
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
	// UnknownSizes counts blobs whose size could not be read (gone meanwhile):
	// counted as 0 bytes.
	UnknownSizes int `json:"unknown_sizes,omitempty"`
}

// Usage is the whole answer.
type Usage struct {
	// Repos are sorted by unique bytes, most first (then total bytes, then name).
	Repos  []Repo `json:"repositories"`
	Totals Totals `json:"totals"`
	// Notes say what the figures leave out.
	Notes []string `json:"notes,omitempty"`
}

// Owner markers of a blob: referenced by no repository yet, or by several.
const (
	noOwner    = -1
	manyOwners = -2
)

// Compute works out the figures of inv. Blob sizes must be filled in (a negative
// size counts as unknown).
//
// A blob is another repository's when that repository's manifests reference it,
// or when it links the blob as a layer: -x of one repository keeps every other
// repository whole, links included, so such a blob is not freed.
func Compute(inv *inventory.Inventory) *Usage {
	names := make([]string, 0, len(inv.Repos))
	for name := range inv.Repos {
		names = append(names, name)
	}
	sort.Strings(names)

	n := inv.NumBlobs()
	owner := make([]int32, n) // one int32 per blob: which repository holds it
	for i := range owner {
		owner[i] = noOwner
	}
	hold := func(id inventory.ID, ri int32) {
		switch o := owner[id]; {
		case o == noOwner:
			owner[id] = ri
		case o != ri:
			owner[id] = manyOwners
		}
	}
	refs := make([][]inventory.ID, len(names)) // per repository, its stored blobs
	why := make([]string, len(names))
	seen := map[inventory.ID]struct{}{}
	for i, name := range names {
		r := inv.Repos[name]
		clear(seen)
		unreadable := reach(inv, r, seen)
		why[i] = r.Opaque
		if why[i] == "" && unreadable != "" {
			why[i] = unreadable
		}
		if why[i] != "" {
			// Kept whole by every run: its links stand for what its unreadable
			// manifests may reference.
			for _, l := range r.Layers {
				seen[l.ID] = struct{}{}
			}
		}
		ids := make([]inventory.ID, 0, len(seen))
		for id := range seen {
			if inv.IsBlob(id) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		refs[i] = ids
		for _, id := range ids {
			hold(id, int32(i))
		}
		for _, l := range r.Layers {
			if inv.IsBlob(l.ID) {
				hold(l.ID, int32(i))
			}
		}
	}

	u := &Usage{Repos: make([]Repo, len(names))}
	t := &u.Totals
	t.Repositories = len(names)
	referenced := inv.NewIDSet()
	for i, name := range names {
		r := inv.Repos[name]
		rep := Repo{Name: name, Tags: len(r.Tags), Manifests: len(r.Revisions), Blobs: len(refs[i])}
		unknown := 0
		for _, id := range refs[i] {
			referenced.Add(id)
			size := inv.Blobs[id].Size
			if size < 0 {
				unknown++
				size = 0
			}
			rep.Bytes += size
			if owner[id] == int32(i) {
				rep.UniqueBlobs++
				rep.UniqueBytes += size
			}
		}
		rep.SharedBytes = rep.Bytes - rep.UniqueBytes
		switch {
		case why[i] != "":
			rep.LowerBound = why[i]
		case unknown > 0:
			rep.LowerBound = fmt.Sprintf("the size of %d blobs could not be read", unknown)
		}
		u.Repos[i] = rep
	}
	for i, b := range inv.Blobs {
		size := b.Size
		if size < 0 {
			t.UnknownSizes++
			size = 0
		}
		t.Blobs++
		t.Bytes += size
		if referenced.Has(inventory.ID(i)) {
			t.ReferencedBlobs++
			t.ReferencedBytes += size
		} else {
			t.UnreferencedBlobs++
			t.UnreferencedBytes += size
		}
	}
	slices.SortStableFunc(u.Repos, func(a, b Repo) int {
		if c := cmp.Compare(b.UniqueBytes, a.UniqueBytes); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})

	if len(inv.Blind) > 0 {
		u.Notes = append(u.Notes, fmt.Sprintf("the scan cannot see behind %d entries (first: %s): while they are there no run "+
			"deletes a blob, so -x frees none of the unique bytes", len(inv.Blind), inv.Blind[0]))
	}
	if inv.OtherBlobs > 0 {
		u.Notes = append(u.Notes, fmt.Sprintf("%d blobs of other digest algorithms are not counted", inv.OtherBlobs))
	}
	if t.UnknownSizes > 0 {
		u.Notes = append(u.Notes, fmt.Sprintf("the size of %d blobs could not be read (gone meanwhile?): counted as 0", t.UnknownSizes))
	}
	return u
}

// reach adds to seen every digest r's manifests reference: the manifests it holds
// whole (inventory.Holds: as a run that keeps the repository whole does), their
// configs and layers. It returns why a manifest among them cannot be understood,
// if one cannot (a missing one is no reason: it references nothing and takes no
// space).
func reach(inv *inventory.Inventory, r *inventory.Repo, seen map[inventory.ID]struct{}) (unreadable string) {
	inv.Holds(r, func(id inventory.ID, m inventory.Manifest, ok bool) {
		seen[id] = struct{}{}
		if !ok {
			return
		}
		if m.Err != nil {
			if unreadable == "" && !storage.IsNotExist(m.Err) {
				unreadable = "manifest " + inv.Digest(id).String() + " cannot be understood"
			}
			return
		}
		for _, b := range m.Blobs {
			seen[b] = struct{}{}
		}
	})
	return unreadable
}
