// Package metrics turns a run's report into Prometheus metrics: a file for
// node_exporter's textfile collector (--metrics-file) or a push to a Pushgateway
// (--pushgateway). The metrics describe the last run; they are gauges, each set
// once, in a registry of their own.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

// Job is the Pushgateway job the metrics are pushed under.
const Job = "clean_registry"

// Prefix starts every metric's name.
const Prefix = "clean_registry_"

// Run is what the report does not say about a run: when it ran, how it ended.
type Run struct {
	Start, End time.Time
	// Success says the run did what was asked (problems found in the storage do
	// not make it fail); ExitStatus is the command's exit status.
	Success    bool
	ExitStatus int
	// Version is clean-registry's version (a label of clean_registry_info).
	Version string
}

// ProblemKinds are the kinds of problems always exported, at 0 when none was
// found, so that a query sees the series before the first problem; a kind not
// listed here appears when found.
var ProblemKinds = []inventory.ProblemKind{
	inventory.GarbledLink, inventory.MissingLink, inventory.MissingBlob, inventory.BadManifest,
	inventory.UnknownFile, inventory.Irregular, inventory.TransientFile, inventory.OtherAlgorithm,
	inventory.BadUpload, inventory.DanglingTag, inventory.UnreadableFile, inventory.InvalidRepoName,
	inventory.BadName,
}

// Phases are the values of the phase label: a run's parts, then an online run's.
var Phases = []string{"scan", "plan", "delete", "settle", "verify", "purge"}

// New builds the metrics of one run in a fresh registry. rep may be a report of a
// run that stopped early (report.Stopped): its counts are then zero.
func New(rep *report.Report, run Run) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: Prefix + name, Help: help})
		g.Set(v)
		reg.MustRegister(g)
	}
	vec := func(name, help, label string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: Prefix + name, Help: help}, []string{label})
		reg.MustRegister(g)
		return g
	}

	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: Prefix + "info",
		Help: "The last run's storage and clean-registry's version, as labels; always 1."}, []string{"storage", "version"})
	info.WithLabelValues(rep.Storage, run.Version).Set(1)
	reg.MustRegister(info)

	gauge("last_run_start_timestamp_seconds", "When the last run started, in seconds since the Unix epoch.", unix(run.Start))
	gauge("last_run_end_timestamp_seconds", "When the last run ended, in seconds since the Unix epoch.", unix(run.End))
	gauge("last_run_success", "Whether the last run did what was asked: 1 or 0 (problems found in the storage "+
		"do not make it fail: see clean_registry_problems).", bool01(run.Success))
	gauge("last_run_exit_status", "The last run's exit status.", float64(run.ExitStatus))
	gauge("last_run_dry_run", "Whether the last run was a dry run (--dry-run): 1 or 0.", bool01(rep.DryRun))
	gauge("last_run_completed", "Whether the last run carried out its whole plan (always 0 for a run that stopped before it had one): 1 or 0.",
		bool01(rep.Completed))
	gauge("last_run_seconds", "The last run's wall-clock seconds (the report's; see clean_registry_phase_seconds).", rep.Seconds)

	phases := vec("phase_seconds", "The last run's wall-clock seconds per phase: scan, plan, delete; "+
		"settle, verify and purge for an online run.", "phase")
	phases.WithLabelValues("scan").Set(rep.Phases.Scan)
	phases.WithLabelValues("plan").Set(rep.Phases.Plan)
	phases.WithLabelValues("delete").Set(rep.Phases.Delete)
	if o := rep.Online; o != nil {
		phases.WithLabelValues("settle").Set(o.SettleSeconds)
		phases.WithLabelValues("verify").Set(o.VerifySeconds)
		phases.WithLabelValues("purge").Set(o.PurgeSeconds)
	}

	gauge("files_scanned", "Files the last run listed in the storage.", float64(rep.Scanned))
	deletions := vec("deletions", "Deletions of the last run's plan by kind: carried out by a completed real run, "+
		"only planned by a dry run or one that stopped early (see clean_registry_deletions_applied).", "kind")
	bytes := vec("deletion_bytes", "Bytes the last run's deletions free, by kind (moved to the trash instead "+
		"with --keep-deleted; only planned by a dry run).", "kind")
	for _, k := range plan.Kinds {
		c := rep.ByKind[k.String()]
		deletions.WithLabelValues(k.String()).Set(float64(c.Count))
		bytes.WithLabelValues(k.String()).Set(float64(c.Bytes))
	}
	for k, c := range rep.ByKind { // a kind this package does not know yet
		deletions.WithLabelValues(k).Set(float64(c.Count))
		bytes.WithLabelValues(k).Set(float64(c.Bytes))
	}
	gauge("deletions_applied", "Deletions the last run carried out (0 in a dry run).", float64(rep.Applied))
	kept := vec("kept", "What the last run kept: manifest revisions and blobs.", "kind")
	kept.WithLabelValues("revision").Set(float64(rep.Kept.Revisions))
	kept.WithLabelValues("blob").Set(float64(rep.Kept.Blobs))
	gauge("kept_bytes", "Bytes of the blobs the last run kept: stored sizes where the storage told them, else the sizes "+
		"their manifests declare (see clean_registry_kept_unknown_sizes).", float64(rep.Kept.Bytes))
	gauge("kept_unknown_sizes", "Blobs the last run kept whose size neither the storage nor a manifest told (not in "+
		"clean_registry_kept_bytes).", float64(rep.Kept.UnknownSizes))

	problems := vec("problems", "Problems the last run found in the storage, by kind (see the report).", "kind")
	for _, k := range ProblemKinds {
		problems.WithLabelValues(string(k))
	}
	for _, p := range rep.Problems {
		problems.WithLabelValues(string(p.Kind)).Inc()
	}
	gauge("failures", "Named repositories or tags the last run could not find (exit status 1).", float64(len(rep.Failures)))

	if len(rep.Requests) > 0 {
		requests := vec("storage_requests", "Requests the last run sent to the storage, by operation "+
			"(only for the storages that count them: not the filesystem).", "op")
		ops := make([]string, 0, len(rep.Requests))
		for op := range rep.Requests {
			ops = append(ops, op)
		}
		sort.Strings(ops)
		for _, op := range ops {
			requests.WithLabelValues(op).Set(float64(rep.Requests[op]))
		}
	}
	if o := rep.Online; o != nil {
		gauge("online_quarantined", "Files the last (online) run moved into its quarantine.", float64(o.Quarantined))
		gauge("online_put_back", "Files the last (online) run put back because the live registry needed them.", float64(len(o.Restored)))
		gauge("online_restart_required", "Whether the registry must be restarted before the next push "+
			"(an in-memory blob descriptor cache the last run could not restart): 1 or 0.", bool01(o.RestartRequired))
	}
	return reg
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WriteFile writes g's metrics in the Prometheus text format to path atomically: a
// temporary file in the same directory (named so that node_exporter's textfile
// collector, which reads *.prom, ignores it), synced, then renamed over path.
func WriteFile(path string, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(tmp, mf); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Chmod(0o644); err != nil { // node_exporter often runs as another user
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// PushTimeout bounds a push to a Pushgateway.
const PushTimeout = 30 * time.Second

// Push replaces the metrics of the group {job="clean_registry",instance=instance}
// on the Pushgateway at url with g's (an HTTP PUT).
func Push(ctx context.Context, url, instance string, g prometheus.Gatherer) error {
	ctx, cancel := context.WithTimeout(ctx, PushTimeout)
	defer cancel()
	err := push.New(url, Job).Grouping("instance", instance).Gatherer(g).
		Client(&http.Client{Timeout: PushTimeout}).PushContext(ctx)
	if err != nil {
		return fmt.Errorf("pushing the metrics to %s: %w", url, err)
	}
	return nil
}
