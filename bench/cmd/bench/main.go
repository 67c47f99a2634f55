// Command bench runs clean-registry side by side with the upstream garbage collector
// on identical copies of generated registry trees and prints a markdown table of wall
// time, CPU time and peak memory, against the file-system floor measured in the same
// run. Run it from the module root:
//
//	go run ./bench/cmd/bench -presets small,medium
//
// See docs/benchmarks.md for the method.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
	"github.com/clean-registry/clean-registry/v2/bench/upstream"
)

type options struct {
	presets      string
	tree         string
	work         string
	cleanBin     string
	registryBin  string
	skipUpstream bool
	repeat       int
	keep         bool
	jobs         int
	out          string
	pull         bool
	seed         uint64
	cpCopies     bool
	crArgs       string
}

func main() {
	var o options
	flag.StringVar(&o.presets, "presets", "small,medium", "comma-separated generator presets to run: "+strings.Join(gen.PresetNames(), ", "))
	flag.StringVar(&o.tree, "tree", "", "benchmark this existing storage root (e.g. from gentree with custom knobs) instead of presets")
	flag.StringVar(&o.work, "work", filepath.Join(os.TempDir(), "clean-registry-bench"), "work directory for trees and their copies (needs about 3 copies' worth of space and inodes)")
	flag.StringVar(&o.cleanBin, "clean-registry", "", "clean-registry binary (default: build ./cmd/clean-registry)")
	flag.StringVar(&o.registryBin, "registry", "", "upstream registry binary (default: "+upstream.Path()+", built when missing)")
	flag.BoolVar(&o.skipUpstream, "skip-upstream", false, "do not run upstream garbage-collect")
	flag.IntVar(&o.repeat, "repeat", 3, "runs of each non-destructive step (find, dry runs); the median is kept")
	flag.BoolVar(&o.keep, "keep", false, "keep the copies of the trees after the run")
	flag.IntVar(&o.jobs, "jobs", 0, "clean-registry -j (0: its default)")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	flag.BoolVar(&o.pull, "pull", true, "after the real runs, serve each cleaned tree with the upstream registry and pull every tag and revision left")
	flag.Uint64Var(&o.seed, "seed", 0, "generator seed (0: the preset's)")
	flag.BoolVar(&o.cpCopies, "cp", false, "copy preset trees with cp -a instead of regenerating them from their seed")
	flag.StringVar(&o.crArgs, "cr-args", "", "more clean-registry arguments for its dry and real runs, space-separated (e.g. \"--keep-last 10\" for a retention run)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := runAll(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

func runAll(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	machine := describeMachine(o.work)
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	binDir := filepath.Join(o.work, "bin")
	if rusageBin, err = buildRusage(ctx, root, binDir); err != nil {
		return err
	}
	if o.cleanBin == "" {
		if o.cleanBin, err = buildCleanRegistry(ctx, root, binDir); err != nil {
			return err
		}
	}
	if !o.skipUpstream || o.pull {
		if o.registryBin == "" {
			logf("locating upstream registry %s (building it once takes about 2 minutes)", upstream.Version)
			if o.registryBin, err = upstream.Binary(ctx); err != nil {
				return err
			}
		}
	}
	version, _ := exec.Command(o.cleanBin, "--version").CombinedOutput()
	machine.CleanRegistry = strings.TrimSpace(string(version))

	var results []*Result
	type job struct {
		name string
		cfg  *gen.Config
		root string
	}
	var jobs []job
	if o.tree != "" {
		abs, err := filepath.Abs(o.tree)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{name: filepath.Base(abs), root: abs})
	} else {
		for _, name := range strings.Split(o.presets, ",") {
			name = strings.TrimSpace(name)
			cfg, ok := gen.Presets[name]
			if !ok {
				return fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(gen.PresetNames(), ", "))
			}
			if o.seed != 0 {
				cfg.Seed = o.seed
			}
			jobs = append(jobs, job{name: name, cfg: &cfg})
		}
	}
	for _, j := range jobs {
		dir := filepath.Join(o.work, j.name)
		root := j.root
		if root == "" {
			if root, err = ensureTree(ctx, dir, *j.cfg); err != nil {
				return err
			}
		}
		cp := cpCopier(root)
		if j.cfg != nil && !o.cpCopies {
			cp = genCopier(*j.cfg)
		}
		r, err := benchTree(ctx, o, j.name, root, dir, cp)
		if r != nil {
			if j.cfg != nil {
				r.Knobs = j.cfg.String()
			}
			results = append(results, r)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", j.name, err)
		}
		fmt.Println(r.markdown())
	}
	machine.LoadAfter = loadAvg()
	report := machine.markdown() + "\n" + summary(results) + "\n"
	for _, r := range results {
		report += r.markdown() + "\n"
	}
	fmt.Println(summary(results))
	fmt.Println(machine.markdown())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.failed() {
			return errors.New("clean-registry's result differs from upstream's or from its own plan: see the report")
		}
	}
	return nil
}

// moduleRoot is the directory of the go.mod around the current directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run from the clean-registry module: %v", err)
	}
	return filepath.Dir(gomod), nil
}

// buildCleanRegistry builds ./cmd/clean-registry of the module.
func buildCleanRegistry(ctx context.Context, root, binDir string) (string, error) {
	bin := filepath.Join(binDir, "clean-registry")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/clean-registry")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building clean-registry: %v\n%s", err, out)
	}
	return bin, nil
}

// ensureTree generates the tree of cfg under dir/base, or reuses one generated with
// the same knobs.
func ensureTree(ctx context.Context, dir string, cfg gen.Config) (string, error) {
	root := filepath.Join(dir, "base")
	knobsFile := filepath.Join(dir, "base.knobs")
	if b, err := os.ReadFile(knobsFile); err == nil && string(b) == cfg.String() {
		logf("reusing %s", root)
		return root, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	logf("generating %s", root)
	start := time.Now()
	st, err := gen.Generate(ctx, root, cfg)
	if err != nil {
		return "", err
	}
	logf("generated %d files in %.1fs", st.Files, time.Since(start).Seconds())
	return root, os.WriteFile(knobsFile, []byte(cfg.String()), 0o644)
}

// copier makes an identical copy of the benchmarked tree at a new path.
type copier func(ctx context.Context, to string) error

// cpCopier copies with cp -a.
func cpCopier(from string) copier {
	return func(ctx context.Context, to string) error {
		if out, err := exec.CommandContext(ctx, "cp", "-a", from, to).CombinedOutput(); err != nil {
			return fmt.Errorf("cp -a %s %s: %v\n%s", from, to, err, out)
		}
		return nil
	}
}

// genCopier regenerates a preset tree from its seed: on this kind of machine it is
// two to three times faster than cp -a, and determinism is tested in bench/gen.
func genCopier(cfg gen.Config) copier {
	return func(ctx context.Context, to string) error {
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		_, err := gen.Generate(ctx, to, cfg)
		return err
	}
}

// makeCopy makes a copy, checks that it holds the same files and directories as the
// original, and flushes it to disk so that its write-back does not run into the next
// timed step.
func makeCopy(ctx context.Context, cp copier, original *Listing, to string) error {
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	start := time.Now()
	if err := cp(ctx, to); err != nil {
		return err
	}
	syscall.Sync()
	l, err := list(to)
	if err != nil {
		return err
	}
	if !l.equal(original) {
		return fmt.Errorf("the copy %s differs from the original tree", to)
	}
	logf("copied to %s in %.1fs", to, time.Since(start).Seconds())
	return nil
}

// Result is everything measured and checked on one tree.
type Result struct {
	Name, Knobs           string
	Files, Dirs, Blobs    int
	Find, Rm              Measure
	RmFiles, RmDirs       Measure
	UpDry, UpReal         Measure
	CrDry, CrReal         Measure
	HaveUpstream          bool
	CrDeleted, CrDirs     int
	UpDeleted, UpDirs     int
	Comparison            *Comparison
	PlanProblems          []string
	DryRunModified        bool
	FloorMismatch         bool
	Pull                  *upstream.PullStats
	LoadBefore, LoadAfter string
}

func (r *Result) failed() bool {
	return (r.Comparison != nil && r.Comparison.Failed > 0) || len(r.PlanProblems) > 0 || r.DryRunModified ||
		r.FloorMismatch || (r.Pull != nil && r.Pull.Failed > 0)
}

func benchTree(ctx context.Context, o options, name, base, dir string, cp copier) (*Result, error) {
	r := &Result{Name: name, LoadBefore: loadAvg()}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	before, err := list(base)
	if err != nil {
		return nil, err
	}
	r.Files, r.Dirs = len(before.Files), len(before.Dirs)
	for _, f := range before.Files {
		if strings.HasSuffix(f, "/data") && strings.Contains(f, "/blobs/") {
			r.Blobs++
		}
	}
	if err := checkSpace(dir, r.Files+r.Dirs); err != nil {
		return nil, err
	}
	logf("%s: %d files, %d directories, %d blobs", name, r.Files, r.Dirs, r.Blobs)

	// The floor walk.
	if err := warm(ctx, base); err != nil {
		return nil, err
	}
	if r.Find, err = repeated(ctx, o.repeat, "find", base, "-type", "f"); err != nil {
		return nil, err
	}
	logf("find: %.2fs", r.Find.Wall.Seconds())

	// Upstream, dry then real, on its own copy.
	var upAfter *Listing
	if !o.skipUpstream {
		up := filepath.Join(dir, "upstream")
		if err := makeCopy(ctx, cp, before, up); err != nil {
			return r, err
		}
		cfg := filepath.Join(dir, "upstream.yml")
		if err := upstream.GCConfig(cfg, up); err != nil {
			return r, err
		}
		if err := warm(ctx, up); err != nil {
			return r, err
		}
		if r.UpDry, err = repeated(ctx, o.repeat, o.registryBin, "garbage-collect", "--delete-untagged", "--dry-run", "--quiet", cfg); err != nil {
			return r, err
		}
		logf("upstream dry run: %.2fs", r.UpDry.Wall.Seconds())
		if err := warm(ctx, up); err != nil {
			return r, err
		}
		if r.UpReal, err = timed(ctx, nil, o.registryBin, "garbage-collect", "--delete-untagged", "--quiet", cfg); err != nil {
			return r, err
		}
		logf("upstream real run: %.2fs", r.UpReal.Wall.Seconds())
		r.HaveUpstream = true
		if upAfter, err = list(up); err != nil {
			return r, err
		}
		r.UpDeleted = len(minus(before.Files, upAfter.Files))
		r.UpDirs = len(minus(before.Dirs, upAfter.Dirs))
		if !o.keep {
			if err := os.RemoveAll(up); err != nil {
				return r, err
			}
		}
	}

	// clean-registry: its plan (untimed), the timed dry run, then the real run.
	cr := filepath.Join(dir, "clean-registry")
	if err := makeCopy(ctx, cp, before, cr); err != nil {
		return r, err
	}
	crArgs := []string{"--root", cr, "--grace", "0", "-q"}
	if o.jobs > 0 {
		crArgs = append(crArgs, "-j", fmt.Sprint(o.jobs))
	}
	crArgs = append(crArgs, strings.Fields(o.crArgs)...)
	planned, err := plannedPaths(ctx, o.cleanBin, crArgs)
	if err != nil {
		return r, err
	}
	if err := warm(ctx, cr); err != nil {
		return r, err
	}
	if r.CrDry, err = repeated(ctx, o.repeat, o.cleanBin, append(crArgs, "-n")...); err != nil {
		return r, err
	}
	logf("clean-registry dry run: %.2fs", r.CrDry.Wall.Seconds())
	afterDry, err := list(cr)
	if err != nil {
		return r, err
	}
	r.DryRunModified = !afterDry.equal(before)
	if err := warm(ctx, cr); err != nil {
		return r, err
	}
	if r.CrReal, err = timed(ctx, nil, o.cleanBin, crArgs...); err != nil {
		return r, err
	}
	logf("clean-registry real run: %.2fs", r.CrReal.Wall.Seconds())
	crAfter, err := list(cr)
	if err != nil {
		return r, err
	}
	deletedFiles := minus(before.Files, crAfter.Files)
	deletedDirs := minus(before.Dirs, crAfter.Dirs)
	r.CrDeleted, r.CrDirs = len(deletedFiles), len(deletedDirs)
	r.PlanProblems = planCheck(planned, deletedFiles, crAfter)
	if upAfter != nil {
		c := compare(upAfter, crAfter)
		r.Comparison = &c
	}
	if o.pull {
		srv, err := upstream.Serve(ctx, o.registryBin, cr, dir)
		if err != nil {
			return r, err
		}
		st := srv.PullAll(ctx, refs(crAfter), 8)
		srv.Stop()
		r.Pull = &st
		logf("pulled %d manifests and %d blobs, %d failures", st.Manifests, st.Blobs, st.Failed)
	}

	// The deletion floor: exactly what clean-registry deleted, with parallel rm and
	// rmdir, on a fresh copy.
	floor := filepath.Join(dir, "floor")
	if err := makeCopy(ctx, cp, before, floor); err != nil {
		return r, err
	}
	if err := warm(ctx, floor); err != nil {
		return r, err
	}
	if r.RmFiles, r.RmDirs, err = removeExactly(ctx, dir, floor, deletedFiles, deletedDirs); err != nil {
		return r, err
	}
	r.Rm = r.RmFiles.add(r.RmDirs)
	logf("floor rm: %.2fs, rmdir: %.2fs", r.RmFiles.Wall.Seconds(), r.RmDirs.Wall.Seconds())
	floorAfter, err := list(floor)
	if err != nil {
		return r, err
	}
	r.FloorMismatch = !floorAfter.equal(crAfter)
	if !o.keep {
		for _, d := range []string{cr, floor} {
			if err := os.RemoveAll(d); err != nil {
				return r, err
			}
		}
	}
	r.LoadAfter = loadAvg()
	return r, nil
}

// plannedPaths runs clean-registry's dry run with --json and returns the paths of
// its planned deletions, relative to the storage root.
func plannedPaths(ctx context.Context, bin string, args []string) ([]string, error) {
	args = append(append([]string{}, args...), "-n", "--json")
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("clean-registry %v: %v", args, err)
	}
	var rep struct {
		Deletions []struct {
			Path string `json:"path"`
		} `json:"deletions"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("reading clean-registry's JSON report: %v", err)
	}
	paths := make([]string, len(rep.Deletions))
	for i, d := range rep.Deletions {
		paths[i] = d.Path
	}
	return paths, nil
}

// removeExactly removes files with parallel rm, then directories with parallel
// rmdir, deepest first, one depth at a time, and measures each part.
func removeExactly(ctx context.Context, dir, root string, files, dirs []string) (rm, rmdir Measure, err error) {
	run := func(total *Measure, tool string, paths []string, i int) error {
		if len(paths) == 0 {
			return nil
		}
		listFile := filepath.Join(dir, fmt.Sprintf("%s-%d.list", tool, i))
		var b strings.Builder
		for _, p := range paths {
			b.WriteString(root + "/" + p)
			b.WriteByte(0)
		}
		if err := os.WriteFile(listFile, []byte(b.String()), 0o644); err != nil {
			return err
		}
		defer os.Remove(listFile)
		// Batches small enough that both processes get work, large enough to amortise
		// the fork.
		n := min(max(len(paths)/8, 1), 2000)
		m, err := timed(ctx, nil, "xargs", "-0", "-P2", "-n", fmt.Sprint(n), "-a", listFile, tool, "--")
		*total = total.add(m)
		return err
	}
	if err := run(&rm, "rm", files, 0); err != nil {
		return rm, rmdir, err
	}
	for i, group := range byDepthDeepestFirst(dirs) {
		if err := run(&rmdir, "rmdir", group, i); err != nil {
			return rm, rmdir, err
		}
	}
	return rm, rmdir, nil
}
