// Package cli is clean-registry's command line: the seed's (clean_registry v1.4),
// unchanged, plus options of its own.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/clean-registry/clean-registry/internal/clean"
	"github.com/clean-registry/clean-registry/internal/layout"
	"github.com/clean-registry/clean-registry/internal/regconfig"
	"github.com/clean-registry/clean-registry/internal/report"
	"github.com/clean-registry/clean-registry/internal/storage"
	"github.com/clean-registry/clean-registry/internal/storage/fs"
	"github.com/spf13/pflag"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "2.0.0-dev"

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1 // a fatal error, or a failure for one of the named repositories
	ExitUsage = 2 // the command line itself is wrong
)

// DefaultGrace protects pushes in flight when the tool cannot know the registry is
// quiesced.
const DefaultGrace = time.Hour

const usageText = `Usage: %[1]s [OPTIONS] SERVICE|CONTAINER|VOLUME [REPOSITORY[:TAG]]...
       %[1]s [OPTIONS] --root DIR|--config FILE [REPOSITORY[:TAG]]...

Purges untagged manifests, removes repositories or tags, and deletes the blobs no
kept manifest references, in a Docker/OCI distribution registry's storage.
Without REPOSITORY arguments the whole registry is cleaned.

Options:
  -x, --remove          Remove the specified images or repositories.
  -v, --volume          Specify a volume instead of container.
  -q, --quiet           Supress non-error messages.
  -V, --version         Show version and exit.
  -h, --help            Show this help and exit.
  -n, --dry-run         Print what would be deleted; delete nothing.
      --root DIR        The registry's storage root directory (its rootdirectory).
      --config FILE     The registry's config.yml (REGISTRY_* environment
                        variables override it, as for the registry).
      --grace DURATION  Keep everything younger than this, to protect pushes in
                        flight (default 1h; 0 when the registry is known to be
                        stopped, paused or read-only).
      --upload-age DURATION
                        Purge unfinished uploads older than this (default 24h).
      --json            Print a JSON report on stdout instead of text.
      --stop            Stop and start the registry's containers instead of
                        pausing them (not for Swarm services).
      --no-restart      Only unpause a registry whose blob descriptor cache may
                        name deleted blobs (by default it is restarted).
  -j, --jobs N          Concurrent storage operations (default %[2]d).
`

// Main runs the command line and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

type options struct {
	remove, volume, quiet, version, help, dryRun, json bool
	stop, noRestart                                    bool
	root, config                                       string
	grace, uploadAge                                   time.Duration
	jobs                                               int
	graceSet                                           bool
}

func defaultJobs() int { return max(16, 4*runtime.NumCPU()) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	prog := "clean-registry"
	if len(os.Args) > 0 {
		prog = filepath.Base(os.Args[0])
	}
	usage := fmt.Sprintf(usageText, prog, defaultJobs())
	var o options
	flags := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.BoolVarP(&o.remove, "remove", "x", false, "")
	flags.BoolVarP(&o.volume, "volume", "v", false, "")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "")
	flags.BoolVarP(&o.version, "version", "V", false, "")
	flags.BoolVarP(&o.help, "help", "h", false, "")
	flags.BoolVarP(&o.dryRun, "dry-run", "n", false, "")
	flags.StringVar(&o.root, "root", "", "")
	flags.StringVar(&o.config, "config", "", "")
	flags.DurationVar(&o.grace, "grace", DefaultGrace, "")
	flags.DurationVar(&o.uploadAge, "upload-age", 24*time.Hour, "")
	flags.BoolVar(&o.json, "json", false, "")
	flags.BoolVar(&o.stop, "stop", false, "")
	flags.BoolVar(&o.noRestart, "no-restart", false, "")
	flags.IntVarP(&o.jobs, "jobs", "j", defaultJobs(), "")
	if err := flags.Parse(args); err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n%s", err, usage)
		return ExitUsage
	}
	o.graceSet = flags.Changed("grace")
	switch {
	case o.help:
		fmt.Fprint(stdout, usage)
		return ExitOK
	case o.version:
		fmt.Fprintf(stdout, "%s %s\n", prog, Version)
		return ExitOK
	}
	if o.root != "" && o.config != "" {
		fmt.Fprintf(stderr, "ERROR: --root and --config exclude each other\n%s", usage)
		return ExitUsage
	}
	if o.jobs < 1 || o.grace < 0 || o.uploadAge < 0 {
		fmt.Fprintf(stderr, "ERROR: --jobs must be at least 1, --grace and --upload-age not negative\n%s", usage)
		return ExitUsage
	}
	positional := flags.Args()
	direct := o.root != "" || o.config != ""
	if !direct && len(positional) == 0 {
		fmt.Fprint(stdout, usage)
		return ExitError
	}
	names := positional
	if !direct {
		names = positional[1:]
	}
	selectors := make([]clean.Selector, 0, len(names))
	for _, n := range names {
		repo, tag, err := layout.ParseReference(n)
		if err != nil {
			fmt.Fprintf(stderr, "ERROR: Invalid Docker repository/tag: %s\n", n)
			return ExitError
		}
		selectors = append(selectors, clean.Selector{Repo: repo, Tag: tag})
	}
	if o.remove && len(selectors) == 0 {
		fmt.Fprintln(stderr, "ERROR: The -x option requires that you specify at least one repository...")
		return ExitError
	}
	if !direct {
		return runDocker(ctx, positional[0], selectors, o, stdout, stderr)
	}

	target, err := openTarget(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return ExitError
	}
	grace := o.grace
	if !o.graceSet && target.quiesced {
		grace = 0
	}
	return runClean(ctx, target.backend, o.cleanOptions(selectors, grace), o, stdout, stderr)
}

// cleanOptions are the options of one run, from the command line's.
func (o options) cleanOptions(selectors []clean.Selector, grace time.Duration) clean.Options {
	return clean.Options{Select: selectors, Remove: o.remove, DryRun: o.dryRun, Grace: grace, UploadAge: o.uploadAge, Jobs: o.jobs}
}

// target is the storage to clean, and whether the registry is known not to write.
type target struct {
	backend  storage.Backend
	quiesced bool
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
	return &target{backend: b, quiesced: st.ReadOnly}, nil
}

func runClean(ctx context.Context, b storage.Backend, opts clean.Options, o options, stdout, stderr io.Writer) int {
	code, _ := runCleanReport(ctx, b, opts, o, stdout, stderr)
	return code
}

// runCleanReport is runClean that also returns the report (nil when the scan failed).
func runCleanReport(ctx context.Context, b storage.Backend, opts clean.Options, o options, stdout, stderr io.Writer) (int, *report.Report) {
	if !o.quiet && !o.json {
		opts.Log = stdout
	}
	rep, err := clean.Run(ctx, b, opts)
	if rep != nil {
		if o.json {
			if jerr := rep.WriteJSON(stdout); jerr != nil && err == nil {
				err = jerr
			}
		} else if !o.quiet {
			rep.WriteText(stdout)
		}
		for _, f := range rep.Failures {
			fmt.Fprintln(stderr, "ERROR: "+f)
		}
	}
	if err != nil {
		msg := err.Error()
		if ctx.Err() != nil {
			msg = "interrupted: " + msg + " (a rerun completes the cleaning)"
		}
		fmt.Fprintln(stderr, "ERROR: "+strings.TrimSpace(msg))
		return ExitError, rep
	}
	if len(rep.Failures) > 0 {
		return ExitError, rep
	}
	return ExitOK, rep
}
