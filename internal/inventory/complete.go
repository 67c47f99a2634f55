package inventory

import (
	"context"
	"iter"
	"path"
	"sync"

	"github.com/clean-registry/clean-registry/internal/layout"
	"github.com/clean-registry/clean-registry/internal/storage"
	"golang.org/x/sync/errgroup"
)

// Ref names one link or blob of the inventory whose size or time is wanted.
type Ref struct {
	Kind   layout.Kind // KindBlobData, KindLayerLink, KindRevisionLink or KindTagIndexLink
	Repo   string
	Tag    string
	Digest layout.Digest
}

func (r Ref) path() string {
	switch r.Kind {
	case layout.KindBlobData:
		return layout.BlobData(r.Digest)
	case layout.KindLayerLink:
		return layout.LayerDir(r.Repo, r.Digest) + "/" + layout.Link
	case layout.KindRevisionLink:
		return layout.RevisionDir(r.Repo, r.Digest) + "/" + layout.Link
	case layout.KindTagIndexLink:
		return layout.TagIndexDir(r.Repo, r.Tag, r.Digest) + "/" + layout.Link
	}
	return ""
}

// Complete stats, in parallel, the refs whose time (or, for blobs, size) the listing
// did not tell, and records the answers. A filesystem walk does not stat, so only what
// a plan means to delete costs a stat. A file gone meanwhile keeps an unknown time,
// which a plan with a grace period treats as fresh. refs is consumed as it is stated,
// and each answer recorded at once: a plan's candidates are never held twice.
func (inv *Inventory) Complete(ctx context.Context, b storage.Backend, refs iter.Seq[Ref], jobs int) error {
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
			p := r.path()
			f, err := b.Stat(gctx, p)
			if storage.IsNotExist(err) && r.Kind != layout.KindBlobData {
				// A link directory without its link: its own time tells its age.
				f, err = b.Stat(gctx, path.Dir(p))
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
	switch r.Kind {
	case layout.KindBlobData:
		b, ok := inv.Blobs[r.Digest]
		return !ok || (b.Size >= 0 && b.ModTime != 0)
	case layout.KindLayerLink:
		return inv.Repos[r.Repo].Layers[r.Digest].ModTime != 0
	case layout.KindRevisionLink:
		return inv.Repos[r.Repo].Revisions[r.Digest].ModTime != 0
	case layout.KindTagIndexLink:
		return inv.Repos[r.Repo].Tags[r.Tag].Index[r.Digest].ModTime != 0
	}
	return true
}

func (inv *Inventory) record(r Ref, f storage.File) {
	t := ToTime(f.ModTime)
	switch r.Kind {
	case layout.KindBlobData:
		b := inv.Blobs[r.Digest]
		if b.Size < 0 {
			b.Size = f.Size
		}
		if b.ModTime == 0 {
			b.ModTime = t
		}
		inv.Blobs[r.Digest] = b
	case layout.KindLayerLink:
		inv.Repos[r.Repo].Layers[r.Digest] = Link{ModTime: t}
	case layout.KindRevisionLink:
		inv.Repos[r.Repo].Revisions[r.Digest] = Link{ModTime: t}
	case layout.KindTagIndexLink:
		inv.Repos[r.Repo].Tags[r.Tag].Index[r.Digest] = Link{ModTime: t}
	}
}
