package inventory

import (
	"context"
	"fmt"
	"path"

	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Settled splits problems found while a registry kept serving into the writes it
// had under way, finished since the scan (each Settle's file is there now, or gone
// for a temporary file; or its directory gone whole), and the rest, in their
// order. It stats one file (and a directory) for each problem with a Settle, jobs
// at a time. A problem without a Settle, or whose file is as it was, stays a
// problem: damage looks the same however long one waits.
func Settled(ctx context.Context, b storage.Backend, problems []Problem, jobs int) (settled, remaining []Problem, err error) {
	ended := make([]bool, len(problems))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for i, p := range problems {
		if p.Settle.Path == "" {
			continue
		}
		g.Go(func() error {
			f, err := b.Stat(gctx, p.Settle.Path)
			switch {
			case err == nil && !f.Irregular:
				ended[i] = p.Settle.Appears
			case err == nil: // a directory or symbolic link in the file's place: as it was
			case storage.IsNotExist(err):
				ended[i] = !p.Settle.Appears
			default:
				return fmt.Errorf("checking %s again: %w", p.Settle.Path, err)
			}
			if !ended[i] && p.Settle.DirGone {
				dir := path.Dir(p.Settle.Path)
				exists, err := b.DirExists(gctx, dir)
				if err != nil {
					return fmt.Errorf("checking %s again: %w", dir, err)
				}
				ended[i] = !exists
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, problems, err
	}
	for i, p := range problems {
		if ended[i] {
			settled = append(settled, p)
		} else {
			remaining = append(remaining, p)
		}
	}
	return settled, remaining, nil
}
