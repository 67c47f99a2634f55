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
	// PhaseDone is called after each phase with the range of the plan's deletions it
	// applied, all of them, in plan order: the output of a real run then reads exactly
	// like its dry run. May be nil.
	PhaseDone func(start, end int)
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
	done := func(n int) {
		mu.Lock()
		res.Done += n
		mu.Unlock()
	}
	for _, kind := range plan.Kinds {
		start, end := p.Phase(kind)
		if start == end {
			continue
		}
		if err := runPhase(ctx, b, p, start, end, opts.Jobs, done); err != nil {
			return res, fmt.Errorf("deleting %ss: %w", kind, err)
		}
		if kind == plan.Repository {
			if err := b.PruneDirs(ctx, pruneDirs(p, start, end)); err != nil {
				return res, fmt.Errorf("removing empty directories: %w", err)
			}
		}
		if opts.PhaseDone != nil {
			opts.PhaseDone(start, end)
		}
	}
	return res, nil
}

// runPhase deletes p's deletions start to end in parallel batches; each batch's units
// are built only when a job is free to take it.
func runPhase(ctx context.Context, b storage.Backend, p *plan.Plan, start, end, jobs int, done func(int)) error {
	jobs = max(jobs, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	// A phase smaller than a full batch per job is spread over all of them: 8,000
	// revisions make 16 batches of 500, not 8 of 1,000 with half the jobs idle.
	size := min(BatchSize, max(1, (end-start+jobs-1)/jobs))
	for i := start; i < end; {
		first, units := i, []storage.Unit(nil)
		for i < end && len(units) < size {
			units = append(units, p.At(i).Units()...)
			i++
		}
		n := i - first
		g.Go(func() error {
			if err := b.Delete(gctx, units); err != nil {
				return err
			}
			done(n)
			return nil
		})
	}
	return g.Wait()
}

// pruneDirs lists, once each, the directories repository deletions may leave empty.
func pruneDirs(p *plan.Plan, start, end int) []string {
	seen := map[string]bool{}
	var dirs []string
	for i := start; i < end; i++ {
		for _, dir := range p.At(i).PruneDirs() {
			if !seen[dir] {
				seen[dir] = true
				dirs = append(dirs, dir)
			}
		}
	}
	return dirs
}
