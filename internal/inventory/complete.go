package inventory

import (
	"context"
	"iter"
	"path"
	"sync"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"golang.org/x/sync/errgroup"
)

// Ref names one link or blob of the inventory whose size or time is wanted.
type Ref struct {
	Kind layout.Kind // KindBlobData, KindLayerLink, KindRevisionLink, KindTagIndexLink or KindTagCurrentLink
	Repo string
	Tag  string
	ID   ID
}

func (inv *Inventory) path(r Ref) string {
	var d layout.Digest
	if r.Kind != layout.KindTagCurrentLink {
		d = inv.Digest(r.ID)
	}
	switch r.Kind {
	case layout.KindBlobData:
		return layout.BlobData(d)
	case layout.KindLayerLink:
		return layout.LayerLink(r.Repo, d)
	case layout.KindRevisionLink:
		return layout.RevisionLink(r.Repo, d)
	case layout.KindTagIndexLink:
		return layout.TagIndexLink(r.Repo, r.Tag, d)
	case layout.KindTagCurrentLink:
		return layout.TagCurrentLink(r.Repo, r.Tag)
	}
	return ""
}

// Complete stats, in parallel, the refs whose time (or, for blobs, size) the listing
// did not tell, and records the answers. A filesystem walk does not stat, so only what
// a plan means to delete costs a stat. A file gone meanwhile keeps an unknown time,
// which a plan with a grace period treats as fresh. refs is consumed as it is stated,
// and each answer recorded at once: a plan's candidates are never held twice.
func (inv *Inventory) Complete(ctx context.Context, b storage.Backend, refs iter.Seq[Ref], jobs int) error {
	return inv.CompleteTracked(ctx, b, refs, jobs, nil)
}

// CompleteTracked is Complete counting, in st (nil: none), each ref it stats.
func (inv *Inventory) CompleteTracked(ctx context.Context, b storage.Backend, refs iter.Seq[Ref], jobs int, st *progress.Stage) error {
	var mu sync.Mutex // guards inv's maps against the recording goroutines
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for r := range refs {
		mu.Lock()
		known := inv.known(r)
		mu.Unlock()
		if known {
			continue
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			defer st.Add(1)
			p := inv.path(r)
			f, err := b.Stat(gctx, p)
			if storage.IsNotExist(err) && r.Kind != layout.KindBlobData {
				// A link directory without its link: its own time tells its age.
				f, err = b.Stat(gctx, path.Dir(p))
				if storage.IsNotExist(err) && r.Kind == layout.KindTagCurrentLink {
					// A tag's remnant without even its current directory: the tag's.
					f, err = b.Stat(gctx, layout.TagDir(r.Repo, r.Tag))
				}
				f.Size = -1
			}
			if err != nil {
				if !storage.IsNotExist(err) {
					return err
				}
				f = storage.File{Size: -1}
			}
			mu.Lock()
			inv.record(r, f)
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

func (inv *Inventory) known(r Ref) bool {
	if r.Kind == layout.KindBlobData {
		if !inv.IsBlob(r.ID) {
			return true
		}
		b := inv.Blobs[r.ID]
		return b.Size >= 0 && b.ModTime != 0
	}
	if r.Kind == layout.KindTagCurrentLink {
		t := inv.tag(r)
		return t == nil || t.CurrentModTime != 0
	}
	l := inv.link(r)
	return l == nil || l.ModTime != 0
}

// tag finds the tag a ref names, or nil.
func (inv *Inventory) tag(r Ref) *Tag {
	if repo := inv.Repos[r.Repo]; repo != nil {
		return repo.Tags[r.Tag]
	}
	return nil
}

// link finds the link a ref names, or nil.
func (inv *Inventory) link(r Ref) *Link {
	repo := inv.Repos[r.Repo]
	if repo == nil {
		return nil
	}
	switch r.Kind {
	case layout.KindLayerLink:
		return repo.Layers.Find(r.ID)
	case layout.KindRevisionLink:
		return repo.Revisions.Find(r.ID)
	case layout.KindTagIndexLink:
		if t := repo.Tags[r.Tag]; t != nil {
			return t.Index.Find(r.ID)
		}
	}
	return nil
}

func (inv *Inventory) record(r Ref, f storage.File) {
	t := ToTime(f.ModTime)
	if r.Kind == layout.KindBlobData {
		b := &inv.Blobs[r.ID]
		if b.Size < 0 {
			b.Size = f.Size
		}
		if b.ModTime == 0 {
			b.ModTime = t
		}
		return
	}
	if r.Kind == layout.KindTagCurrentLink {
		if tg := inv.tag(r); tg != nil {
			tg.CurrentModTime = t
		}
		return
	}
	if l := inv.link(r); l != nil {
		l.ModTime = t
	}
}
