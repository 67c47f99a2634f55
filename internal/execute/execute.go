// Package execute applies a plan to storage in its crash-safe order: one phase after
// another (tags, revisions, layer links, uploads, blobs, repositories), each phase in
// parallel batches. A phase that fails stops the run before the next, whose safety
// rested on it; a rerun converges because what is already gone counts as deleted.
package execute

import (
	"context"
	"fmt"
	"sync"

	"github.com/clean-registry/clean-registry/internal/plan"
	"github.com/clean-registry/clean-registry/internal/storage"
	"golang.org/x/sync/errgroup"
)

// BatchSize is how many units one Delete call carries (S3 DeleteObjects takes 1,000 keys).
const BatchSize = 1000

// Options tunes an execution.
type Options struct {
	Jobs int
	// PhaseDone is called after each phase with its deletions, all applied, in plan
	// order: the output of a real run then reads exactly like its dry run. May be nil.
	PhaseDone func([]plan.Deletion)
}

// Result says how far the execution got.
type Result struct {
	// Done counts the deletions applied.
	Done int
}

// Run applies p. It returns the first error; deletions of later phases are not tried.
func Run(ctx context.Context, b storage.Backend, p *plan.Plan, opts Options) (Result, error) {
	var res Result
	var mu sync.Mutex
	done := func(ds []plan.Deletion) {
		mu.Lock()
		res.Done += len(ds)
		mu.Unlock()
	}
	for start := 0; start < len(p.Deletions); {
		kind := p.Deletions[start].Kind
		end := start
		for end < len(p.Deletions) && p.Deletions[end].Kind == kind {
			end++
		}
		if err := runPhase(ctx, b, p.Deletions[start:end], opts.Jobs, done); err != nil {
			return res, fmt.Errorf("deleting %ss: %w", kind, err)
		}
		if kind == plan.Repository {
			if err := b.PruneDirs(ctx, pruneDirs(p.Deletions[start:end])); err != nil {
				return res, fmt.Errorf("removing empty directories: %w", err)
			}
		}
		if opts.PhaseDone != nil {
			opts.PhaseDone(p.Deletions[start:end])
		}
		start = end
	}
	return res, nil
}

func runPhase(ctx context.Context, b storage.Backend, ds []plan.Deletion, jobs int, done func([]plan.Deletion)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for start := 0; start < len(ds); {
		batch, units := start, []storage.Unit(nil)
		for start < len(ds) && len(units) < BatchSize {
			units = append(units, ds[start].Units()...)
			start++
		}
		part := ds[batch:start]
		g.Go(func() error {
			if err := b.Delete(gctx, units); err != nil {
				return err
			}
			done(part)
			return nil
		})
	}
	return g.Wait()
}

// pruneDirs lists, once each, the directories repository deletions may leave empty.
func pruneDirs(ds []plan.Deletion) []string {
	seen := map[string]bool{}
	var dirs []string
	for _, d := range ds {
		for _, dir := range d.PruneDirs() {
			if !seen[dir] {
				seen[dir] = true
				dirs = append(dirs, dir)
			}
		}
	}
	return dirs
}
