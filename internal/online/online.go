package online

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Result is what a verification did.
type Result struct {
	// Files counts what the quarantine held.
	Files int
	// Restored are the files put back, blobs first.
	Restored []Item
	// Blind is set when the verification met what it cannot read or understand and
	// put everything back.
	Blind error
}

// Verify puts back from q what the live registry needs (see needed). tr, when not
// nil, is told how far it got: the listing of the live registry, the times read
// (which a filesystem's listing does not give), what is put back (see restore).
func Verify(ctx context.Context, b storage.Backend, q *Quarantine, jobs int, tr *progress.Tracker) (Result, error) {
	res := Result{Files: len(q.Files)}
	if len(q.Files) == 0 {
		return res, nil
	}
	mover, ok := b.(storage.Mover)
	if !ok {
		return res, fmt.Errorf("%s: this storage cannot move files back from the quarantine", b)
	}
	c := newContents(q.Files)
	var since time.Time // no journal: everything live counts as new
	if q.Journal != nil {
		since = q.Journal.Since
	}
	st := tr.Begin("verifying the quarantine: listing", "files", -1)
	defer func() { st.End() }()
	lv, err := scanLive(ctx, b, c, st)
	if err != nil {
		return res, err
	}
	st = tr.Begin("verifying the quarantine: reading times", "links", 0) // found as it goes
	if err := lv.readTimes(ctx, b, since, jobs, st); err != nil {
		return res, err
	}
	written, err := writtenSinceMoved(ctx, b, q.Run, c, since, jobs, st)
	if err != nil {
		return res, err
	}
	target := func(rt repoTag) (layout.Digest, error) { return readTag(ctx, b, "", rt) }
	movedTarget := func(rt repoTag) (layout.Digest, error) { return readTag(ctx, b, q.Run, rt) }
	read := func(d layout.Digest) (*manifest.Manifest, error) {
		data, err := b.ReadFile(ctx, layout.BlobData(d), layout.MaxManifestSize)
		if storage.IsNotExist(err) {
			data, err = b.ReadFile(ctx, layout.Quarantined(q.Run, layout.BlobData(d)), layout.MaxManifestSize)
		}
		if err != nil {
			return nil, err
		}
		return manifest.Parse(data)
	}
	items, err := needed(c, lv, since, written, target, movedTarget, read)
	if errors.Is(err, ErrBlind) {
		res.Blind = err
		items = everything(q, err.Error())
	} else if err != nil {
		return res, err
	}
	st.End()
	if err := restore(ctx, mover, q.Run, items, tr); err != nil {
		return res, err
	}
	res.Restored = items
	return res, nil
}

// readTag reads a tag's current link. The registry rewrites the file in place: a
// read that meets it half written is tried again before it counts as garbled.
func readTag(ctx context.Context, b storage.Backend, quarantine string, rt repoTag) (layout.Digest, error) {
	p := layout.TagCurrentLink(rt.repo, rt.tag)
	if quarantine != "" {
		p = layout.Quarantined(quarantine, p)
	}
	var err error
	for try := 0; try < 5; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return layout.Digest{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		var data []byte
		data, err = b.ReadFile(ctx, p, layout.MaxLinkSize)
		if err != nil {
			if storage.IsNotExist(err) {
				return layout.Digest{}, err
			}
			continue
		}
		var d layout.Digest
		if d, err = layout.ParseLink(data); err == nil {
			return d, nil
		}
	}
	return layout.Digest{}, err
}

// writtenSinceMoved returns the tags the run moved whose current link was written
// since it began: a push that completed between the scan and the move (e.g. into a
// tag directory the scan found still empty, which the run deleted as a remnant), so
// the registry acknowledged it and the run took it away. Only movers that keep
// times can tell; on the others such a tag goes with the run, as documented. st
// counts the links stat'ed.
func writtenSinceMoved(ctx context.Context, b storage.Backend, run string, c *contents, since time.Time, jobs int, st *progress.Stage) (map[repoTag]bool, error) {
	tm, ok := b.(storage.TimeKeepingMover)
	if !ok || !tm.MovesKeepTimes() || since.IsZero() || len(c.tags) == 0 {
		return nil, nil
	}
	tags := make([]repoTag, 0, len(c.tags))
	paths := make([]string, 0, len(c.tags))
	for rt := range c.tags {
		tags = append(tags, rt)
		paths = append(paths, layout.Quarantined(run, layout.TagCurrentLink(rt.repo, rt.tag)))
	}
	times, gone, err := statAll(ctx, b, paths, jobs, st)
	if err != nil {
		return nil, err
	}
	written := map[repoTag]bool{}
	for i, rt := range tags {
		if !gone[i] && !times[i].Before(since) {
			written[rt] = true
		}
	}
	return written, nil
}

// everything lists every file of q as an item to put back.
func everything(q *Quarantine, why string) []Item {
	items := make([]Item, 0, len(q.Files))
	for _, f := range q.Files {
		info := layout.Classify(f.Path)
		items = append(items, Item{Kind: info.Kind, Repo: info.Repo, Tag: info.Tag, Digest: info.Digest, path: f.Path, Why: why})
	}
	return items
}

// restore moves items back, in the order that keeps every image whole at each
// step: blobs, then the links naming them, tags last; tr's stage "putting back"
// counts them, batch by batch.
func restore(ctx context.Context, m storage.Mover, run string, items []Item, tr *progress.Tracker) error {
	if len(items) == 0 {
		return nil
	}
	st := tr.Begin("putting back", "files", int64(len(items)))
	defer st.End()
	rank := func(k layout.Kind) int {
		switch k {
		case layout.KindBlobData:
			return 0
		case layout.KindLayerLink:
			return 1
		case layout.KindRevisionLink:
			return 2
		case layout.KindTagIndexLink:
			return 3
		case layout.KindTagCurrentLink:
			return 4
		}
		return 5
	}
	slices.SortStableFunc(items, func(a, b Item) int { return rank(a.Kind) - rank(b.Kind) })
	const batch = 1000
	for start := 0; start < len(items); start += batch {
		var moves []storage.Move
		for _, it := range items[start:min(start+batch, len(items))] {
			p := it.Path()
			dir := path.Dir(p)
			moves = append(moves, storage.Move{
				Unit: storage.Unit{Dir: layout.Quarantined(run, dir), Files: []string{path.Base(p)}},
				To:   dir,
			})
		}
		if err := m.Move(ctx, moves); err != nil {
			return fmt.Errorf("putting back from the quarantine: %w", err)
		}
		st.Add(int64(len(moves)))
	}
	return nil
}

// RestoreAll puts back everything q holds, counted in tr (see restore).
func RestoreAll(ctx context.Context, b storage.Backend, q *Quarantine, why string, tr *progress.Tracker) (Result, error) {
	res := Result{Files: len(q.Files)}
	mover, ok := b.(storage.Mover)
	if !ok {
		return res, fmt.Errorf("%s: this storage cannot move files back from the quarantine", b)
	}
	items := everything(q, why)
	if err := restore(ctx, mover, q.Run, items, tr); err != nil {
		return res, err
	}
	res.Restored = items
	return res, nil
}
