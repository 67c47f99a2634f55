package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/clean-registry/clean-registry/v2/internal/check"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// ExitBroken is check's status when an image would not pull whole.
const ExitBroken = 3

const checkUsageHead = `Usage: %[1]s check [OPTIONS] SERVICE|CONTAINER|VOLUME [REPOSITORY[:TAG]]...
       %[1]s check [OPTIONS] --root DIR|--config FILE [REPOSITORY[:TAG]]...

Checks, changing nothing, that every tag (or those named) pulls whole: it resolves
to a manifest whose whole graph (index children, configs, layers) is stored, of
the sizes the descriptors say, with the repository's links the registry reads.
Lists each broken image (REPOSITORY:TAG -> what is missing or corrupt). The
registry is neither paused nor locked out: it may keep serving.

Options:
`

const checkUsageTail = `
Exit status: 0 every image checked pulls whole; 1 an error (unreadable storage,
a named repository or tag that does not exist); 2 a bad command line; 3 broken
images were found.
`

// checkCmd is a parsed check command line.
type checkCmd struct {
	o         options
	verify    bool
	target    string // a Docker container, service or volume; "" with --root or --config
	selectors []check.Selector
}

// checkDoc is check's --json document.
type checkDoc struct {
	Command   string `json:"command"`
	Storage   string `json:"storage"`
	Completed bool   `json:"completed"`
	// Healthy: every image checked pulls whole.
	Healthy       bool          `json:"healthy"`
	VerifyDigests bool          `json:"verify_digests"`
	Images        int           `json:"images"`
	Manifests     int           `json:"manifests"`
	Blobs         int           `json:"blobs"`
	Bytes         int64         `json:"bytes"`
	VerifiedBlobs int           `json:"verified_blobs"`
	VerifiedBytes int64         `json:"verified_bytes"`
	Broken        []check.Image `json:"broken"`
	Warnings      []string      `json:"warnings"`
	Error         string        `json:"error,omitempty"`
	Stage         string        `json:"stage,omitempty"`
	Seconds       float64       `json:"seconds"`
}

// runCheck runs `check ...` and returns the exit status.
func runCheck(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	usage := checkUsage(prog)
	started := time.Now()
	cmd, help, err := parseCheck(prog, args)
	doc := &checkDoc{Command: "check", Storage: storageName(cmd.o), VerifyDigests: cmd.verify, Broken: []check.Image{}, Warnings: []string{}}
	switch {
	case help:
		fmt.Fprint(stdout, usage)
		return ExitOK
	case err != nil:
		fmt.Fprintln(stderr, "ERROR: "+err.Error())
		fmt.Fprint(stderr, usage)
		if cmd.o.json || wantsJSON(args) {
			doc.Error, doc.Stage = err.Error(), "command line"
			writeDoc(doc, stdout, stderr)
		}
		return ExitUsage
	}
	code, stage, err := execCheck(ctx, cmd, doc, stdout, stderr)
	doc.Seconds = time.Since(started).Seconds()
	if err != nil {
		msg := strings.TrimSpace(err.Error())
		fmt.Fprintln(stderr, "ERROR: "+msg)
		doc.Error, doc.Stage = msg, stage
	}
	if cmd.o.json && !writeDoc(doc, stdout, stderr) && code == ExitOK {
		return ExitError
	}
	return code
}

// checkUsage is check's --help, its options generated from its flags.
func checkUsage(prog string) string {
	var cmd checkCmd
	var help bool
	return fmt.Sprintf(checkUsageHead, prog) + flagHelp(checkFlags(prog, &cmd, &help)) + checkUsageTail
}

// checkFlags defines check's flags, with their help, on cmd and help.
func checkFlags(prog string, cmd *checkCmd, help *bool) *pflag.FlagSet {
	o := &cmd.o
	flags := pflag.NewFlagSet(prog+" check", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	flags.BoolVar(&cmd.verify, "verify-digests", false, "Also re-hash the content of every blob the checked "+
		"images reference (reads it all).")
	flags.StringVar(&o.root, "root", "", "The registry's storage root directory.")
	flags.StringVar(&o.config, "config", "", "The registry's config.yml (object stores too).")
	flags.BoolVarP(&o.volume, "volume", "v", false, "The first argument is a Docker volume.")
	flags.BoolVar(&o.json, "json", false, "Print one JSON document on stdout instead of text.")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Print only the broken images' lines (and errors).")
	flags.StringVar(&o.progress, "progress", progressAuto, "Progress bars on stderr (the scan, the sizes, the "+
		"digests verified): auto (on a terminal), always or never; never with -q.")
	flags.IntVarP(&o.jobs, "jobs", "j", defaultJobs(), jobsUsage())
	flags.BoolVarP(help, "help", "h", false, "Show this help and exit.")
	return flags
}

// parseCheck parses check's command line (args after "check").
func parseCheck(prog string, args []string) (cmd checkCmd, help bool, err error) {
	o := &cmd.o
	flags := checkFlags(prog, &cmd, &help)
	if err := flags.Parse(args); err != nil {
		return cmd, false, fmt.Errorf("check: %v", err)
	}
	if help {
		return cmd, true, nil
	}
	for _, name := range []string{"root", "config"} {
		if flags.Changed(name) && strings.TrimSpace(flags.Lookup(name).Value.String()) == "" {
			return cmd, false, fmt.Errorf("--%s needs a path, not an empty string", name)
		}
	}
	switch {
	case o.root != "" && o.config != "":
		return cmd, false, errors.New("--root and --config exclude each other")
	case o.jobs < 1 || o.jobs > MaxJobs:
		return cmd, false, fmt.Errorf("--jobs must be within 1..%d, not %d", MaxJobs, o.jobs)
	case checkProgressMode(o.progress) != nil:
		return cmd, false, checkProgressMode(o.progress)
	}
	positional := flags.Args()
	if o.root == "" && o.config == "" {
		if len(positional) == 0 {
			return cmd, false, errors.New("check: no target: give --root DIR, --config FILE or a container, service or volume")
		}
		cmd.target, positional = positional[0], positional[1:]
	} else if o.volume {
		return cmd, false, errors.New("-v names a Docker volume target: not with --root or --config")
	}
	for _, n := range positional {
		repo, tag, err := layout.ParseReference(n)
		if err != nil {
			return cmd, false, fmt.Errorf("invalid repository or tag %q: want REPOSITORY or REPOSITORY:TAG", n)
		}
		cmd.selectors = append(cmd.selectors, check.Selector{Repo: repo, Tag: tag})
	}
	return cmd, false, nil
}

// execCheck opens the target, read-only (no pause, no lock), and checks it.
func execCheck(ctx context.Context, cmd checkCmd, doc *checkDoc, stdout, stderr io.Writer) (code int, stage string, err error) {
	var text io.Writer = stdout
	if cmd.o.quiet || cmd.o.json {
		text = io.Discard
	}
	var b storage.Backend
	if cmd.target == "" {
		t, err := openTarget(ctx, cmd.o)
		if err != nil {
			return ExitError, "target", err
		}
		b = t.backend
	} else {
		c, err := docker.NewClient(ctx)
		if err != nil {
			return ExitError, "target", err
		}
		defer c.Close()
		dopts := docker.Options{Volume: cmd.o.volume, NoRestart: true, Log: text, Warn: stderr}
		reg, err := c.Resolve(ctx, cmd.target, dopts)
		if err != nil {
			return ExitError, "target", err
		}
		for _, n := range reg.Notes {
			fmt.Fprintln(text, n)
		}
		if b, err = dockerBackend(ctx, reg, cmd.o); err != nil {
			return ExitError, "target", err
		}
	}
	doc.Storage = b.String()
	opts := check.Options{Select: cmd.selectors, Jobs: cmd.o.jobs, VerifyDigests: cmd.verify}
	stop := func() {}
	if progressOn(cmd.o.progress, cmd.o.quiet, stderr) {
		opts.Progress = progress.New()
		_, stop = startProgress(opts.Progress, stderr, nil)
	}
	res, err := check.Run(ctx, b, opts)
	stop()
	if err != nil {
		return ExitError, "check", err
	}
	doc.Completed, doc.Healthy = true, len(res.Broken) == 0
	doc.Images, doc.Manifests, doc.Blobs, doc.Bytes = res.Images, res.Manifests, res.Blobs, res.Bytes
	doc.VerifiedBlobs, doc.VerifiedBytes = res.Verified, res.VerifiedBytes
	doc.Broken, doc.Warnings = res.Broken, res.Warnings
	if !cmd.o.json {
		for _, im := range res.Broken {
			for _, is := range im.Issues {
				fmt.Fprintf(stdout, "%s -> %s\n", im, is)
			}
		}
		if !cmd.o.quiet {
			for _, w := range res.Warnings {
				fmt.Fprintln(stderr, "WARNING: "+w)
			}
		}
	}
	checked := fmt.Sprintf("%s, %s, %s", count(res.Manifests, "manifest"), count(res.Blobs, "blob"), report.Bytes(res.Bytes))
	if cmd.verify {
		checked += ", digests verified"
	}
	if len(res.Broken) > 0 {
		fmt.Fprintf(text, "%d of %s checked in %s broken (%s).\n", len(res.Broken), count(res.Images, "image"), b, checked)
		return ExitBroken, "", nil
	}
	fmt.Fprintf(text, "%s checked in %s: all pull whole (%s).\n", count(res.Images, "image"), b, checked)
	return ExitOK, "", nil
}

// count is "1 blob", "2 blobs".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
