// Package clean runs one cleaning: scan the storage into an inventory, plan, and
// execute the plan (or only print it, in a dry run).
package clean

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/execute"
	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/online"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Selector names a repository, or one tag of it, from the command line.
type Selector = plan.Selector

// Options says what one run does.
type Options struct {
	// Select limits the untagged purge (and -x) to these repositories; empty means the
	// whole registry. Unreferenced blobs are always swept registry-wide.
	Select []Selector
	// Remove deletes the selected repositories or tags (-x).
	Remove bool
	// DryRun plans and reports without deleting anything.
	DryRun bool
	// Grace keeps every object younger than this: pushes in flight are safe.
	Grace time.Duration
	// UploadAge is the age past which an unfinished upload is purged.
	UploadAge time.Duration
	// Jobs bounds concurrent storage operations.
	Jobs int
	// Now is the reference time for ages (zero: time.Now()).
	Now time.Time
	// Retention deletes the tags its keep rules do not keep; nil: none.
	Retention *policy.Policy
	// DeleteOrphanSignatures deletes signature tags whose subject no repository holds.
	DeleteOrphanSignatures bool
	// Online, when set, cleans beside a registry that keeps serving: what the plan
	// deletes is first moved into a quarantine, and what the live registry turns out
	// to need is put back before the quarantine is purged. nil: an offline run.
	Online *Online
	// KeepDeleted keeps what the run deletes in its trash for this long, restorable
	// (see internal/online); zero deletes it for good.
	KeepDeleted time.Duration
	// Progress, when set, is told how far the run has got, stage by stage: the scan,
	// the reading of push times, sizes and times, each deletion phase; an online
	// run's settle, verification, putting back and purge of its quarantine, as those
	// of an interrupted run's quarantine and of expired trash. nil: nothing.
	Progress *progress.Tracker
	// Log receives one line per deletion, in plan order: as planned in a dry run, as
	// applied (phase by phase) in a real run. nil: silent.
	Log io.Writer
}

// Online tunes an online run.
type Online struct {
	// Settle is how long the run waits, after its moves, before it verifies: longer
	// than any request the registry serves, so that every push that saw the moved
	// objects in place has written all it will.
	Settle time.Duration
	// AfterMoves is called once everything the plan deletes is out of the registry's
	// sight, before the settle: it clears the registry's blob descriptor cache or
	// restarts the registry. fresh says every request that began before the call has
	// ended (the registry restarted): the settle is then skipped. May be nil.
	AfterMoves func(ctx context.Context, rep *report.Report) (fresh bool, err error)
	// AfterVerify is called once the verification put back what the live registry
	// needs, before the quarantine is purged: it clears a cache again, for entries a
	// request running across the moves wrote back. May be nil.
	AfterVerify func(ctx context.Context, rep *report.Report) error
}

// Run cleans the registry storage behind b. The report is returned whenever the scan
// succeeded, also with an error that stopped the execution part way.
func Run(ctx context.Context, b storage.Backend, opts Options) (*report.Report, error) {
	started := time.Now()
	defer tuneGC()()
	now := opts.Now
	if now.IsZero() {
		now = started
	}
	jobs := max(opts.Jobs, 1)
	var recovered *report.Online
	var expired []string
	var journal *online.Journal
	if !opts.DryRun {
		// What an interrupted online run left in its quarantine is verified and purged
		// first: this run's scan must see what the verification puts back. Expired
		// trash goes too.
		var err error
		if recovered, expired, err = recoverQuarantines(ctx, b, opts, now, jobs); err != nil {
			return nil, fmt.Errorf("finishing an interrupted run's quarantine: %w", err)
		}
		if opts.Online != nil || opts.KeepDeleted > 0 {
			if journal, err = online.Begin(ctx, b, started, opts.KeepDeleted); err != nil {
				return nil, err
			}
		}
	}
	inv, err := inventory.ScanTracked(ctx, b, jobs, opts.Progress)
	if err != nil {
		if journal != nil {
			err = errors.Join(err, online.Purge(context.WithoutCancel(ctx), b, &online.Quarantine{Run: journal.Run}, jobs, nil))
		}
		return nil, err
	}
	scanned := time.Now()
	pol := plan.Policy{Select: opts.Select, Remove: opts.Remove, Grace: opts.Grace, UploadAge: opts.UploadAge, Now: now,
		Retention: opts.Retention, DeleteOrphanSignatures: opts.DeleteOrphanSignatures}
	if opts.Retention.NeedsPushTimes() {
		// A tag's push time is its current link's: a filesystem walk does not stat,
		// so read it where a rule ranks or ages the tag (object stores listed it).
		st := opts.Progress.Begin("reading push times", "links", -1)
		if err := inv.CompleteTracked(ctx, b, pushTimes(inv, opts.Retention, opts.Select), jobs, st); err != nil {
			return nil, fmt.Errorf("reading tag push times: %w", err)
		}
	}

	// A first plan without the grace period names every candidate; only those need a
	// size or a time, which a filesystem walk does not give. Then the real plan.
	candidates := pol
	candidates.Grace = 0
	releaseMemory() // the scan's garbage: paths, read buffers, the blob stripes
	p := plan.Make(inv, candidates)
	releaseMemory() // the first plan's growth
	st := opts.Progress.Begin("planning; reading sizes and times", "objects", -1)
	if err := inv.CompleteTracked(ctx, b, refsOf(inv, p, opts.Grace > 0), jobs, st); err != nil {
		return nil, fmt.Errorf("reading sizes and times: %w", err)
	}
	if opts.Grace > 0 {
		p = plan.Make(inv, pol)
	}
	st.End()

	rep := report.New(inv, p, opts.DryRun)
	rep.Online = recovered
	rep.TrashPurged = expired
	if opts.KeepDeleted > 0 {
		rep.KeepDeleted = policy.FormatDuration(opts.KeepDeleted)
	}
	if journal != nil && opts.Online != nil {
		if rep.Online == nil {
			rep.Online = &report.Online{}
		}
		rep.Online.Run = journal.Run
	}
	planned := time.Now()
	rep.Phases.Scan = scanned.Sub(started).Seconds()
	rep.Phases.Plan = planned.Sub(scanned).Seconds()
	// From here on the plan is all that is needed: let the inventory's maps go before
	// the deletions, which allocate paths by the hundred thousand.
	storageName := inv.Storage
	inv = nil
	logLines := func(start, end int) {
		if opts.Log == nil {
			return
		}
		for i := start; i < end; i++ {
			fmt.Fprintln(opts.Log, report.Line(storageName, p.At(i), opts.DryRun))
		}
	}
	if opts.DryRun {
		logLines(0, p.Len())
		rep.Completed = true
	} else {
		var res execute.Result
		eopts := execute.Options{Jobs: jobs, PhaseDone: logLines, Progress: opts.Progress}
		if journal != nil {
			eopts.Quarantine = journal.Dir
			if opts.Online != nil {
				// A live registry may write again what the plan deletes: its new
				// links stay. Offline, nothing writes: every planned file moves.
				eopts.QuarantineSince = journal.Since
			}
		}
		res, err = execute.Run(ctx, b, p, eopts)
		rep.SetApplied(res)
		switch {
		case journal == nil:
		case ctx.Err() != nil:
			rep.Notes = append(rep.Notes, "stopped before the quarantine "+journal.Run+" was verified; the next real run finishes it")
		case opts.Online != nil:
			// Also after a failed execution: what was moved may be needed back now,
			// not only when a later run recovers the quarantine.
			err = errors.Join(err, finishOnline(ctx, b, journal, *opts.Online, rep, jobs, opts.Progress))
		default:
			// Offline: nothing can have needed it meanwhile; it becomes the trash.
			err = errors.Join(err, keepTrash(ctx, b, journal, rep, jobs, opts.Progress))
		}
		if err != nil {
			rep.Error = err.Error()
		} else {
			rep.Completed = true
		}
	}
	if opts.Online != nil && len(rep.Problems) > 0 && ctx.Err() == nil {
		settleProblems(ctx, b, rep, jobs)
	}
	if rc, ok := b.(storage.RequestCounter); ok {
		rep.Requests = rc.Requests()
	}
	rep.Seconds = time.Since(started).Seconds()
	if !opts.DryRun {
		rep.Phases.Delete = time.Since(planned).Seconds()
	}
	return rep, err
}

// refsOf yields what a plan deletes whose size (blobs) or, with a grace period, time
// (links too) matters.
func refsOf(inv *inventory.Inventory, p *plan.Plan, times bool) iter.Seq[inventory.Ref] {
	return func(yield func(inventory.Ref) bool) {
		for d := range p.All() {
			r := inventory.Ref{Repo: d.Repo, Tag: d.Tag}
			switch {
			case d.Kind == plan.Blob:
				r.Kind = layout.KindBlobData
			case !times:
				continue
			case d.Kind == plan.Revision:
				r.Kind = layout.KindRevisionLink
			case d.Kind == plan.LayerLink:
				r.Kind = layout.KindLayerLink
			case d.Kind == plan.TagHistory:
				r.Kind = layout.KindTagIndexLink
			case d.Kind == plan.Tag && d.Reason == plan.EmptyTag:
				// Its current directory's time tells its age; no digest names it.
				r.Kind = layout.KindTagCurrentLink
				if !yield(r) {
					return
				}
				continue
			default:
				continue
			}
			id, ok := inv.Lookup(d.Digest)
			if !ok {
				continue
			}
			r.ID = id
			if !yield(r) {
				return
			}
		}
	}
}

// pushTimes yields the current links whose times the retention rules need: tags
// of the selected repositories (all, without a selection) that a rule ranks or ages.
func pushTimes(inv *inventory.Inventory, ret *policy.Policy, sel []Selector) iter.Seq[inventory.Ref] {
	inScope := func(string) bool { return true }
	if len(sel) > 0 {
		repos := map[string]bool{}
		for _, s := range sel {
			repos[s.Repo] = true
		}
		inScope = func(name string) bool { return repos[name] }
	}
	return func(yield func(inventory.Ref) bool) {
		for name, r := range inv.Repos {
			rule := ret.Match(name)
			if rule == nil || !inScope(name) {
				continue
			}
			for tag := range r.Tags {
				if !rule.NeedsPushTime(tag) {
					continue
				}
				if !yield(inventory.Ref{Kind: layout.KindTagCurrentLink, Repo: name, Tag: tag}) {
					return
				}
			}
		}
	}
}

// settleProblems sets apart, in rep, the problems that were a live registry's writes
// under way when the scan passed and are finished now (inventory.Settled): they
// are no damage, and an alert on every nightly run of a busy registry would teach
// its operator to ignore exit status 3. When the storage cannot tell, every
// problem stays one.
func settleProblems(ctx context.Context, b storage.Backend, rep *report.Report, jobs int) {
	settled, remaining, err := inventory.Settled(ctx, b, rep.Problems, jobs)
	if err != nil {
		rep.Notes = append(rep.Notes, "the problems found were not checked again: "+err.Error())
		return
	}
	rep.Problems, rep.Settled = remaining, settled
	if rep.Problems == nil {
		rep.Problems = []inventory.Problem{}
	}
}
