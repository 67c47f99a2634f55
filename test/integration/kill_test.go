package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// killScenario fills a registry with every kind of garbage next to every kind of kept
// image, stops it, and returns the references that must stay pullable.
func killScenario(t *testing.T, e *env, overwrites int) (keep []string) {
	t.Helper()
	shared := harness.Layer(100, harness.OCI)
	for i := range overwrites {
		repo := fmt.Sprintf("repo%d", i%4)
		if i%4 == 3 {
			repo = "nested/" + repo
		}
		e.s.PushImage(repo+":t", harness.ImageWithLayers(uint64(1000+i), harness.OCI, shared, harness.Layer(uint64(2000+i), harness.OCI)))
	}
	for i := range 4 {
		repo := fmt.Sprintf("repo%d", i)
		if i == 3 {
			repo = "nested/" + repo
		}
		keep = append(keep, repo+":t")
	}
	e.s.PushIndex("multi:1", harness.Index(101, 2, 1, harness.Docker))
	e.s.PushIndex("multi:1", harness.Index(102, 3, 1, harness.OCI))
	subject := e.s.PushImage("signed:1", harness.Image(103, 1, harness.OCI))
	sig := e.s.PushReferrer("signed", subject, sigType, 104)
	doomed := e.s.PushImage("signed:2", harness.Image(105, 1, harness.OCI))
	e.s.PushReferrer("signed", doomed, sbomType, 106)
	e.s.PushImage("signed:2", harness.Image(107, 1, harness.OCI))
	e.s.PushImage("a:1", harness.Image(108, 1, harness.OCI))
	e.s.PushImage("a/b:1", harness.Image(109, 1, harness.OCI))
	e.s.PushImage("orphan", harness.Image(110, 1, harness.OCI)) // a repository left empty
	keep = append(keep, "multi:1", "signed:1", "signed@"+sig, "signed:2", "a:1", "a/b:1")
	e.reg.StopT(t)
	return keep
}

// verifyPulls serves root with a fresh registry and pulls every ref.
func verifyPulls(t *testing.T, root string, refs []string) {
	t.Helper()
	reg, err := harness.Start(context.Background(), harness.Config{Root: root}, t.TempDir())
	if err != nil {
		t.Fatalf("starting a registry on %s: %v", root, err)
	}
	defer reg.Close()
	for _, ref := range refs {
		if _, err := harness.Pull(context.Background(), reg.Addr(), ref); err != nil {
			t.Errorf("verified pull from a registry serving %s: %v\nregistry log:\n%s", root, err, reg.Logs())
			return
		}
	}
}

func copyOf(t *testing.T, root string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "storage")
	if err := harness.CopyTree(root, dst); err != nil {
		t.Fatalf("copying %s: %v", root, err)
	}
	return dst
}

func listTree(t *testing.T, root string) harness.Tree {
	t.Helper()
	tr, err := harness.ListTree(root)
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	return tr
}

// treeDiff says how got differs from want, in files and directories ("" when not).
func treeDiff(want, got harness.Tree) string {
	var msg []string
	if a, b := harness.Diff(want.Files, got.Files); len(a)+len(b) > 0 {
		msg = append(msg, fmt.Sprintf("files missing %v, extra %v", a, b))
	}
	if a, b := harness.Diff(want.Dirs, got.Dirs); len(a)+len(b) > 0 {
		msg = append(msg, fmt.Sprintf("directories missing %v, extra %v", a, b))
	}
	return strings.Join(msg, "; ")
}

// sameTree fails the test unless got holds exactly the files and directories of want.
func sameTree(t *testing.T, what string, want, got harness.Tree) {
	t.Helper()
	if d := treeDiff(want, got); d != "" {
		t.Errorf("%s differs from an uninterrupted run: %s", what, d)
	}
}

var errCrash = errors.New("injected crash")

// crashingBackend is the filesystem backend that stops changing anything after a
// number of deleted units (directories deleted or pruned), as if the process died
// there: the unit that would exceed the budget and everything after it never happen.
// When torn, the process dies inside that unit instead: its files are unlinked, its
// directories not yet removed (the order in which a directory is deleted).
//
// When whole, a call that would exceed the budget applies none of its units: the
// crash falls between two batches, and what was applied is known exactly.
type crashingBackend struct {
	*fs.Backend
	root    string
	torn    bool
	whole   bool
	mu      sync.Mutex
	budget  int // units still allowed; negative: unlimited
	units   int // units applied
	crashed bool
}

func (b *crashingBackend) take(n int) (allowed int, tear bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.budget >= 0 {
		allowed = min(n, b.budget)
		if b.whole && allowed < n {
			allowed, b.budget = 0, 0
		}
		b.budget -= allowed
	} else {
		allowed = n
	}
	b.units += allowed
	tear = allowed < n && b.torn && !b.crashed
	b.crashed = b.crashed || allowed < n
	return allowed, tear
}

func (b *crashingBackend) Delete(ctx context.Context, units []storage.Unit) error {
	k, tear := b.take(len(units))
	if k > 0 {
		if err := b.Backend.Delete(ctx, units[:k]); err != nil {
			return err
		}
	}
	if k < len(units) {
		if tear {
			b.unlinkFiles(units[k].Dir)
		}
		return errCrash
	}
	return nil
}

// Move moves units until the budget runs out. A rename moves a unit whole, so a
// crash never tears one.
func (b *crashingBackend) Move(ctx context.Context, moves []storage.Move) error {
	k, _ := b.take(len(moves))
	if k > 0 {
		if err := b.Backend.Move(ctx, moves[:k]); err != nil {
			return err
		}
	}
	if k < len(moves) {
		return errCrash
	}
	return nil
}

// unlinkFiles removes every file below dir and leaves the directories.
func (b *crashingBackend) unlinkFiles(dir string) {
	filepath.WalkDir(filepath.Join(b.root, filepath.FromSlash(dir)), func(p string, d iofs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Remove(p)
		}
		return nil
	})
}

func (b *crashingBackend) PruneDirs(ctx context.Context, dirs []string) error {
	k, _ := b.take(len(dirs))
	if k > 0 {
		if err := b.Backend.PruneDirs(ctx, dirs[:k]); err != nil {
			return err
		}
	}
	if k < len(dirs) {
		return errCrash
	}
	return nil
}

// cleanInProcessWith cleans root in this process with opts, through a backend that
// crashes after budget units (negative: never), torn or not.
func cleanInProcessWith(t *testing.T, root string, budget int, torn bool, opts clean.Options) (units int, err error) {
	t.Helper()
	fb, err := fs.New(root, 4)
	if err != nil {
		t.Fatalf("opening %s with the filesystem backend: %v", root, err)
	}
	b := &crashingBackend{Backend: fb, root: root, budget: budget, torn: torn}
	_, err = clean.Run(context.Background(), b, opts)
	return b.units, err
}

// TestCrashAtEveryPoint interrupts a real cleaning after 0, 1, 2, ... deletions, all
// through the run, between two deletions or in the middle of one: each time every kept
// image still pulls, and a rerun ends in exactly the state of an uninterrupted run.
func TestCrashAtEveryPoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := killScenario(t, e, 12)
	crashEverywhere(t, e.root, keep, clean.Options{Grace: 0, Jobs: 4})
}

// crashEverywhere runs a cleaning of a copy of root with opts and crashes it at
// points all through: each time every ref of keep still pulls, and a rerun ends in
// exactly the state of an uninterrupted run.
func crashEverywhere(t *testing.T, root string, keep []string, opts clean.Options) {
	t.Helper()
	e := struct{ root string }{root}
	ref := copyOf(t, e.root)
	total, err := cleanInProcessWith(t, ref, -1, false, opts)
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	if total < 10 {
		t.Fatalf("the scenario gives only %d deletions, want at least 10", total)
	}
	want := listTree(t, ref)
	verifyPulls(t, ref, keep)

	// Every point for small runs; else the first few, the last few and evenly between;
	// every other one inside a unit.
	var points []int
	for n := range total {
		if total <= 24 || n < 4 || n >= total-4 || n%((total+15)/16) == 0 {
			points = append(points, n)
		}
	}
	var diverged []string
	for i, n := range points {
		root := copyOf(t, e.root)
		torn := i%2 == 1
		what := fmt.Sprintf("a crash after %d of %d units", n, total)
		if torn {
			what = fmt.Sprintf("a crash inside unit %d of %d", n+1, total)
		}
		if _, err := cleanInProcessWith(t, root, n, torn, opts); !errors.Is(err, errCrash) {
			t.Fatalf("%s: the run returned %v, want the injected crash", what, err)
		}
		verifyPulls(t, root, keep)
		if _, err := cleanInProcessWith(t, root, -1, false, opts); err != nil {
			t.Fatalf("rerun after %s: %v", what, err)
		}
		if d := treeDiff(want, listTree(t, root)); d != "" {
			diverged = append(diverged, what+": "+d)
		}
		if t.Failed() {
			return
		}
	}
	if len(diverged) > 0 {
		t.Errorf("after %d of %d crash points a rerun does not end in the state of an uninterrupted run:\n%s",
			len(diverged), len(points), strings.Join(diverged, "\n"))
	}
}

// TestKillBinary SIGKILLs the real clean-registry process at several moments of a run.
func TestKillBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := killScenario(t, e, 40)
	killRuns(t, e, keep, []string{"--grace", "0", "-j", "1"})
}

// killRuns runs clean-registry with args on copies of e's storage and SIGKILLs it
// after each kind of phase and at fractions of an uninterrupted run's duration: each
// time every ref of keep still pulls, and a rerun ends as the uninterrupted run.
func killRuns(t *testing.T, e *env, keep []string, args []string) {
	t.Helper()
	ref := copyOf(t, e.root)
	start := time.Now()
	mustRun(t, append([]string{"--root", ref}, args...)...)
	took := time.Since(start)
	want := listTree(t, ref)

	// kill starts a run on a copy, waits for wait to return, and kills it.
	kill := func(what string, wait func(lines <-chan string)) {
		root := copyOf(t, e.root)
		cmd := exec.Command(cleanBin, append([]string{"--root", root}, args...)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatalf("kill %s: %v", what, err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("kill %s: starting clean-registry: %v", what, err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				default: // nobody waits any more
				}
			}
			close(lines)
		}()
		wait(lines)
		cmd.Process.Kill()
		cmd.Wait()
		verifyPulls(t, root, keep)
		// A kill inside a deletion leaves a directory whose files went: a problem
		// the rerun reports (exit 3), and deletes.
		mustFinish(t, append([]string{"--root", root}, args...)...)
		sameTree(t, "rerun after a kill "+what, want, listTree(t, root))
	}

	// A real run prints each phase's lines once the phase is done: a kill right after
	// a phase's first line lands in one of the phases after it.
	for _, kind := range []string{"tag", "tag-history", "revision", "layer-link", "blob"} {
		kill("after the "+kind+" phase", func(lines <-chan string) {
			for l := range lines {
				if strings.Contains(l, "("+kind+" ") {
					return
				}
			}
		})
	}
	// And at fractions of an uninterrupted run's duration on this machine.
	for _, f := range []float64{0.3, 0.6, 0.8, 0.9} {
		d := time.Duration(f * float64(took))
		kill(fmt.Sprintf("after %v", d), func(<-chan string) { time.Sleep(d) })
	}
}

// -x of a tag, crashed at points all through: the same command run again converges,
// although the tag it names is gone after the first deletion (a failure it reports).
func TestRemoveTagCrashAtEveryPoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(120, harness.OCI)
	e.s.PushImage("x:a", harness.ImageWithLayers(121, harness.OCI, shared, harness.Layer(122, harness.OCI), harness.Layer(123, harness.OCI)))
	for i := range 3 {
		e.s.PushImage("x:b", harness.ImageWithLayers(uint64(124+i), harness.OCI, shared, harness.Layer(uint64(130+i), harness.OCI)))
	}
	e.s.PushImage("y:1", harness.Image(140, 1, harness.OCI))
	e.reg.StopT(t)
	keep := []string{"x:b", "y:1"}
	crashEverywhere(t, e.root, keep, clean.Options{Grace: 0, Jobs: 4, Remove: true,
		Select: []clean.Selector{{Repo: "x", Tag: "a"}}})
}

// TestCrashReportsAppliedDeletions crashes a real run at points all through and
// reads its report: the log lists, in plan order, exactly the deletions the JSON
// marks applied, also those of the phase the crash stopped; each of them is gone
// from storage; when the crash falls between two batches, each deletion not marked
// applied is still there. Within a batch the crash interrupts, the storage does not
// say which of its units went: none of them is listed, all are marked uncertain (a
// rerun completes them).
func TestCrashReportsAppliedDeletions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	killScenario(t, e, 12)
	opts := clean.Options{Grace: 0, Jobs: 4}
	total, err := cleanInProcessWith(t, copyOf(t, e.root), -1, false, opts)
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	for _, n := range []int{0, 1, 2, total / 3, total / 2, 2 * total / 3, total - 2, total - 1} {
		for _, whole := range []bool{true, false} {
			root := copyOf(t, e.root)
			what := fmt.Sprintf("a crash after %d of %d units (whole batches: %v)", n, total, whole)
			fb, err := fs.New(root, 4)
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			o := opts
			o.Log = &log
			rep, err := clean.Run(context.Background(), &crashingBackend{Backend: fb, root: root, budget: n, whole: whole}, o)
			if !errors.Is(err, errCrash) || rep == nil || rep.Completed {
				t.Fatalf("%s: the run returned %v (report %v), want the injected crash and a report", what, err, rep != nil)
			}
			var js bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Applied   int `json:"deletions_applied"`
				Deletions []struct {
					Kind      string `json:"kind"`
					Path      string `json:"path"`
					Applied   *bool  `json:"applied"`
					Uncertain bool   `json:"uncertain"`
				} `json:"deletions"`
			}
			if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
				t.Fatalf("%s: the JSON report: %v", what, err)
			}
			var marked []string
			for _, d := range doc.Deletions {
				if d.Applied == nil {
					t.Fatalf("%s: deletion %s without applied", what, d.Path)
				}
				gone := !e.existsIn(root, d.Path)
				own := d.Kind == "blob" || d.Kind == "revision" || d.Kind == "layer-link" // no other deletion removes its directory
				switch {
				case *d.Applied:
					marked = append(marked, d.Path)
					if !gone && d.Kind != "repository" {
						t.Errorf("%s: %s %s is marked applied, and still there", what, d.Kind, d.Path)
					}
					if d.Uncertain {
						t.Errorf("%s: %s %s is marked applied and uncertain", what, d.Kind, d.Path)
					}
				case whole && gone && own:
					t.Errorf("%s: %s %s is gone, and not marked applied", what, d.Kind, d.Path)
				case gone && own && !d.Uncertain:
					t.Errorf("%s: %s %s is gone, and marked neither applied nor uncertain", what, d.Kind, d.Path)
				}
			}
			var logged []string
			prefix := "removed directory " + root + "/"
			for l := range strings.Lines(log.String()) {
				rest, ok := strings.CutPrefix(l, prefix)
				dir, _, found := strings.Cut(rest, " (")
				if !ok || !found {
					t.Fatalf("%s: a log line that names no deletion: %q", what, l)
				}
				logged = append(logged, strings.TrimSuffix(dir, "/{_manifests,_layers,_uploads}"))
			}
			if !slices.Equal(logged, marked) || doc.Applied != len(marked) {
				t.Errorf("%s: the log lists %d deletions, the JSON marks %d applied (deletions_applied %d):\nlog:\n%s\nmarked: %v",
					what, len(logged), len(marked), doc.Applied, log.String(), marked)
			}
			if whole && n >= total/2 && len(marked) == 0 {
				t.Errorf("%s: no deletion marked applied", what)
			}
		}
	}
}

// existsIn reports whether rel exists below root.
func (e *env) existsIn(root, rel string) bool {
	_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel)))
	return err == nil
}
