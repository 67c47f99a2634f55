package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/usage"
)

const duUsageHead = `Usage: %[1]s du [OPTIONS] SERVICE|CONTAINER|VOLUME [REPOSITORY]...
       %[1]s du [OPTIONS] --root DIR|--config FILE [REPOSITORY]...

Where the space goes, per repository: its tags, its manifests (revisions, tagged
or not), TOTAL the bytes of every blob its manifests reference (manifests, index
children, configs, layers; each once), UNIQUE those no other repository
references or links (what "%[1]s -x REPOSITORY" frees) and SHARED the rest,
which stays for the others. Sorted by UNIQUE, most first; with REPOSITORY
arguments, only those rows. Then the storage's totals, and the bytes no
repository references (what a plain run deletes, once older than --grace).
Read-only: takes no lock, writes nothing, pauses no registry.

Options:
`

const duUsageTail = `
A repository marked "*" holds a manifest that cannot be understood (or blobs
whose size could not be read): its figures are lower bounds.
Exit status: 0 done; 1 an error (a storage that cannot be read, a REPOSITORY
that does not exist); 2 a bad command line.
`

// duCmd is a parsed du command line.
type duCmd struct {
	o      options
	target string // the Docker container, service or volume, if neither --root nor --config
	repos  []string
	top    int
}

// duDoc is du's --json output.
type duDoc struct {
	Command string `json:"command"`
	Storage string `json:"storage"`
	docEnd
	// Repositories are the rows shown (--top, REPOSITORY arguments); Omitted
	// counts the others.
	Repositories []usage.Repo  `json:"repositories"`
	Omitted      int           `json:"omitted"`
	Totals       *usage.Totals `json:"totals,omitempty"`
	Notes        []string      `json:"notes,omitempty"`
	Failures     []string      `json:"failures,omitempty"`
	Problems     int           `json:"problems"`
	Seconds      float64       `json:"seconds"`
}

// runDu runs `du ...` (args after "du") and returns the exit status.
func runDu(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	helpText := duUsage(prog)
	cmd, out, done := parseDu(prog, args, stdout)
	if !done {
		out = execDu(ctx, cmd, stdout, stderr)
	}
	return finishDu(out, cmd, helpText, args, stdout, stderr)
}

// duOutcome is how du ends.
type duOutcome = subOutcome

func duUsageError(format string, args ...any) duOutcome {
	return duOutcome{code: ExitUsage, err: fmt.Errorf("du: "+format, args...), stage: "command line", usage: true}
}

// duUsage is du's --help, its options generated from its flags.
func duUsage(prog string) string {
	var cmd duCmd
	var help bool
	return fmt.Sprintf(duUsageHead, prog) + flagHelp(duFlags(prog, &cmd, &help)) + duUsageTail
}

// duFlags defines du's flags, with their help, on cmd and help.
func duFlags(prog string, cmd *duCmd, help *bool) *pflag.FlagSet {
	o := &cmd.o
	flags := pflag.NewFlagSet(prog+" du", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	flags.IntVar(&cmd.top, "top", 0, "Only the N repositories with the most unique bytes (default 0: all).")
	flags.StringVar(&o.root, "root", "", "The registry's storage root directory.")
	flags.StringVar(&o.config, "config", "", "The registry's config.yml.")
	flags.BoolVarP(&o.volume, "volume", "v", false, "The target is a Docker volume.")
	flags.BoolVar(&o.json, "json", false, "Print one JSON document on stdout instead of text.")
	flags.StringVar(&o.progress, "progress", progressAuto, "Progress bars on stderr (the scan, the blob sizes): "+
		"auto (on a terminal), always or never.")
	flags.IntVarP(&o.jobs, "jobs", "j", defaultJobs(), jobsUsage())
	flags.BoolVarP(help, "help", "h", false, "Show this help and exit.")
	return flags
}

// parseDu parses du's command line; done says it ended there (help, or an error).
func parseDu(prog string, args []string, stdout io.Writer) (cmd duCmd, out duOutcome, done bool) {
	o := &cmd.o
	var help bool
	flags := duFlags(prog, &cmd, &help)
	if err := flags.Parse(args); err != nil {
		return cmd, duUsageError("%v", err), true
	}
	if help {
		fmt.Fprint(stdout, duUsage(prog))
		return cmd, duOutcome{code: ExitOK}, true
	}
	for _, name := range []string{"root", "config"} {
		if flags.Changed(name) && strings.TrimSpace(flags.Lookup(name).Value.String()) == "" {
			return cmd, duUsageError("--%s needs a path, not an empty string", name), true
		}
	}
	switch {
	case o.root != "" && o.config != "":
		return cmd, duUsageError("--root and --config exclude each other"), true
	case o.jobs < 1 || o.jobs > MaxJobs:
		return cmd, duUsageError("--jobs must be within 1..%d, not %d", MaxJobs, o.jobs), true
	case cmd.top < 0:
		return cmd, duUsageError("--top must be 0 (all) or more, not %d", cmd.top), true
	case checkProgressMode(o.progress) != nil:
		return cmd, duUsageError("%v", checkProgressMode(o.progress)), true
	}
	positional := flags.Args()
	if o.root == "" && o.config == "" {
		if len(positional) == 0 {
			return cmd, duUsageError("no target: give --root DIR, --config FILE or a container, service or volume"), true
		}
		cmd.target, positional = positional[0], positional[1:]
	} else if o.volume {
		return cmd, duUsageError("-v names a Docker volume target: not with --root or --config"), true
	}
	for _, n := range positional {
		repo, tag, err := layout.ParseReference(n)
		switch {
		case err != nil:
			return cmd, duOutcome{code: ExitError, stage: "command line",
				err: fmt.Errorf("du: invalid repository %q", n)}, true
		case tag != "":
			return cmd, duUsageError("%s: du counts whole repositories: give REPOSITORY, not REPOSITORY:TAG", n), true
		}
		cmd.repos = append(cmd.repos, repo)
	}
	return cmd, duOutcome{}, false
}

// execDu opens the target, scans it, reads the blob sizes the listing did not
// give, and prints the figures. Nothing is written and no lock is taken.
func execDu(ctx context.Context, cmd duCmd, stdout, stderr io.Writer) duOutcome {
	started := time.Now()
	doc := &duDoc{Command: "du", Storage: storageName(cmd.o), Repositories: []usage.Repo{}}
	fail := func(stage string, err error) duOutcome {
		doc.Seconds = time.Since(started).Seconds()
		return duOutcome{code: ExitError, doc: doc, err: err, stage: stage}
	}
	var text io.Writer = stdout
	if cmd.o.json {
		text = io.Discard
	}
	var b storage.Backend
	if cmd.target == "" {
		t, err := openTarget(ctx, cmd.o)
		if err != nil {
			return fail("target", err)
		}
		b = t.backend
	} else {
		c, err := docker.NewClient(ctx)
		if err != nil {
			return fail("target", err)
		}
		defer c.Close()
		// Only reads: the registry keeps serving; a push meanwhile may be missed or
		// half counted, as by any listing.
		reg, err := c.Resolve(ctx, cmd.target, docker.Options{Volume: cmd.o.volume, Log: text, Warn: stderr})
		if err != nil {
			return fail("target", err)
		}
		for _, n := range reg.Notes {
			fmt.Fprintln(text, n)
		}
		if b, err = dockerBackend(ctx, reg, cmd.o); err != nil {
			return fail("target", err)
		}
	}
	doc.Storage = b.String()
	var tr *progress.Tracker
	stop := func() {}
	if progressOn(cmd.o.progress, false, stderr) {
		tr = progress.New()
		_, stop = startProgress(tr, stderr, nil)
		stop = sync.OnceFunc(stop) // ended before the table, or on the way out
		defer stop()
	}
	inv, err := inventory.ScanTracked(ctx, b, cmd.o.jobs, tr)
	if err != nil {
		return fail("scan", err)
	}
	// A filesystem walk does not stat: a blob's size is read here, once, unless
	// its listing (object stores) or its reading as a manifest gave it.
	st := tr.Begin("reading blob sizes", "blobs", -1)
	if err := inv.CompleteTracked(ctx, b, unsizedBlobs(inv), cmd.o.jobs, st); err != nil {
		return fail("scan", fmt.Errorf("reading blob sizes: %w", err))
	}
	st.End()
	stop()
	u := usage.Compute(inv)
	doc.Problems = len(inv.Problems)
	doc.Totals, doc.Notes = &u.Totals, u.Notes
	rows := u.Repos
	if len(cmd.repos) > 0 {
		want := map[string]bool{}
		for _, r := range cmd.repos {
			want[r] = true
			if inv.Repos[r] == nil {
				doc.Failures = append(doc.Failures, "No such repository: "+r)
			}
		}
		rows = nil
		for _, r := range u.Repos {
			if want[r.Name] {
				rows = append(rows, r)
			}
		}
	}
	shown := rows
	if cmd.top > 0 && len(shown) > cmd.top {
		shown = shown[:cmd.top]
	}
	doc.Repositories = append(doc.Repositories, shown...)
	doc.Omitted = len(u.Repos) - len(shown)
	if err := writeDu(text, doc, len(rows)-len(shown)); err != nil {
		return fail("output", err)
	}
	doc.Seconds = time.Since(started).Seconds()
	if len(doc.Failures) > 0 {
		return duOutcome{code: ExitError, doc: doc, err: errors.New(strings.Join(doc.Failures, "; ")), stage: "du"}
	}
	return duOutcome{code: ExitOK, doc: doc}
}

// unsizedBlobs yields the blobs whose size is not known yet.
func unsizedBlobs(inv *inventory.Inventory) iter.Seq[inventory.Ref] {
	return func(yield func(inventory.Ref) bool) {
		for i, bl := range inv.Blobs {
			if bl.Size < 0 && !yield(inventory.Ref{Kind: layout.KindBlobData, ID: inventory.ID(i)}) {
				return
			}
		}
	}
}

// writeDu prints the table, biggest unique bytes first, like du: the figures,
// then the name. cut counts the rows --top left out.
func writeDu(w io.Writer, doc *duDoc, cut int) error {
	t := doc.Totals
	fmt.Fprintf(w, "Storage %s: %d repositories, %s in %d blobs.\n", doc.Storage, t.Repositories, report.Bytes(t.Bytes), t.Blobs)
	if len(doc.Repositories) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "UNIQUE\tSHARED\tTOTAL\tTAGS\tMANIFESTS\t  REPOSITORY")
		for _, r := range doc.Repositories {
			mark := ""
			if r.LowerBound != "" {
				mark = " *"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t  %s%s\n", report.Bytes(r.UniqueBytes), report.Bytes(r.SharedBytes),
				report.Bytes(r.Bytes), r.Tags, r.Manifests, r.Name, mark)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if cut > 0 {
		fmt.Fprintf(w, "(%d more repositories: --top shows the first ones only)\n", cut)
	}
	fmt.Fprintf(w, "Referenced by some repository: %s (%d blobs). By none: %s (%d blobs), which a plain run deletes "+
		"once older than --grace.\n",
		report.Bytes(t.ReferencedBytes), t.ReferencedBlobs, report.Bytes(t.UnreferencedBytes), t.UnreferencedBlobs)
	fmt.Fprintln(w, `UNIQUE is what "-x REPOSITORY" frees; SHARED stays for the other repositories that reference it.`)
	for _, r := range doc.Repositories {
		if r.LowerBound != "" {
			fmt.Fprintf(w, "* %s: lower bounds: %s\n", r.Name, r.LowerBound)
		}
	}
	for _, n := range doc.Notes {
		fmt.Fprintln(w, "Note: "+n)
	}
	if doc.Problems > 0 {
		fmt.Fprintf(w, "%d problems found in the storage (a dry run lists them).\n", doc.Problems)
	}
	return nil
}

// finishDu ends du: see finishSub.
func finishDu(out duOutcome, cmd duCmd, helpText string, args []string, stdout, stderr io.Writer) int {
	return finishSub(out, cmd.o.json, helpText, args, func() subDoc {
		return &duDoc{Command: "du", Storage: storageName(cmd.o), Repositories: []usage.Repo{}}
	}, stdout, stderr)
}
