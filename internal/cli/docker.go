package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/clean-registry/clean-registry/internal/clean"
	"github.com/clean-registry/clean-registry/internal/report"
	"github.com/clean-registry/clean-registry/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/internal/storage"
)

// runDocker cleans the registry behind a container, service or volume (-v): it
// finds the storage as the registry sees it, quiesces the registry for a real run,
// and restores it on every path.
func runDocker(ctx context.Context, target string, selectors []clean.Selector, o options, stdout, stderr io.Writer) int {
	c, err := docker.NewClient(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return ExitError
	}
	defer c.Close()
	var progress io.Writer
	if !o.quiet && !o.json {
		progress = stdout
	}
	dopts := docker.Options{Volume: o.volume, Stop: o.stop, NoRestart: o.noRestart, Log: progress, Warn: stderr}
	reg, err := c.Resolve(ctx, target, dopts)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return ExitError
	}
	if progress != nil {
		for _, n := range reg.Notes {
			fmt.Fprintln(progress, n)
		}
	}
	b, err := dockerBackend(ctx, reg, o)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return ExitError
	}
	opts := o.cleanOptions(selectors, o.grace)
	if o.dryRun {
		// Nothing to quiesce; plan with the grace period a real run would use.
		if !o.graceSet && reg.Elsewhere == 0 {
			opts.Grace = 0
		}
		return runClean(ctx, b, opts, o, stdout, stderr)
	}
	code := ExitError
	err = c.WithQuiesced(ctx, reg, dopts, func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
		if !o.graceSet && quiesced {
			opts.Grace = 0
		}
		var rep *report.Report
		code, rep = runCleanReport(ctx, b, opts, o, stdout, stderr)
		return docker.OutcomeOf(rep), nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return ExitError
	}
	return code
}

func dockerBackend(ctx context.Context, reg *docker.Registry, o options) (storage.Backend, error) {
	return openBackend(ctx, reg.Storage.Driver, reg.Storage.Parameters, reg.Storage.Root, o.jobs)
}
