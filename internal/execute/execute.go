// Package execute applies a plan to storage in its crash-safe order: one phase after
// another (tags, revisions, layer links, uploads, blobs, repositories), each phase in
// parallel batches. A phase that fails stops the run before the next, whose safety
// rested on it; a rerun converges because what is already gone counts as deleted.
package execute

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"golang.org/x/sync/errgroup"
)

// BatchSize is how many units one Delete call carries (S3 DeleteObjects takes 1,000 keys).
const BatchSize = 1000

// Options tunes an execution.
type Options struct {
	Jobs int
	// PhaseDone is called with each range of the plan's deletions applied, in plan
	// order: after a phase, the whole phase, so that the output of a real run reads
	// exactly like its dry run; for a phase that failed, the batches it did apply
	// before it stopped, so that nothing applied goes unreported. May be nil.
	PhaseDone func(start, end int)
	// Quarantine, when set, maps a directory to its place in a quarantine: the
	// deletions are moves there (the backend must be a storage.Mover), so that a
	// verification can put back what a live registry turns out to need. Abandoned
	// uploads are deleted all the same: nothing can need them. The quarantine (or
	// trash) is this run's own: the moves are storage.Move.Fresh.
	Quarantine func(dir string) string
	// QuarantineSince, when set with Quarantine, is when the run began: a link
	// written after it (a tag pushed again since the scan) is left in place rather
	// than moved (storage.Move.UnmodifiedSince). Blobs, named by their content, move
	// whatever their time.
	QuarantineSince time.Time
	// Progress, when set, gets one stage per phase ("deleting blobs"), counted batch
	// by batch, with the bytes the plan knows of.
	Progress *progress.Tracker
}

// Range is a run of the plan's deletions, from Start to End (excluded).
type Range struct{ Start, End int }

// Result says how far the execution got.
type Result struct {
	// Done counts the deletions applied.
	Done int
	// Applied are the deletions applied, as ranges in plan order.
	Applied []Range
	// Uncertain are the deletions of the batches that failed or were interrupted
	// (a signal): the storage does not say which of their units went, so each may
	// have been applied in part, or whole. A rerun completes them.
	Uncertain []Range
}

// Run applies p. It returns the first error; deletions of later phases are not tried.
func Run(ctx context.Context, b storage.Backend, p *plan.Plan, opts Options) (Result, error) {
	var res Result
	applied := func(rs ...Range) {
		for _, r := range rs {
			res.Done += r.End - r.Start
			res.Applied = append(res.Applied, r)
			if opts.PhaseDone != nil {
				opts.PhaseDone(r.Start, r.End)
			}
		}
	}
	for _, kind := range plan.Kinds {
		start, end := p.Phase(kind)
		if start == end {
			continue
		}
		apply := func(ctx context.Context, units []storage.Unit) error { return b.Delete(ctx, units) }
		if opts.Quarantine != nil && kind != plan.Upload {
			mover, ok := b.(storage.Mover)
			if !ok {
				return res, fmt.Errorf("%s: this storage cannot move files into a quarantine", b)
			}
			apply = func(ctx context.Context, units []storage.Unit) error {
				moves := make([]storage.Move, len(units))
				for i, u := range units {
					moves[i] = storage.Move{Unit: u, To: opts.Quarantine(u.Dir), Fresh: true}
					if kind != plan.Blob {
						moves[i].UnmodifiedSince = opts.QuarantineSince
					}
				}
				return mover.Move(ctx, moves)
			}
		}
		st := opts.Progress.Begin("deleting "+phaseName[kind], "deletions", int64(end-start))
		if st != nil {
			var bytes int64
			for i := start; i < end; i++ {
				bytes += max(p.At(i).Bytes, 0)
			}
			st.SetTotalBytes(bytes)
		}
		done, uncertain, err := runPhase(ctx, p, start, end, opts.Jobs, st, apply)
		st.End()
		if err != nil {
			applied(done...)
			res.Uncertain = uncertain
			return res, fmt.Errorf("deleting %ss: %w", kind, err)
		}
		applied(Range{start, end})
		if kind == plan.Repository {
			if err := b.PruneDirs(ctx, pruneDirs(p, start, end)); err != nil {
				return res, fmt.Errorf("removing empty directories: %w", err)
			}
		}
	}
	return res, nil
}

// phaseName names a phase in its progress stage.
var phaseName = map[plan.Kind]string{plan.Tag: "tags", plan.TagHistory: "tag history", plan.Revision: "revisions",
	plan.LayerLink: "layer links", plan.Upload: "uploads", plan.Blob: "blobs", plan.Repository: "repositories"}

// runPhase deletes p's deletions start to end in parallel batches; each batch's units
// are built only when a job is free to take it. On an error it returns the ranges of
// the batches that were applied, and those of the batches that failed (uncertain),
// each merged and in plan order. A batch that fails stops
// the phase: no batch starts after it, while those under way are not cancelled but
// finish, so that what they applied is known and reported (a cancelled ctx, a
// signal, still interrupts them).
func runPhase(ctx context.Context, p *plan.Plan, start, end, jobs int, st *progress.Stage, apply func(context.Context, []storage.Unit) error) (done, uncertain []Range, err error) {
	jobs = max(jobs, 1)
	var g errgroup.Group
	g.SetLimit(jobs)
	var mu sync.Mutex
	var failed atomic.Bool
	// A phase smaller than a full batch per job is spread over all of them: 8,000
	// revisions make 16 batches of 500, not 8 of 1,000 with half the jobs idle.
	size := min(BatchSize, max(1, (end-start+jobs-1)/jobs))
	i := start
	for i < end && !failed.Load() && ctx.Err() == nil {
		first, units, bytes := i, []storage.Unit(nil), int64(0)
		for i < end && len(units) < size {
			d := p.At(i)
			units = append(units, d.Units()...)
			bytes += max(d.Bytes, 0)
			i++
		}
		last := i
		g.Go(func() error {
			// A batch that waited for a free job while another failed, or the run
			// was stopped, starts nothing: it is neither applied nor uncertain.
			if failed.Load() {
				return nil
			}
			if err := ctx.Err(); err != nil {
				failed.Store(true)
				return err
			}
			if err := apply(ctx, units); err != nil {
				failed.Store(true)
				mu.Lock()
				uncertain = append(uncertain, Range{first, last})
				mu.Unlock()
				return err
			}
			mu.Lock()
			done = append(done, Range{first, last})
			mu.Unlock()
			st.Add(int64(last - first))
			st.AddBytes(bytes)
			return nil
		})
	}
	err = g.Wait()
	if err == nil && i < end {
		err = ctx.Err() // stopped before the last batches, none of which failed
	}
	if err != nil {
		return merge(done), merge(uncertain), err
	}
	return nil, nil, nil
}

// merge sorts ranges and joins the adjacent ones.
func merge(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].End == r.Start {
			out[n-1].End = r.End
			continue
		}
		out = append(out, r)
	}
	return out
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
