package regdriver

import (
	"context"
	"fmt"
	iofs "io/fs"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/parallel"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

var _ storage.Mover = (*DriverBackend)(nil)

// Move moves each file with the driver's own Move (gcs: a server-side copy then a
// delete of the source; azure: a copy from URL then a delete), files concurrently,
// bounded by jobs. The driver's Move overwrites, so the destination is stat'ed first:
// one that exists is kept and the source deleted instead (a concurrent writer can
// slip in between; its file names the same content). Units without Files are listed
// first, all in one pool of jobs, as Walk lists a tree. The drivers are for object
// stores, which have no directories: nothing is left of a unit once its files are
// gone (the filesystem driver, used in tests, leaves its empty directories).
func (b *DriverBackend) Move(ctx context.Context, moves []storage.Move) error {
	type pair struct {
		src, dst string    // driver paths
		since    time.Time // storage.Move.UnmodifiedSince, for a file not stat'ed yet
	}
	var pairs []pair
	type listing struct {
		dir, to string
		since   time.Time
	}
	var unknown []listing
	for _, m := range moves {
		dir, to := strings.Trim(m.Dir, "/"), strings.Trim(m.To, "/")
		if dir == "" || to == "" {
			return fmt.Errorf("refusing to move %q to %q: the storage root", m.Dir, m.To)
		}
		if !iofs.ValidPath(dir) || !iofs.ValidPath(to) {
			return fmt.Errorf("invalid move of %q to %q", m.Dir, m.To)
		}
		// One inside the other would move files into the unit being moved.
		if dir == to || strings.HasPrefix(to, dir+"/") || strings.HasPrefix(dir, to+"/") {
			return fmt.Errorf("refusing to move %s to %s: one holds the other", dir, to)
		}
		if len(m.Files) == 0 {
			unknown = append(unknown, listing{dir, to, m.UnmodifiedSince})
			continue
		}
		for _, f := range m.Files {
			// No path.Join: it would clean "x/../y" into a valid path.
			if !iofs.ValidPath(dir+"/"+f) || !iofs.ValidPath(to+"/"+f) {
				return fmt.Errorf("invalid file %q in %s", f, m.Dir)
			}
			pairs = append(pairs, pair{"/" + dir + "/" + f, "/" + to + "/" + f, m.UnmodifiedSince})
		}
	}
	type item struct {
		dir  string // driver path
		unit int
	}
	roots := make([]item, len(unknown))
	for i, l := range unknown {
		roots[i] = item{"/" + l.dir, i}
	}
	var mu sync.Mutex
	err := parallel.Walk(ctx, b.jobs, roots, func(ctx context.Context, it item, push func(item)) error {
		b.count("List")
		entries, err := b.d.List(ctx, it.dir)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return fmt.Errorf("listing %s: %w", it.dir, err)
		}
		for _, e := range entries {
			l := unknown[it.unit]
			rel, ok := strings.CutPrefix(e, "/"+l.dir+"/")
			if !ok || !utf8.ValidString(e) || !iofs.ValidPath(l.to+"/"+rel) {
				return fmt.Errorf("cannot move %q: the driver's name for it is not a storage path below %s", e, l.dir)
			}
			b.count("Stat")
			fi, err := b.d.Stat(ctx, e)
			if err != nil {
				if notFound(err) {
					continue // gone meanwhile
				}
				return fmt.Errorf("stat %s: %w", e, err)
			}
			if fi.IsDir() {
				push(item{e, it.unit})
				continue
			}
			if modifiedAfter(fi.ModTime(), l.since) {
				continue // written since: it stays
			}
			mu.Lock()
			pairs = append(pairs, pair{e, "/" + l.to + "/" + rel, time.Time{}})
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for _, p := range pairs {
		g.Go(func() error { return b.moveFile(gctx, p.src, p.dst, p.since) })
	}
	return g.Wait()
}

// moveFile moves one file; a missing source counts as moved, and one written after
// since (when set) stays.
func (b *DriverBackend) moveFile(ctx context.Context, src, dst string, since time.Time) error {
	if !since.IsZero() {
		b.count("Stat")
		fi, err := b.d.Stat(ctx, src)
		switch {
		case notFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("moving %s: stat: %w", src[1:], err)
		case modifiedAfter(fi.ModTime(), since):
			return nil
		}
	}
	b.count("Stat")
	_, err := b.d.Stat(ctx, dst)
	switch {
	case err == nil:
		b.count("Delete")
		if err := b.d.Delete(ctx, src); err != nil && !notFound(err) {
			return fmt.Errorf("moving %s: %s exists; deleting the source: %w", src[1:], dst[1:], err)
		}
		return nil
	case !notFound(err):
		return fmt.Errorf("moving %s: stat %s: %w", src[1:], dst[1:], err)
	}
	b.count("Move")
	// The gcs driver logs a failure to delete the source after its copy and returns
	// nil: the source may then stay, beside its copy (a rerun removes it).
	if err := b.d.Move(ctx, src, dst); err != nil && !notFound(err) {
		return fmt.Errorf("moving %s to %s: %w", src[1:], dst[1:], err)
	}
	return nil
}

// modifiedAfter tells whether t is after since (never when since is zero).
func modifiedAfter(t, since time.Time) bool { return !since.IsZero() && t.After(since) }
