// Package cli is clean-registry's command line: the seed's (clean_registry v1.4),
// unchanged, plus options of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/blobcache"
	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
	"github.com/clean-registry/clean-registry/v2/internal/regconfig"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/spf13/pflag"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...";
// left as it is, a binary that "go install ...@vX.Y.Z" built says X.Y.Z instead
// (see version).
var Version = devVersion

// devVersion is Version when the build does not set it.
const devVersion = "2.0.0-dev"

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1 // a fatal error, or a failure for one of the named repositories
	ExitUsage = 2 // the command line itself is wrong
	// ExitProblems: the run is done (or, dry, planned), but problems were found in
	// the storage, each listed in the report. A failure (ExitError) wins over it.
	ExitProblems = 3
)

// DefaultSettle outlasts the requests of a registry serving pushes: a manifest PUT
// or an upload's last PUT, which read what exists and then write links to it.
const DefaultSettle = time.Minute

// DefaultGrace protects pushes in flight when the tool cannot know the registry is
// quiesced.
const DefaultGrace = time.Hour

const usageHead = `Usage: %[1]s [OPTIONS] SERVICE|CONTAINER|VOLUME [REPOSITORY[:TAG]]...
       %[1]s [OPTIONS] --root DIR|--config FILE [REPOSITORY[:TAG]]...
       %[1]s trash list|purge ...    (see %[1]s trash --help)
       %[1]s restore ...             (see %[1]s restore --help)
       %[1]s check ...               (do all images pull whole? see %[1]s check --help)
       %[1]s du ...                  (where the space goes: see %[1]s du --help)
       %[1]s version [--json]        (as --version; --json: with the build's details)
       %[1]s clean ...               (the first forms, for a container named
                                      like a command: %[1]s clean du)
       %[1]s completion SHELL        (a completion script for bash, zsh or fish:
                                      see %[1]s completion --help)

Purges untagged manifests, removes repositories or tags, and deletes the blobs no
kept manifest references, in a Docker/OCI distribution registry's storage.
Without REPOSITORY arguments the whole registry is cleaned.

Options:
`

const usageTail = `
Exit status: 0 done, the storage sound; 1 an error, or a named repository or tag
that does not exist; 2 a bad command line; 3 done (with -n: planned), but
problems were found in the storage, each listed in the report (1 wins over 3;
with --online, a write of the registry that was under way during the scan and is
finished by the end of the run is listed apart and does not count).
With --json, stdout always holds one JSON document, with "completed": false and
"error" when the run stopped early.
`

// mainUsage is the main command's --help, its options generated from its flags.
func mainUsage(prog string) string {
	return fmt.Sprintf(usageHead, prog) + flagHelp(mainFlags(prog, new(options))) + usageTail
}

// Main runs the command line and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

type options struct {
	remove, volume, quiet, version, help, dryRun, json bool
	stop, noRestart, online                            bool
	root, config                                       string
	metricsFile, pushgateway                           string
	progress                                           string
	grace, uploadAge, wait, settle, keepDeleted        time.Duration
	jobs                                               int
	graceSet                                           bool

	// Retention: the keep flags, or a policy file.
	keepLast               int
	keepWithin             time.Duration
	keepTags               []string
	tags, policyFile       string
	deleteOrphanSignatures bool
	retention              *policy.Policy
}

// MaxJobs bounds --jobs: past a thousand concurrent operations no storage gets
// faster, and a typo of a few zeros must not start a million goroutines.
const MaxJobs = 1024

func defaultJobs() int { return min(max(16, 4*runtime.NumCPU()), MaxJobs) }

// outcome is how a run ends: its exit status, its report (nil when it stopped
// before it had a plan) and the error that stopped it, if any.
type outcome struct {
	code  int
	rep   *report.Report
	err   error
	stage string // where err happened, for the JSON report
	usage bool   // a command-line error: the usage text follows it
}

func usageError(format string, args ...any) outcome {
	return outcome{code: ExitUsage, err: fmt.Errorf(format, args...), stage: "command line", usage: true}
}

func failed(stage string, err error) outcome {
	return outcome{code: ExitError, err: err, stage: stage}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	prog := "clean-registry"
	if len(os.Args) > 0 {
		prog = filepath.Base(os.Args[0])
	}
	if len(args) > 0 && (args[0] == "trash" || args[0] == "restore") {
		return runTrash(ctx, prog, args, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "check" {
		return runCheck(ctx, prog, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "du" {
		return runDu(ctx, prog, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "version" {
		return runVersion(prog, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "completion" {
		return runCompletion(prog, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "clean" {
		args = args[1:] // the seed's form, whatever the target's name
	}
	usage := mainUsage(prog)
	var o options
	start := time.Now()
	out := parseAndRun(ctx, prog, usage, args, &o, stdout, stderr)
	return o.exportMetrics(ctx, out, start, finish(ctx, out, o, usage, args, stdout, stderr), stderr)
}

// finish is the one exit path: the error on stderr, and with --json exactly one
// JSON document on stdout, whatever the stage the run stopped at.
func finish(ctx context.Context, out outcome, o options, usage string, args []string, stdout, stderr io.Writer) int {
	msg := ""
	if out.err != nil {
		msg = strings.TrimSpace(out.err.Error())
		if ctx.Err() != nil && out.stage != "command line" {
			msg = "interrupted: " + msg + " (a rerun completes the cleaning)"
		}
		fmt.Fprintln(stderr, "ERROR: "+msg)
		if out.usage {
			fmt.Fprint(stderr, usage)
		}
	}
	// --help and --version print what was asked for, and no report.
	if (out.rep != nil || out.err != nil) && (o.json || (out.stage == "command line" && wantsJSON(args))) {
		rep := out.rep
		if rep == nil {
			rep = report.Stopped(storageName(o), out.stage, nil)
		}
		if out.err != nil {
			rep.Completed = false
			rep.Error, rep.Stage = msg, out.stage
		}
		if err := rep.WriteJSON(stdout); err != nil && out.err == nil {
			fmt.Fprintln(stderr, "ERROR: writing the JSON report: "+err.Error())
			return ExitError
		}
	}
	if out.err == nil && out.rep != nil && len(out.rep.Failures) > 0 {
		return ExitError
	}
	if out.code == ExitOK && out.rep != nil && len(out.rep.Problems) > 0 {
		return ExitProblems
	}
	return out.code
}

// wantsJSON tells whether a command line that could not be parsed asked for JSON.
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "--json=true":
			return true
		}
	}
	return false
}

// storageName names the storage of a run that stopped before opening it.
func storageName(o options) string {
	if o.root != "" {
		return o.root
	}
	return o.config
}

func parseAndRun(ctx context.Context, prog, usage string, args []string, o *options, stdout, stderr io.Writer) outcome {
	flags := mainFlags(prog, o)
	if err := flags.Parse(args); err != nil {
		return usageError("%v", err)
	}
	o.graceSet = flags.Changed("grace")
	switch {
	case o.help:
		fmt.Fprint(stdout, usage)
		return outcome{code: ExitOK}
	case o.version:
		fmt.Fprintf(stdout, "%s %s\n", prog, version())
		return outcome{code: ExitOK}
	}
	for _, name := range []string{"root", "config", "policy"} {
		if flags.Changed(name) && strings.TrimSpace(flags.Lookup(name).Value.String()) == "" {
			return usageError("--%s needs a path, not an empty string", name)
		}
	}
	switch {
	case o.root != "" && o.config != "":
		return usageError("--root and --config exclude each other")
	case o.jobs < 1 || o.jobs > MaxJobs:
		return usageError("--jobs must be within 1..%d, not %d", MaxJobs, o.jobs)
	case checkProgressMode(o.progress) != nil:
		return usageError("%v", checkProgressMode(o.progress))
	case flags.Changed("settle") && !o.online:
		return usageError("--settle is for online runs: add --online")
	case o.online && o.stop:
		return usageError("--online and --stop exclude each other: an online run stops nothing")
	}
	if o.root != "" || o.config != "" {
		direct := "--root"
		if o.config != "" {
			direct = "--config"
		}
		for _, f := range []struct{ name, why string }{
			{"stop", "there is no container to stop"},
			{"no-restart", "there is no container to restart"},
			{"volume", "the storage is given, not a volume"},
		} {
			if flags.Changed(f.name) {
				return usageError("--%s is for Docker targets, not with %s: %s", f.name, direct, f.why)
			}
		}
	}
	if out, bad := o.checkMetricsFlags(flags.Changed("metrics-file"), flags.Changed("pushgateway")); bad {
		return out
	}
	if out, bad := o.readRetention(flags); bad {
		return out
	}
	positional := flags.Args()
	direct := o.root != "" || o.config != ""
	if !direct && len(positional) == 0 {
		// The seed's answer to no arguments: the usage, exit 1.
		if o.json {
			fmt.Fprint(stderr, usage)
			return failed("command line", errors.New("no target given"))
		}
		fmt.Fprint(stdout, usage)
		return outcome{code: ExitError}
	}
	names := positional
	if !direct {
		names = positional[1:]
	}
	selectors := make([]clean.Selector, 0, len(names))
	for _, n := range names {
		repo, tag, err := layout.ParseReference(n)
		if err != nil {
			//lint:ignore ST1005 the seed's message, which scripts match
			return failed("command line", fmt.Errorf("Invalid Docker repository/tag: %s", n))
		}
		selectors = append(selectors, clean.Selector{Repo: repo, Tag: tag})
	}
	if o.retention != nil {
		if o.remove {
			return usageError("-x cannot be combined with keep rules: remove tags in one run, apply retention in another")
		}
		for _, sel := range selectors {
			if sel.Tag != "" {
				return usageError("%s: keep rules take REPOSITORY arguments, not REPOSITORY:TAG", sel)
			}
		}
	}
	if o.remove && len(selectors) == 0 {
		//lint:ignore ST1005 the seed's message, which scripts match
		return failed("command line", errors.New("The -x option requires that you specify at least one repository..."))
	}
	if !direct {
		return runDocker(ctx, positional[0], selectors, *o, stdout, stderr)
	}

	target, err := openTarget(ctx, *o)
	if err != nil {
		return failed("target", err)
	}
	grace := o.grace
	if !o.graceSet && target.quiesced {
		grace = 0
	}
	opts := o.cleanOptions(selectors, grace)
	target.onlineHooks(opts.Online)
	return runClean(ctx, target.backend, opts, *o, stdout, stderr)
}

// mainFlags defines the main command's flags, with their help, on o; --help lists
// them in this order.
func mainFlags(prog string, o *options) *pflag.FlagSet {
	flags := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	flags.BoolVarP(&o.remove, "remove", "x", false, "Remove the specified images or repositories.")
	flags.BoolVarP(&o.volume, "volume", "v", false, "Specify a volume instead of container.")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Supress non-error messages.")
	flags.BoolVarP(&o.version, "version", "V", false, "Show version and exit.")
	flags.BoolVarP(&o.help, "help", "h", false, "Show this help and exit.")
	flags.BoolVarP(&o.dryRun, "dry-run", "n", false, "Print what would be deleted; delete nothing.")
	flags.StringVar(&o.root, "root", "", "The registry's storage root directory (its rootdirectory).")
	flags.StringVar(&o.config, "config", "", "The registry's config.yml (REGISTRY_* environment variables override it, as for the registry).")
	o.grace, o.uploadAge = DefaultGrace, 24*time.Hour
	flags.Var((*policy.DurationFlag)(&o.grace), "grace", "Keep everything younger than this, to protect new uploads "+
		"(default 1h; 0 when the registry is known to be stopped, paused or read-only). Durations take d and w besides h, m and s.")
	flags.Var((*policy.DurationFlag)(&o.uploadAge), "upload-age", "Purge unfinished uploads older than this (default 24h).")
	flags.BoolVar(&o.json, "json", false, "Print a JSON report on stdout instead of text.")
	flags.StringVar(&o.progress, "progress", progressAuto, "Progress bars on stderr: auto (on a terminal), always or never; "+
		"never with -q.")
	flags.BoolVar(&o.stop, "stop", false, "Stop and start the registry's containers instead of pausing them "+
		"(not for Swarm services). Docker targets only, as -v and --no-restart.")
	flags.BoolVar(&o.noRestart, "no-restart", false, "Only unpause a registry whose blob descriptor cache may name "+
		"deleted blobs (by default it is restarted).")
	flags.IntVarP(&o.jobs, "jobs", "j", defaultJobs(), jobsUsage())
	flags.IntVar(&o.keepLast, "keep-last", 0, "Retention: keep the N most recently pushed tags of each repository "+
		"(of those --tags selects); delete the rest.")
	flags.Var((*policy.DurationFlag)(&o.keepWithin), "keep-within", "Retention: keep tags pushed within DURATION (30d, 2w).")
	flags.StringArrayVar(&o.keepTags, "keep-tag", nil, "Retention: keep tags whose whole name matches (repeatable).")
	flags.StringVar(&o.tags, "tags", "", "Retention: the tags the keep rules decide on (default: all); other tags "+
		"are kept. Signature tags (sha256-<hex>*) are never selected: they follow their subject.")
	flags.StringVar(&o.policyFile, "policy", "", "Retention rules per repository, from a YAML file.")
	flags.BoolVar(&o.deleteOrphanSignatures, "delete-orphan-signatures", false, "Also delete signature tags "+
		"whose subject no repository of the registry holds.")
	flags.BoolVar(&o.online, "online", false, "Clean while the registry keeps serving: deletions are moved into "+
		"a quarantine, what the live registry needs meanwhile is put back after --settle, then the rest is deleted. "+
		"Docker targets are not paused.")
	o.settle = DefaultSettle
	flags.Var((*policy.DurationFlag)(&o.settle), "settle", "Online: wait this long after the moves before the "+
		"verification, longer than any request the registry serves (default 1m; skipped after a restart).")
	flags.Var((*policy.DurationFlag)(&o.wait), "wait", "When another real run holds the storage's lock, wait up to "+
		"this long for it (default 0: exit 1 at once). Dry runs take no lock and never wait.")
	flags.Var((*policy.DurationFlag)(&o.keepDeleted), "keep-deleted", "Move what the run deletes into the storage's "+
		`trash and keep it this long (7d, 2w), restorable with "restore"; the bytes are freed when it expires `+
		"(default 0: delete for good).")
	flags.StringVar(&o.metricsFile, "metrics-file", "", "After the run (also a failed one), write its metrics in "+
		"the Prometheus text format to FILE, atomically (for node_exporter's textfile collector: *.prom).")
	flags.StringVar(&o.pushgateway, "pushgateway", "", `Push the run's metrics to this Prometheus Pushgateway `+
		`(job "clean_registry", instance: the storage). A failure to export is a warning: the exit status stays the run's.`)
	return flags
}

// jobsUsage is --jobs' help, the same for every command.
func jobsUsage() string {
	return fmt.Sprintf("Concurrent storage operations, 1 to %d (default %d).", MaxJobs, defaultJobs())
}

// cleanOptions are the options of one run, from the command line's.
func (o options) cleanOptions(selectors []clean.Selector, grace time.Duration) clean.Options {
	return clean.Options{Select: selectors, Remove: o.remove, DryRun: o.dryRun, Grace: grace, UploadAge: o.uploadAge, Jobs: o.jobs,
		Retention: o.retention, DeleteOrphanSignatures: o.deleteOrphanSignatures, Online: o.onlineOptions(),
		KeepDeleted: o.keepDeleted}
}

// onlineOptions are an online run's options without the cache hooks, which depend
// on the target; nil for an offline run.
func (o options) onlineOptions() *clean.Online {
	if !o.online {
		return nil
	}
	return &clean.Online{Settle: o.settle}
}

// target is the storage to clean, and whether the registry is known not to write.
type target struct {
	backend  storage.Backend
	quiesced bool
	// The registry's blob descriptor cache, when its configuration was read.
	cache      string
	redis      *blobcache.Redis
	cacheKnown bool
}

func openTarget(ctx context.Context, o options) (*target, error) {
	if o.root != "" {
		b, err := fs.New(o.root, o.jobs)
		if err != nil {
			return nil, err
		}
		return &target{backend: b}, nil
	}
	st, err := regconfig.Load(o.config, os.Environ())
	if err != nil {
		return nil, err
	}
	b, err := openBackend(ctx, st.Driver, st.Parameters, st.RootDirectory(), o.jobs)
	if err != nil {
		return nil, err
	}
	return &target{backend: b, quiesced: st.ReadOnly, cache: st.BlobDescriptorCache, redis: st.Redis, cacheKnown: true}, nil
}

// onlineHooks are the cache hooks of an online run on a storage given directly:
// redis is cleared after the moves and after the verification; an in-memory cache
// cannot be reached from here, so the report asks for a restart.
func (t *target) onlineHooks(on *clean.Online) {
	if on == nil {
		return
	}
	switch {
	case !t.cacheKnown:
		on.AfterMoves = func(_ context.Context, rep *report.Report) (bool, error) {
			rep.Notes = append(rep.Notes, "online: with --root the registry's blob descriptor cache is unknown: "+
				"restart the registry now unless it keeps none (or give --config, and redis is cleared)")
			return false, nil
		}
	case t.cache == blobcache.KindInMemory:
		on.AfterMoves = func(_ context.Context, rep *report.Report) (bool, error) {
			rep.Online.RestartRequired = blobcache.OutcomeOf(rep).CacheStale()
			return false, nil
		}
	case t.cache == blobcache.KindRedis:
		clearRedis := func(ctx context.Context, rep *report.Report) error {
			if err := t.redis.Clear(ctx, blobcache.OutcomeOf(rep)); err != nil {
				return fmt.Errorf("%w; %s", err, blobcache.Advice(t.redis))
			}
			return nil
		}
		on.AfterMoves = func(ctx context.Context, rep *report.Report) (bool, error) { return false, clearRedis(ctx, rep) }
		on.AfterVerify = clearRedis
	}
}

// runClean runs one cleaning of b; a real run holds the storage's lock throughout.
func runClean(ctx context.Context, b storage.Backend, opts clean.Options, o options, stdout, stderr io.Writer) outcome {
	if !o.quiet && !o.json {
		opts.Log = stdout
	}
	if !opts.DryRun {
		release, err := takeLock(ctx, b, o, stderr)
		if err != nil {
			return failed("lock", err)
		}
		defer release()
	}
	return runCleanLocked(ctx, b, opts, o, stdout, stderr)
}

// runCleanLocked is runClean for a caller that holds the lock (or a dry run).
func runCleanLocked(ctx context.Context, b storage.Backend, opts clean.Options, o options, stdout, stderr io.Writer) outcome {
	opts, stop := o.withProgress(opts, stderr)
	rep, err := clean.Run(ctx, b, opts)
	stop()
	if rep != nil {
		if !o.json && !o.quiet {
			rep.WriteText(stdout)
		}
		for _, f := range rep.Failures {
			fmt.Fprintln(stderr, "ERROR: "+f)
		}
	}
	if err != nil {
		stage := "delete"
		if rep == nil {
			stage = "scan"
		}
		return outcome{code: ExitError, rep: rep, err: err, stage: stage}
	}
	return outcome{code: ExitOK, rep: rep}
}

// readRetention builds the retention policy from the keep flags or the policy file,
// before anything touches storage; a bad rule is a usage error naming what is wrong.
func (o *options) readRetention(flags *pflag.FlagSet) (outcome, bool) {
	var f policy.Flags
	if flags.Changed("keep-last") {
		f.KeepLast = &o.keepLast
	}
	if flags.Changed("keep-within") {
		f.KeepWithin = &o.keepWithin
	}
	f.KeepTags, f.Tags = o.keepTags, o.tags
	fromFlags, err := policy.FromFlags(f)
	if err != nil {
		return usageError("%v", err), true
	}
	if o.policyFile == "" {
		o.retention = fromFlags
		return outcome{}, false
	}
	if fromFlags != nil || flags.Changed("tags") {
		return usageError("--policy cannot be combined with --keep-last, --keep-within, --keep-tag or --tags"), true
	}
	if o.retention, err = policy.Load(o.policyFile); err != nil {
		return usageError("%v", err), true
	}
	return outcome{}, false
}
