package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// runDocker cleans the registry behind a container, service or volume (-v): it
// finds the storage as the registry sees it, quiesces the registry for a real run,
// and restores it on every path. An online run (--online) pauses nothing: the
// registry's caches are refreshed (restarted, redis cleared) between the run's moves
// and its verification, and a signal only stops the run.
func runDocker(ctx context.Context, target string, selectors []clean.Selector, o options, stdout, stderr io.Writer) outcome {
	c, err := docker.NewClient(ctx)
	if err != nil {
		return failed("target", err)
	}
	defer c.Close()
	var progress io.Writer
	if !o.quiet && !o.json {
		progress = stdout
	}
	dopts := docker.Options{Volume: o.volume, Stop: o.stop, NoRestart: o.noRestart, Log: progress, Warn: stderr}
	reg, err := c.Resolve(ctx, target, dopts)
	if err != nil {
		return failed("target", err)
	}
	if progress != nil {
		for _, n := range reg.Notes {
			fmt.Fprintln(progress, n)
		}
	}
	b, err := dockerBackend(ctx, reg, o)
	if err != nil {
		return failed("target", err)
	}
	opts := o.cleanOptions(selectors, o.grace)
	if o.dryRun {
		// Nothing to quiesce; plan with the grace period a real run would use.
		quiet := reg.Elsewhere == 0
		if o.online {
			quiet = reg.WritesNothing()
		}
		if !o.graceSet && quiet {
			opts.Grace = 0
		}
		return runClean(ctx, b, opts, o, stdout, stderr)
	}
	// The lock first: a second run waits or gives up before it pauses anything.
	release, err := takeLock(ctx, b, o, stderr)
	if err != nil {
		return failed("lock", err)
	}
	defer release()
	if o.online {
		return runDockerOnline(ctx, c, reg, b, opts, dopts, o, stdout, stderr)
	}
	var out outcome
	err = c.WithQuiesced(ctx, reg, dopts, func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
		if !o.graceSet && quiesced {
			opts.Grace = 0
		}
		out = runCleanLocked(ctx, b, opts, o, stdout, stderr)
		return docker.RunOutcome(out.rep), nil
	})
	if err != nil {
		if out.err == nil {
			out.err, out.stage = err, "target"
		} else {
			out.err = fmt.Errorf("%w; then: %v", out.err, err)
		}
		out.code = ExitError
	}
	return out
}

// runDockerOnline is a real online run, the lock held: the registry keeps serving;
// its caches are refreshed by the run's hooks, and a restart that failed is
// reported as a restore that failed is.
func runDockerOnline(ctx context.Context, c *docker.Client, reg *docker.Registry, b storage.Backend, opts clean.Options,
	dopts docker.Options, o options, stdout, stderr io.Writer) outcome {
	if !o.graceSet && reg.WritesNothing() {
		opts.Grace = 0
	}
	if opts.Online == nil {
		opts.Online = &clean.Online{Settle: o.settle}
	}
	hooks := c.Online(reg, dopts)
	opts.Online.AfterMoves, opts.Online.AfterVerify = hooks.AfterMoves, hooks.AfterVerify
	out := runCleanLocked(ctx, b, opts, o, stdout, stderr)
	if err := hooks.Err(); err != nil {
		err = fmt.Errorf("restarting the registry: %w", err)
		if out.err == nil {
			out.err, out.stage = err, "target"
		} else {
			out.err = fmt.Errorf("%w; then: %v", out.err, err)
		}
		out.code = ExitError
	}
	return out
}

func dockerBackend(ctx context.Context, reg *docker.Registry, o options) (storage.Backend, error) {
	return openBackend(ctx, reg.Storage.Driver, reg.Storage.Parameters, reg.Storage.Root, o.jobs)
}
