package clean

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/online"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// finishOnline runs an online run's part after its moves: the cache hook, the
// settle, the verification that puts back what the live registry needs, the hook
// again, and the purge; each a stage of tr.
func finishOnline(ctx context.Context, b storage.Backend, j *online.Journal, o Online, rep *report.Report, jobs int, tr *progress.Tracker) error {
	out := rep.Online
	q, err := online.LoadRun(ctx, b, j.Run)
	if err != nil {
		return err
	}
	q.Journal = j
	fresh := false
	if o.AfterMoves != nil {
		if fresh, err = o.AfterMoves(ctx, rep); err != nil {
			// A cache that may still name what was moved would let later pushes skip
			// it: put everything back rather than purge.
			err = fmt.Errorf("the registry's blob descriptor cache: %w; everything moved is put back", err)
			res, rerr := online.RestoreAll(ctx, b, q, err.Error(), tr)
			recordVerification(out, res, "")
			return errors.Join(err, rerr, purge(ctx, b, q, out, rep, jobs, tr))
		}
	}
	if !fresh && o.Settle > 0 {
		start := time.Now()
		if err := settle(ctx, o.Settle, tr); err != nil {
			return err
		}
		out.SettleSeconds = time.Since(start).Seconds()
	}
	start := time.Now()
	res, err := online.Verify(ctx, b, q, jobs, tr)
	recordVerification(out, res, "")
	out.VerifySeconds = time.Since(start).Seconds()
	if err != nil {
		return fmt.Errorf("verifying the quarantine %s: %w", j.Run, err)
	}
	if res.Blind != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("online: %v; everything moved was put back", res.Blind))
	}
	if o.AfterVerify != nil {
		if err := o.AfterVerify(ctx, rep); err != nil {
			return fmt.Errorf("the registry's blob descriptor cache: %w", err)
		}
	}
	return purge(ctx, b, q, out, rep, jobs, tr)
}

// settle waits d, for the requests that saw the moved files in place to end. Its
// stage "settling" counts the seconds waited, to the whole of d.
func settle(ctx context.Context, d time.Duration, tr *progress.Tracker) error {
	total := int64(math.Ceil(d.Seconds()))
	st := tr.Begin("settling", progress.Seconds, total)
	defer st.End()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var tick <-chan time.Time // nil, never ready, when nothing watches
	if st != nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	var waited int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			if waited < total {
				st.Add(1)
				waited++
			}
		case <-timer.C:
			st.Add(total - waited)
			return nil
		}
	}
}

// purge ends a verified quarantine: deleted, or kept as the run's trash (recorded
// in rep when rep is given: this run's own).
func purge(ctx context.Context, b storage.Backend, q *online.Quarantine, out *report.Online, rep *report.Report, jobs int, tr *progress.Tracker) error {
	start := time.Now()
	trash, err := online.Finish(ctx, b, q, jobs, tr)
	if err != nil {
		return err
	}
	if trash && rep != nil {
		rep.Trash = &report.Trash{Run: q.Run, Expires: q.Journal.Expires, Files: len(q.Files)}
	}
	if out != nil {
		out.PurgeSeconds += time.Since(start).Seconds()
	}
	return nil
}

// recordVerification adds what a verification put back to the report, prefixed for
// an earlier run's quarantine.
func recordVerification(out *report.Online, res online.Result, prefix string) {
	out.Quarantined += res.Files
	if out.Restored == nil {
		out.Restored = []report.Restored{}
	}
	for _, it := range res.Restored {
		out.Restored = append(out.Restored, report.Restored{Kind: it.KindName(), Path: it.Path(), Subject: it.Subject(), Why: prefix + it.Why})
	}
}

// keepTrash records an offline run's quarantine as its trash.
func keepTrash(ctx context.Context, b storage.Backend, j *online.Journal, rep *report.Report, jobs int, tr *progress.Tracker) error {
	q, err := online.LoadRun(ctx, b, j.Run)
	if err != nil {
		return err
	}
	q.Journal = j
	return purge(ctx, b, q, nil, rep, jobs, tr)
}

// recoverQuarantines verifies and ends the quarantines of runs that stopped before
// they could (killed, or a storage error), and purges the trash that expired. It
// returns what the verifications did (nil when there was nothing to verify) and
// the expired trash it purged. opts.Progress gets a stage for each settle,
// verification and purge.
func recoverQuarantines(ctx context.Context, b storage.Backend, opts Options, now time.Time, jobs int) (*report.Online, []string, error) {
	qs, err := online.Load(ctx, b)
	if err != nil || len(qs) == 0 {
		return nil, nil, err
	}
	var out *report.Online
	var expired []string
	for _, q := range qs {
		if q.Journal.IsTrash() {
			if now.Before(q.Journal.Expires) {
				continue
			}
			if err := q.List(ctx, b); err != nil {
				return nil, nil, err
			}
			if err := online.Purge(ctx, b, q, jobs, opts.Progress); err != nil {
				return nil, nil, err
			}
			expired = append(expired, q.Run)
			continue
		}
		if out == nil {
			out = &report.Online{Restored: []report.Restored{}}
		}
		if err := q.List(ctx, b); err != nil {
			return nil, nil, err
		}
		if q.Journal == nil || !q.Journal.Verified {
			if opts.Online != nil && opts.Online.Settle > 0 {
				// The interrupted run's moves may be recent: let the requests that saw
				// the moved files in place end first.
				if err := settle(ctx, opts.Online.Settle, opts.Progress); err != nil {
					return nil, nil, err
				}
			}
			res, err := online.Verify(ctx, b, q, jobs, opts.Progress)
			recordVerification(out, res, "interrupted run "+q.Run+": ")
			if err != nil {
				return nil, nil, fmt.Errorf("verifying the quarantine %s: %w", q.Run, err)
			}
		}
		if err := purge(ctx, b, q, out, nil, jobs, opts.Progress); err != nil {
			return nil, nil, err
		}
		out.Recovered = append(out.Recovered, q.Run)
	}
	return out, expired, nil
}
