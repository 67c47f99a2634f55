package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/metrics"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

// checkMetricsFlags refuses, before the run, a --metrics-file whose directory does
// not exist (the file is written there by rename) and an empty --pushgateway.
func (o *options) checkMetricsFlags(metricsFileSet, pushgatewaySet bool) (outcome, bool) {
	if metricsFileSet {
		if o.metricsFile == "" {
			return usageError("--metrics-file needs a path, not an empty string"), true
		}
		dir := filepath.Dir(o.metricsFile)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			path := o.metricsFile
			o.metricsFile = "" // nothing to write at the end
			return usageError("--metrics-file %s: its directory %s does not exist", path, dir), true
		}
	}
	if pushgatewaySet && o.pushgateway == "" {
		return usageError("--pushgateway needs a URL, not an empty string"), true
	}
	return outcome{}, false
}

// exportMetrics writes and pushes the metrics of the run that ended with out and
// exit status code, as --metrics-file and --pushgateway ask; --help and --version
// export nothing. A failure to export is a warning on stderr: the exit status stays
// the run's own (a staleness alert on clean_registry_last_run_end_timestamp_seconds
// catches metrics that stop arriving).
func (o options) exportMetrics(ctx context.Context, out outcome, start time.Time, code int, stderr io.Writer) int {
	if o.metricsFile == "" && o.pushgateway == "" {
		return code
	}
	if out.rep == nil && out.err == nil && out.code == ExitOK { // --help, --version
		return code
	}
	rep := out.rep
	if rep == nil {
		rep = report.Stopped(storageName(o), out.stage, out.err)
		rep.DryRun = o.dryRun
	}
	// Success is the run's own: it did what was asked. Problems found in the storage
	// do not make it fail; clean_registry_problems counts them.
	success := out.err == nil && out.code == ExitOK && len(rep.Failures) == 0
	reg := metrics.New(rep, metrics.Run{Start: start, End: time.Now(), Success: success, ExitStatus: code, Version: version()})
	if o.metricsFile != "" {
		if err := metrics.WriteFile(o.metricsFile, reg); err != nil {
			fmt.Fprintf(stderr, "WARNING: writing the metrics to %s: %v\n", o.metricsFile, err)
		}
	}
	if o.pushgateway != "" {
		instance := rep.Storage
		if instance == "" {
			instance = "clean-registry"
		}
		// Also after an interruption: the push says the run failed.
		if err := metrics.Push(context.WithoutCancel(ctx), o.pushgateway, instance, reg); err != nil {
			fmt.Fprintf(stderr, "WARNING: %v\n", err)
		}
	}
	return code
}
