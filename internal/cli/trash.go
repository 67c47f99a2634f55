package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/online"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

const trashUsageHead = `Usage: %[1]s trash list [OPTIONS] TARGET
       %[1]s trash purge [OPTIONS] TARGET [RUN]...
       %[1]s restore [OPTIONS] TARGET RUN [REPOSITORY[:TAG]]...

The trash holds what real runs with --keep-deleted deleted, one run per entry,
until it expires. TARGET is a cleaning's: --root DIR, --config FILE, or a
SERVICE|CONTAINER|VOLUME (-v) given as the first argument.

  trash list     The runs in the trash: their time, what they hold (tags,
                 manifests, blobs, files, bytes), when each expires.
  trash purge    Delete runs from the trash for good: the RUNs named, or every
                 run (only those that began before --older-than, if given).
  restore        Put back what run RUN deleted: all of it, or the named
                 repositories and tags with all they need to pull (manifests,
                 index children, referrers, signature tags, blobs). A tag
                 pushed again since the run is not overwritten (reported).
                 Docker targets are paused while it works (--online: not).

Options:
`

const trashUsageTail = `
restore and purge take the storage's lock, as a cleaning does.
Exit status: 0 done; 1 an error (an unknown run, a name the run's trash holds
nothing of); 2 a bad command line.
`

// trashCmd is a parsed trash or restore command line.
type trashCmd struct {
	// name is "list", "purge" or "restore".
	name string
	o    options
	// target is the Docker container, service or volume, when neither --root nor
	// --config is given.
	target string
	// runs are the runs named: restore's one, purge's any.
	runs      []string
	selectors []online.Selector
	olderThan time.Duration
	olderSet  bool
}

// runTrash runs `trash ...` or `restore ...` and returns the exit status.
func runTrash(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	usage := trashUsage(prog)
	cmd, out, done := parseTrash(prog, args, stdout)
	if done {
		return finishTrash(out, cmd, usage, args, stdout, stderr)
	}
	return finishTrash(execTrash(ctx, prog, cmd, stdout, stderr), cmd, usage, args, stdout, stderr)
}

// trashOutcome is how a trash command ends.
type trashOutcome = subOutcome

// trashDoc is the --json output of the trash commands.
type trashDoc struct {
	Command string `json:"command"`
	Storage string `json:"storage"`
	DryRun  bool   `json:"dry_run"`
	docEnd
	// Runs is what trash list found (a pointer: an empty trash gives "runs": []).
	Runs *[]trashRun `json:"runs,omitempty"`
	// Purged names the runs trash purge deleted (would delete, dry run).
	Purged []string `json:"purged,omitempty"`
	// Run is restore's run; Restored what it put back (would put back), Kept the
	// tags pushed again since the run, Missing the names its trash holds nothing
	// of, Present those among them that the storage holds already.
	Run      string            `json:"run,omitempty"`
	Restored []report.Restored `json:"restored,omitempty"`
	Kept     []report.Restored `json:"kept,omitempty"`
	Missing  []string          `json:"missing,omitempty"`
	Present  []string          `json:"present,omitempty"`
	Seconds  float64           `json:"seconds"`
}

// trashRun is one run of the trash.
type trashRun struct {
	Run string `json:"run"`
	// State: "trash" (restorable until it expires), "expired" (purged by the next
	// real run), "purging" (a purge was interrupted: not restorable), "pending" (an
	// interrupted run's quarantine, which the next real run verifies).
	State        string    `json:"state"`
	Began        time.Time `json:"began,omitzero"`
	Keep         string    `json:"keep,omitempty"`
	Expires      time.Time `json:"expires,omitzero"`
	Repositories []string  `json:"repositories"`
	Tags         int       `json:"tags"`
	Manifests    int       `json:"manifests"`
	Blobs        int       `json:"blobs"`
	Files        int       `json:"files"`
	Bytes        int64     `json:"bytes"`
}

func trashUsageError(format string, args ...any) trashOutcome {
	return trashOutcome{code: ExitUsage, err: fmt.Errorf(format, args...), stage: "command line", usage: true}
}

// trashUsage is the help of trash list, trash purge and restore: one text, whose
// options are those of the three.
func trashUsage(prog string) string {
	var cmd trashCmd
	var help bool
	return fmt.Sprintf(trashUsageHead, prog) + flagHelp(trashFlags(prog, "", &cmd, &help)) + trashUsageTail
}

// trashFlags defines the flags of trash command name ("list", "purge" or
// "restore"; "" for the three's, for their help) on cmd and help.
func trashFlags(prog, name string, cmd *trashCmd, help *bool) *pflag.FlagSet {
	o := &cmd.o
	flags := pflag.NewFlagSet(strings.TrimSpace(prog+" "+name), pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	if name != "list" {
		flags.BoolVarP(&o.dryRun, "dry-run", "n", false, "Print what would be restored or purged; change nothing.")
	}
	if name == "purge" || name == "" {
		flags.Var((*policy.DurationFlag)(&cmd.olderThan), "older-than", "purge: only runs that began longer ago than this.")
	}
	flags.StringVar(&o.root, "root", "", "The registry's storage root directory.")
	flags.StringVar(&o.config, "config", "", "The registry's config.yml.")
	flags.BoolVarP(&o.volume, "volume", "v", false, "TARGET is a Docker volume.")
	if name == "restore" || name == "" {
		flags.BoolVar(&o.online, "online", false, "restore, Docker targets: do not pause the registry.")
		flags.BoolVar(&o.stop, "stop", false, "restore, Docker targets: stop and start the registry's containers instead of pausing them.")
	}
	flags.BoolVar(&o.json, "json", false, "Print one JSON document on stdout instead of text.")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "No output but errors.")
	if name != "list" {
		flags.StringVar(&o.progress, "progress", progressAuto, "purge, restore: progress bars on stderr (the files "+
			"planned, put back, purged): auto (on a terminal), always or never; never with -q.")
	}
	flags.IntVarP(&o.jobs, "jobs", "j", defaultJobs(), jobsUsage())
	flags.Var((*policy.DurationFlag)(&o.wait), "wait", "When a real run holds the storage's lock, wait up to this long for it (default 0: exit 1 at once).")
	flags.BoolVarP(help, "help", "h", false, "Show this help and exit.")
	return flags
}

// parseTrash parses a trash or restore command line; done says the command ended
// there (help, or an error in out).
func parseTrash(prog string, args []string, stdout io.Writer) (cmd trashCmd, out trashOutcome, done bool) {
	if len(args) == 0 {
		return cmd, trashUsageError("no command"), true
	}
	rest := args[1:]
	if args[0] == "restore" {
		cmd.name = "restore"
	} else {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") && rest[0] != "-h" && rest[0] != "--help" {
			return cmd, trashUsageError("trash: say list or purge"), true
		}
		switch rest[0] {
		case "list", "purge":
			cmd.name = rest[0]
			rest = rest[1:]
		case "-h", "--help":
			fmt.Fprint(stdout, trashUsage(prog))
			return cmd, trashOutcome{code: ExitOK}, true
		default:
			return cmd, trashUsageError("trash: unknown command %q: say list or purge", rest[0]), true
		}
	}
	o := &cmd.o
	var help bool
	flags := trashFlags(prog, cmd.name, &cmd, &help)
	if err := flags.Parse(rest); err != nil {
		return cmd, trashUsageError("%s: %v", cmd.name, err), true
	}
	if help {
		fmt.Fprint(stdout, trashUsage(prog))
		return cmd, trashOutcome{code: ExitOK}, true
	}
	cmd.olderSet = flags.Changed("older-than")
	for _, name := range []string{"root", "config"} {
		if flags.Changed(name) && strings.TrimSpace(flags.Lookup(name).Value.String()) == "" {
			return cmd, trashUsageError("--%s needs a path, not an empty string", name), true
		}
	}
	switch {
	case o.root != "" && o.config != "":
		return cmd, trashUsageError("--root and --config exclude each other"), true
	case o.jobs < 1 || o.jobs > MaxJobs:
		return cmd, trashUsageError("--jobs must be within 1..%d, not %d", MaxJobs, o.jobs), true
	case o.online && o.stop:
		return cmd, trashUsageError("--online and --stop exclude each other"), true
	case cmd.name != "list" && checkProgressMode(o.progress) != nil:
		return cmd, trashUsageError("%v", checkProgressMode(o.progress)), true
	}
	positional := flags.Args()
	direct := o.root != "" || o.config != ""
	if !direct {
		if len(positional) == 0 {
			return cmd, trashUsageError("%s: no target: give --root DIR, --config FILE or a container, service or volume", cmd.name), true
		}
		cmd.target, positional = positional[0], positional[1:]
	} else if o.volume {
		return cmd, trashUsageError("-v names a Docker volume target: not with --root or --config"), true
	}
	if direct && (o.online || o.stop) {
		return cmd, trashUsageError("--online and --stop are for Docker targets"), true
	}
	switch cmd.name {
	case "list":
		if len(positional) > 0 {
			return cmd, trashUsageError("list: unexpected argument %q", positional[0]), true
		}
	case "purge":
		if len(positional) > 0 {
			cmd.runs = positional
		}
	case "restore":
		if len(positional) == 0 {
			return cmd, trashUsageError("restore: which run? (%s trash list shows them)", prog), true
		}
		cmd.runs = positional[:1]
		for _, n := range positional[1:] {
			repo, tag, err := layout.ParseReference(n)
			if err != nil {
				return cmd, trashOutcome{code: ExitError, stage: "command line",
					err: fmt.Errorf("invalid repository or tag %q: want REPOSITORY or REPOSITORY:TAG", n)}, true
			}
			cmd.selectors = append(cmd.selectors, online.Selector{Repo: repo, Tag: tag})
		}
	}
	for _, run := range cmd.runs {
		if err := validRun(run); err != nil {
			return cmd, trashOutcome{code: ExitError, stage: "command line", err: err}, true
		}
	}
	return cmd, trashOutcome{}, false
}

// validRun checks that a run's name is one (as Begin makes them) and can name no
// other place of the storage.
func validRun(run string) error {
	ok := run != "" && len(run) <= 128 && run != "." && run != ".."
	for _, c := range run {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid run %q: runs are named as trash list shows them, e.g. 20260102T030405Z-1a2b3c4d", run)
	}
	return nil
}

// finishTrash ends a trash command: see finishSub.
func finishTrash(out trashOutcome, cmd trashCmd, usage string, args []string, stdout, stderr io.Writer) int {
	return finishSub(out, cmd.o.json, usage, args, func() subDoc {
		return &trashDoc{Command: cmd.name, Storage: storageName(cmd.o), DryRun: cmd.o.dryRun}
	}, stdout, stderr)
}

// execTrash opens the target and runs the command: restore and purge with the
// storage's lock held, restore with a Docker target's registry quiesced (unless
// --online).
func execTrash(ctx context.Context, prog string, cmd trashCmd, stdout, stderr io.Writer) trashOutcome {
	started := time.Now()
	doc := &trashDoc{Command: cmd.name, Storage: storageName(cmd.o), DryRun: cmd.o.dryRun}
	var text io.Writer = stdout
	if cmd.o.quiet || cmd.o.json {
		text = io.Discard
	}
	// Progress bars on stderr: the command's own lines go through them (see
	// startProgress), and they end before its errors or document are written.
	var tr *progress.Tracker
	if cmd.name != "list" && progressOn(cmd.o.progress, cmd.o.quiet, stderr) {
		tr = progress.New()
		var stop func()
		text, stop = startProgress(tr, stderr, text)
		defer stop()
	}
	fail := func(stage string, err error) trashOutcome {
		doc.Seconds = time.Since(started).Seconds()
		return trashOutcome{code: ExitError, doc: doc, err: err, stage: stage}
	}
	var b storage.Backend
	var withRegistry func(ctx context.Context, fn func(context.Context) error) error
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
		dopts := docker.Options{Volume: cmd.o.volume, Stop: cmd.o.stop, NoRestart: true, Log: text, Warn: stderr}
		reg, err := c.Resolve(ctx, cmd.target, dopts)
		if err != nil {
			return fail("target", err)
		}
		for _, n := range reg.Notes {
			fmt.Fprintln(text, n)
		}
		if b, err = dockerBackend(ctx, reg, cmd.o); err != nil {
			return fail("target", err)
		}
		if cmd.name == "restore" && !cmd.o.online {
			// A restore writes links the registry reads: as a cleaning does, it works
			// on a quiesced registry. It deletes nothing: no cache to refresh.
			withRegistry = func(ctx context.Context, fn func(context.Context) error) error {
				return c.WithQuiesced(ctx, reg, dopts, func(ctx context.Context, _ bool) (docker.Outcome, error) {
					return docker.Outcome{}, fn(ctx)
				})
			}
		}
	}
	doc.Storage = b.String()
	if withRegistry == nil || cmd.o.dryRun {
		withRegistry = func(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
	}
	if cmd.name != "list" && !cmd.o.dryRun {
		release, err := takeLock(ctx, b, cmd.o, stderr)
		if err != nil {
			return fail("lock", err)
		}
		defer release()
	}
	var err error
	var failures []string
	switch cmd.name {
	case "list":
		err = listTrash(ctx, b, cmd, doc, text)
	case "purge":
		err = withRegistry(ctx, func(ctx context.Context) error { return purgeTrash(ctx, prog, b, cmd, doc, text, tr) })
	case "restore":
		err = withRegistry(ctx, func(ctx context.Context) error {
			var rerr error
			failures, rerr = restoreRun(ctx, prog, b, cmd, doc, text, tr)
			return rerr
		})
	}
	if err != nil {
		return fail(cmd.name, err)
	}
	doc.Seconds = time.Since(started).Seconds()
	if len(failures) > 0 {
		return trashOutcome{code: ExitError, doc: doc, err: errors.New(strings.Join(failures, "; ")), stage: cmd.name}
	}
	return trashOutcome{code: ExitOK, doc: doc}
}

// state says what a run's quarantine is, at now.
func state(q *online.Quarantine, now time.Time) string {
	j := q.Journal
	switch {
	case j.IsTrash() && j.Purging:
		return "purging"
	case j.IsTrash() && !now.Before(j.Expires):
		return "expired"
	case j.IsTrash():
		return "trash"
	}
	return "pending"
}

// describe lists q and counts what it holds; blobs whose size the listing did not
// give are stat'ed.
func describe(ctx context.Context, b storage.Backend, q *online.Quarantine, now time.Time, jobs int) (trashRun, error) {
	r := trashRun{Run: q.Run, State: state(q, now), Repositories: []string{}}
	if j := q.Journal; j != nil {
		r.Began = j.Began().UTC()
		if j.Keep > 0 {
			r.Keep = policy.FormatDuration(j.Keep)
		}
		if !j.Expires.IsZero() {
			r.Expires = j.Expires.UTC()
		}
	}
	if err := q.List(ctx, b); err != nil {
		return r, err
	}
	repos := map[string]bool{}
	var unsized []string
	for _, f := range q.Files {
		r.Files++
		info := layout.Classify(f.Path)
		if info.Repo != "" {
			repos[info.Repo] = true
		}
		switch info.Kind {
		case layout.KindTagCurrentLink:
			r.Tags++
		case layout.KindRevisionLink:
			r.Manifests++
		case layout.KindBlobData:
			r.Blobs++
			if f.Size >= 0 {
				r.Bytes += f.Size
			} else {
				unsized = append(unsized, f.Path)
			}
		}
	}
	for repo := range repos {
		r.Repositories = append(r.Repositories, repo)
	}
	sort.Strings(r.Repositories)
	sizes := make([]int64, len(unsized))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for i, p := range unsized {
		g.Go(func() error {
			f, err := b.Stat(gctx, layout.Quarantined(q.Run, p))
			if err == nil {
				sizes[i] = max(f.Size, 0)
			} else if !storage.IsNotExist(err) {
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	for _, s := range sizes {
		r.Bytes += s
	}
	return r, nil
}

// listTrash lists the runs in the trash.
func listTrash(ctx context.Context, b storage.Backend, cmd trashCmd, doc *trashDoc, w io.Writer) error {
	qs, err := online.Load(ctx, b)
	if err != nil {
		return err
	}
	now := time.Now()
	runs := []trashRun{}
	doc.Runs = &runs
	for _, q := range qs {
		r, err := describe(ctx, b, q, now, cmd.o.jobs)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	// Oldest first (run names order by the second only).
	sort.SliceStable(runs, func(i, k int) bool { return runs[i].Began.Before(runs[k].Began) })
	if len(runs) == 0 {
		fmt.Fprintf(w, "The trash of %s is empty.\n", b)
		return nil
	}
	fmt.Fprintf(w, "Trash of %s (%d runs):\n", b, len(runs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  RUN\tSTATE\tBEGAN\tEXPIRES\tTAGS\tMANIFESTS\tBLOBS\tFILES\tBYTES\tREPOSITORIES")
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, r := range runs {
		repos := r.Repositories
		more := ""
		if len(repos) > 4 {
			repos, more = repos[:4], fmt.Sprintf(" (+%d)", len(r.Repositories)-4)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s%s\n", r.Run, r.State, when(r.Began), when(r.Expires),
			r.Tags, r.Manifests, r.Blobs, r.Files, report.Bytes(r.Bytes), strings.Join(repos, " "), more)
	}
	return tw.Flush()
}

// purgeTrash deletes runs of the trash for good: those named, or all (that began
// before --older-than). A pending quarantine is never purged here: the next real
// run verifies it first. tr counts each run's purge.
func purgeTrash(ctx context.Context, prog string, b storage.Backend, cmd trashCmd, doc *trashDoc, w io.Writer, tr *progress.Tracker) error {
	qs, err := online.Load(ctx, b)
	if err != nil {
		return err
	}
	byRun := map[string]*online.Quarantine{}
	for _, q := range qs {
		byRun[q.Run] = q
	}
	now := time.Now()
	var chosen []*online.Quarantine
	if len(cmd.runs) > 0 {
		for _, run := range cmd.runs {
			q := byRun[run]
			switch {
			case q == nil:
				return fmt.Errorf("no run %s in the trash of %s (%s trash list shows its runs)", run, b, prog)
			case state(q, now) == "pending":
				return fmt.Errorf("%s is no trash but the quarantine of a run that was interrupted: the next real run verifies and ends it", run)
			}
			chosen = append(chosen, q)
		}
	} else {
		for _, q := range qs {
			if state(q, now) != "pending" {
				chosen = append(chosen, q)
				continue
			}
			// A quarantine with neither journal nor files is what a purge that
			// stopped after the journal leaves: its empty directories go too.
			if q.Journal == nil {
				if err := q.List(ctx, b); err != nil {
					return err
				}
				if len(q.Files) == 0 {
					chosen = append(chosen, q)
				}
			}
		}
	}
	verb := "purged"
	if cmd.o.dryRun {
		verb = "would purge"
	}
	doc.Purged = []string{}
	for _, q := range chosen {
		if cmd.olderSet && q.Journal != nil && !q.Journal.Began().Before(now.Add(-cmd.olderThan)) {
			continue
		}
		if err := q.List(ctx, b); err != nil {
			return err
		}
		if !cmd.o.dryRun {
			if err := online.Purge(ctx, b, q, cmd.o.jobs, tr); err != nil {
				return fmt.Errorf("purging %s: %w", q.Run, err)
			}
		}
		doc.Purged = append(doc.Purged, q.Run)
		began := "unknown"
		if q.Journal != nil {
			began = q.Journal.Began().UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s %s (%d files, began %s)\n", verb, q.Run, len(q.Files), began)
	}
	if len(doc.Purged) == 0 {
		fmt.Fprintln(w, "nothing to purge")
	}
	return nil
}

// kindName names a restored item's kind as deletions are named.
func kindName(it online.Item) string {
	if it.Kind == layout.KindTagIndexLink {
		return "tag-history"
	}
	return it.KindName()
}

// restoreRun puts back what cmd names from its run's trash. failures are names the
// trash holds nothing of and the storage does not hold either (exit status 1). tr
// counts the planning, the check of what the images need, the putting back.
func restoreRun(ctx context.Context, prog string, b storage.Backend, cmd trashCmd, doc *trashDoc, w io.Writer, tr *progress.Tracker) (failures []string, err error) {
	run := cmd.runs[0]
	doc.Run = run
	q, err := online.LoadRun(ctx, b, run)
	if err != nil {
		return nil, err
	}
	if q.Journal == nil && len(q.Files) == 0 {
		// What a purge that stopped after the journal leaves: empty directories.
		left, err := b.DirExists(ctx, layout.QuarantineRun(run))
		if err != nil {
			return nil, err
		}
		if left {
			if !cmd.o.dryRun {
				if err := online.Purge(ctx, b, q, cmd.o.jobs, tr); err != nil {
					return nil, err
				}
			}
			fmt.Fprintf(w, "Run %s holds nothing any more (restored whole, or purged).\n", run)
			return nil, nil
		}
		return nil, fmt.Errorf("no run %s in the trash of %s (restored whole, purged, or never there: %s trash list shows its runs)", run, b, prog)
	}
	if q.Journal.IsTrash() && q.Journal.Purging && len(q.Files) == 0 {
		// A purge (a whole restore's last step) stopped with nothing left but the
		// journal: end it; there is nothing to restore.
		if !cmd.o.dryRun {
			if err := online.Purge(ctx, b, q, cmd.o.jobs, tr); err != nil {
				return nil, err
			}
		}
	} else if q.Journal.IsTrash() && q.Journal.Purging {
		return nil, fmt.Errorf("run %s was being purged when its purge stopped: what is left of it may not hold whole images, "+
			"and is not restored (%s trash purge %s finishes the purge)", run, prog, run)
	}
	plan, err := online.PlanRestore(ctx, b, q, cmd.selectors, tr)
	if err != nil {
		return nil, err
	}
	elsewhere, lost, err := missingParts(ctx, b, q, plan.Items, tr)
	if err != nil {
		return nil, err
	}
	for _, l := range lost {
		fmt.Fprintln(w, "warning: "+l)
	}
	if len(elsewhere) > 0 {
		return nil, fmt.Errorf("what run %s would put back needs files a later run moved to its own trash; "+
			"restore those first (nothing was changed): %s", run, strings.Join(elsewhere, "; "))
	}
	for _, s := range plan.Missing {
		present, err := inStorage(ctx, b, s)
		if err != nil {
			return nil, err
		}
		if present {
			doc.Present = append(doc.Present, s.String())
			fmt.Fprintf(w, "%s: nothing of it in run %s; the storage holds it (restored already?)\n", s, run)
			continue
		}
		doc.Missing = append(doc.Missing, s.String())
		failures = append(failures, fmt.Sprintf("%s: run %s holds nothing of it, and the storage neither", s, run))
	}
	verb := "restored"
	if cmd.o.dryRun {
		verb = "would restore"
	}
	entry := func(it online.Item) report.Restored {
		return report.Restored{Kind: kindName(it), Path: it.Path(), Subject: it.Subject(), Why: it.Why}
	}
	counts := map[string]int{}
	if !cmd.o.dryRun && len(plan.Items) > 0 {
		if err := online.PutBack(ctx, b, q, plan.Items, cmd.o.jobs, tr); err != nil {
			return nil, err
		}
	}
	for _, it := range plan.Items {
		e := entry(it)
		counts[e.Kind]++
		doc.Restored = append(doc.Restored, e)
		fmt.Fprintf(w, "%s %s %s (%s)\n", verb, e.Kind, e.Subject, e.Why)
	}
	for _, it := range plan.Kept {
		e := entry(it)
		doc.Kept = append(doc.Kept, e)
		fmt.Fprintf(w, "kept tag %s as it is: pushed again since run %s; its old target is in the trash\n", e.Subject, run)
	}
	var parts []string
	for _, k := range []string{"tag", "tag-history", "revision", "layer-link", "blob", "file"} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	summary := "nothing"
	if len(parts) > 0 {
		summary = fmt.Sprintf("%d files (%s)", len(plan.Items), strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "%s %s from run %s", strings.ToUpper(verb[:1])+verb[1:], summary, run)
	if len(plan.Kept) > 0 {
		fmt.Fprintf(w, "; %d tags pushed again since were kept as they are", len(plan.Kept))
	}
	fmt.Fprintln(w, ".")
	return failures, nil
}

// missingParts checks that every manifest a restore brings back will have what a
// pull needs: its blob, its config and layers with the repository's layer links,
// its index children. A part neither in the storage nor among items makes the
// image incomplete: when another run's trash holds it (a later run deleted it
// once nothing else kept it), elsewhere names it and that run; else lost does.
// tr's stage "checking what the images need" counts the manifests checked.
func missingParts(ctx context.Context, b storage.Backend, q *online.Quarantine, items []online.Item, tr *progress.Tracker) (elsewhere, lost []string, err error) {
	back := map[string]bool{}
	var manifests int64
	for _, it := range items {
		back[it.Path()] = true
		if it.Kind == layout.KindRevisionLink {
			manifests++
		}
	}
	var st *progress.Stage
	if manifests > 0 {
		st = tr.Begin("checking what the images need", "manifests", manifests)
		defer st.End()
	}
	exists := func(p string) (bool, error) {
		if back[p] {
			return true, nil
		}
		_, err := b.Stat(ctx, p)
		if storage.IsNotExist(err) {
			return false, nil
		}
		return err == nil, err
	}
	type part struct{ path, what string }
	var missing []part
	for _, it := range items {
		if it.Kind != layout.KindRevisionLink {
			continue
		}
		of := it.Repo + "@" + it.Digest.String()
		need := []part{{layout.BlobData(it.Digest), "manifest " + of}}
		data, err := b.ReadFile(ctx, layout.Quarantined(q.Run, layout.BlobData(it.Digest)), layout.MaxManifestSize)
		if storage.IsNotExist(err) {
			data, err = b.ReadFile(ctx, layout.BlobData(it.Digest), layout.MaxManifestSize)
		}
		if err == nil {
			if m, perr := manifest.Parse(data); perr == nil {
				for _, d := range m.Blobs {
					need = append(need, part{layout.BlobData(d), "blob " + d.String() + " of " + of},
						part{layout.LayerLink(it.Repo, d), "layer link " + it.Repo + "@" + d.String() + " of " + of})
				}
				for _, d := range m.Children {
					need = append(need, part{layout.RevisionLink(it.Repo, d), "index child " + it.Repo + "@" + d.String() + " of " + of})
				}
			}
		}
		for _, p := range need {
			ok, err := exists(p.path)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				back[p.path] = true // once
				missing = append(missing, p)
			}
		}
		st.Add(1)
	}
	if len(missing) == 0 {
		return nil, nil, nil
	}
	// Which other run holds them: only now are the other runs listed.
	qs, err := online.Load(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	holder := map[string]string{}
	for _, o := range qs {
		if o.Run == q.Run {
			continue
		}
		if err := o.List(ctx, b); err != nil {
			return nil, nil, err
		}
		for _, f := range o.Files {
			holder[f.Path] = o.Run
		}
	}
	for _, p := range missing {
		if run := holder[p.path]; run != "" {
			elsewhere = append(elsewhere, p.what+" is in run "+run)
		} else {
			lost = append(lost, p.what+" is neither in the storage nor in the trash: the image may not pull")
		}
	}
	return elsewhere, lost, nil
}

// inStorage tells whether the registry's storage holds s: the tag's current link,
// or anything of the repository.
func inStorage(ctx context.Context, b storage.Backend, s online.Selector) (bool, error) {
	if s.Tag != "" {
		_, err := b.Stat(ctx, layout.TagCurrentLink(s.Repo, s.Tag))
		if storage.IsNotExist(err) {
			return false, nil
		}
		return err == nil, err
	}
	return b.DirExists(ctx, layout.RepoDir(s.Repo)+"/_manifests")
}
