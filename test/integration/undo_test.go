package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/online"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// undoScene is what pushUndoScene left in a registry: each ref's digest, and the
// images behind the refs a test removes.
type undoScene struct {
	digests map[string]string
	images  map[string]v1.Image
}

// pushUndoScene pushes two images sharing a layer (app:1, app:2), a multi-arch
// index (multi:1), a signed image with its referrer (signed:1) and a repository of
// two tags (team/x:v1, team/x:v2).
func pushUndoScene(e *env) undoScene {
	sc := undoScene{digests: map[string]string{}, images: map[string]v1.Image{}}
	shared := harness.Layer(3000, harness.OCI)
	image := func(ref string, img v1.Image) {
		sc.images[ref] = img
		sc.digests[ref] = e.s.PushImage(ref, img)
	}
	image("app:1", harness.ImageWithLayers(3001, harness.OCI, shared, harness.Layer(3002, harness.OCI)))
	image("app:2", harness.ImageWithLayers(3003, harness.OCI, shared, harness.Layer(3004, harness.OCI)))
	sc.digests["multi:1"] = e.s.PushIndex("multi:1", harness.Index(3005, 2, 1, harness.OCI))
	image("signed:1", harness.Image(3006, 1, harness.OCI))
	sig := e.s.PushReferrer("signed", sc.digests["signed:1"], sigType, 3007)
	sc.digests["signed@"+sig] = sig
	image("team/x:v1", harness.Image(3008, 2, harness.OCI))
	image("team/x:v2", harness.Image(3009, 1, harness.OCI))
	return sc
}

// refs are the scene's refs but those of except.
func (sc undoScene) refs(except ...string) []string {
	var out []string
	for ref := range sc.digests {
		if !contains(except, ref) {
			out = append(out, ref)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// pulls pulls every ref with its digests verified, and checks what it resolves to.
func (e *env) pulls(want map[string]string, refs ...string) {
	e.t.Helper()
	for _, ref := range refs {
		if p := e.s.Pull(ref); want[ref] != "" && p.Digest != want[ref] {
			e.t.Errorf("%s resolves to %s, want %s", ref, p.Digest, want[ref])
		}
	}
}

// undo runs a trash command (restore, trash purge) as a quiesced registry's
// operator does: the registry stopped, then restarted (so that every pull after it
// reads the storage afresh). It fails the test unless the exit status is code.
func (e *env) undo(code int, args ...string) result {
	e.t.Helper()
	e.reg.StopT(e.t)
	r := run(e.t, append(args, "--root", e.root)...)
	e.reg.RestartT(e.t)
	if r.code != code {
		e.t.Fatalf("clean-registry %s: want exit %d: %s", strings.Join(args, " "), code, r)
	}
	return r
}

// trashRun is one run of `trash list --json`.
type trashRun struct {
	Run          string    `json:"run"`
	State        string    `json:"state"`
	Began        time.Time `json:"began"`
	Expires      time.Time `json:"expires"`
	Repositories []string  `json:"repositories"`
	Tags         int       `json:"tags"`
	Manifests    int       `json:"manifests"`
	Blobs        int       `json:"blobs"`
	Files        int       `json:"files"`
	Bytes        int64     `json:"bytes"`
}

// trashList lists the runs in root's trash.
func trashList(t *testing.T, root string) []trashRun {
	t.Helper()
	r := mustRun(t, "trash", "list", "--json", "--root", root)
	var doc struct {
		Completed bool       `json:"completed"`
		Runs      []trashRun `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || !doc.Completed {
		t.Fatalf("trash list --json: %v\n%s", err, r)
	}
	return doc.Runs
}

// onlyRun returns the one run of root's trash.
func onlyRun(t *testing.T, root string) trashRun {
	t.Helper()
	runs := trashList(t, root)
	if len(runs) != 1 {
		t.Fatalf("the trash holds %d runs, want 1: %+v", len(runs), runs)
	}
	return runs[0]
}

// registryFiles are the registry's own files below root (not clean-registry's).
func registryFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, f := range listTree(t, root).Files {
		if strings.HasPrefix(f, "docker/") {
			out = append(out, f)
		}
	}
	return out
}

func sameFiles(t *testing.T, what string, want, got []string) {
	t.Helper()
	if a, b := harness.Diff(want, got); len(a)+len(b) > 0 {
		t.Errorf("%s: files missing %v, extra %v", what, a, b)
	}
}

// -x of a repository with --keep-deleted: the repository is gone for the registry;
// -n shows what a restore brings back and changes nothing; one tag comes back with
// what it needs, the other stays gone; the same restore again changes nothing; the
// rest of the run comes back, and then the run is gone from the trash.
func TestUndoRemoveRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := pushUndoScene(e)
	before := registryFiles(t, e.root)
	r := e.clean("-x", "team/x", "--keep-deleted", "7d", "--grace", "0")
	if !strings.Contains(r.stdout, "moved to trash, freed when it expires") {
		t.Errorf("the report does not say where the bytes went:\n%s", r.stdout)
	}
	e.s.Gone("team/x:v1", "team/x:v2")
	if contains(e.s.Catalog(), "team/x") {
		t.Errorf("the catalog still lists team/x")
	}
	e.pulls(sc.digests, sc.refs("team/x:v1", "team/x:v2")...)
	tr := onlyRun(t, e.root)
	if tr.State != "trash" || tr.Tags != 2 || tr.Manifests != 2 || tr.Blobs < 6 || tr.Bytes <= 0 ||
		!reflect.DeepEqual(tr.Repositories, []string{"team/x"}) || tr.Expires.Sub(tr.Began) != 7*24*time.Hour {
		t.Errorf("trash list says %+v", tr)
	}

	files := registryFiles(t, e.root)
	r = e.undo(0, "restore", "-n", tr.Run, "team/x:v1")
	if !strings.Contains(r.stdout, "would restore tag team/x:v1") || strings.Contains(r.stdout, "team/x:v2") {
		t.Errorf("restore -n says:\n%s", r.stdout)
	}
	sameFiles(t, "after restore -n", files, registryFiles(t, e.root))

	r = e.undo(0, "restore", tr.Run, "team/x:v1")
	e.pulls(sc.digests, "team/x:v1")
	e.s.Gone("team/x:v2")
	e.blobsGone(harness.BlobsOf(sc.images["team/x:v2"])...)
	if n := onlyRun(t, e.root).Tags; n != 1 {
		t.Errorf("after restoring one tag the run holds %d tags, want 1", n)
	}

	files = registryFiles(t, e.root)
	r = e.undo(0, "restore", tr.Run, "team/x:v1")
	if !strings.Contains(r.stdout, "Restored nothing") {
		t.Errorf("a second restore of team/x:v1 says:\n%s", r.stdout)
	}
	sameFiles(t, "after a second restore", files, registryFiles(t, e.root))

	e.undo(0, "restore", tr.Run)
	e.pulls(sc.digests, sc.refs()...)
	sameFiles(t, "after restoring the whole run", before, registryFiles(t, e.root))
	if runs := trashList(t, e.root); len(runs) != 0 {
		t.Errorf("the trash still holds %+v", runs)
	}
	r = e.undo(1, "restore", tr.Run)
	if !strings.Contains(r.stderr, "no run "+tr.Run) {
		t.Errorf("restoring a run restored whole says:\n%s", r)
	}
	sameFiles(t, "after restoring a run restored whole", before, registryFiles(t, e.root))
	if e.exists(layout.ToolDir) {
		t.Errorf("%s is left behind", layout.ToolDir)
	}
}

// -x of tags: one comes back alone (an index, its children with it); a tag pushed
// again since the run is kept as it is, reported, and its old target comes back
// untagged.
func TestUndoRemoveTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := pushUndoScene(e)
	e.clean("-x", "app:1", "multi:1", "--keep-deleted", "7d", "--grace", "0")
	e.s.Gone("app:1", "multi:1", "app@"+sc.digests["app:1"])
	e.pulls(sc.digests, sc.refs("app:1", "multi:1")...)
	tr := onlyRun(t, e.root)

	e.undo(0, "restore", tr.Run, "multi:1")
	e.pulls(sc.digests, "multi:1")
	e.s.Gone("app:1", "app@"+sc.digests["app:1"])

	newer := harness.Image(3010, 1, harness.OCI)
	sc.digests["app:1"] = e.s.PushImage("app:1", newer)
	r := e.undo(0, "restore", tr.Run, "--json")
	var doc struct {
		Kept []struct{ Subject string } `json:"kept"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Kept) != 1 || doc.Kept[0].Subject != "app:1" {
		t.Errorf("the restore does not report app:1 as kept (%v):\n%s", err, r.stdout)
	}
	e.pulls(sc.digests, sc.refs()...)
	e.s.Pull("app@" + harness.DigestOf(sc.images["app:1"]))
	// The kept tag's trash stays, for what it was: the run is listed still.
	if tr := onlyRun(t, e.root); tr.Tags != 1 || tr.Files != 1 {
		t.Errorf("after the restore the run holds %+v, want app:1's current link alone", tr)
	}
}

// A retention run with --keep-deleted: one deleted tag comes back, then the rest
// of the repository.
func TestUndoRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := pushUndoScene(e)
	now := time.Now()
	for i := 1; i <= 4; i++ {
		ref := fmt.Sprintf("ci/app:b%d", i)
		sc.images[ref] = harness.Image(uint64(3020+i), 2, harness.OCI)
		sc.digests[ref] = e.s.PushImage(ref, sc.images[ref])
		e.pushedAt("ci/app", fmt.Sprintf("b%d", i), now.Add(-time.Duration(10-i)*24*time.Hour))
	}
	e.clean("--keep-last", "1", "--keep-deleted", "2w", "--grace", "0", "ci/app")
	e.s.Gone("ci/app:b1", "ci/app:b2", "ci/app:b3")
	e.pulls(sc.digests, sc.refs("ci/app:b1", "ci/app:b2", "ci/app:b3")...)
	tr := onlyRun(t, e.root)
	if tr.Tags != 3 || tr.Expires.Sub(tr.Began) != 14*24*time.Hour {
		t.Errorf("trash list says %+v", tr)
	}

	e.undo(0, "restore", tr.Run, "ci/app:b2")
	e.pulls(sc.digests, "ci/app:b2")
	e.s.Gone("ci/app:b1", "ci/app:b3")
	e.blobsGone(harness.BlobsOf(sc.images["ci/app:b1"])...)

	e.undo(0, "restore", tr.Run, "ci/app")
	e.pulls(sc.digests, sc.refs()...)
	if runs := trashList(t, e.root); len(runs) != 0 {
		t.Errorf("the trash still holds %+v", runs)
	}
}

// The untagged purge with --keep-deleted: a repository's untagged manifests come
// back by the repository's name, another's stay gone until the whole run comes back.
func TestUndoUntaggedPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := pushUndoScene(e)
	appOld := sc.digests["app:1"]
	sc.digests["app:1"] = e.s.PushImage("app:1", harness.Image(3030, 1, harness.OCI))
	xOld := sc.digests["team/x:v1"]
	sc.digests["team/x:v1"] = e.s.PushImage("team/x:v1", harness.Image(3031, 1, harness.OCI))
	e.clean("--keep-deleted", "7d", "--grace", "0")
	e.s.Gone("app@"+appOld, "team/x@"+xOld)
	e.pulls(sc.digests, sc.refs()...)
	tr := onlyRun(t, e.root)
	if tr.Tags != 0 || tr.Manifests != 2 {
		t.Errorf("trash list says %+v", tr)
	}

	e.undo(0, "restore", tr.Run, "app")
	e.s.Pull("app@" + appOld)
	e.s.Gone("team/x@" + xOld)
	e.undo(0, "restore", tr.Run)
	e.s.Pull("team/x@" + xOld)
	e.pulls(sc.digests, sc.refs()...)
}

// Two runs: the first takes app:1, the second app:2 and with it the layer both
// shared. Restoring app:1 alone would give an image without that layer: the
// restore refuses, naming the second run, and changes nothing; restored in turn,
// both pull.
func TestUndoAcrossRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := pushUndoScene(e)
	e.clean("-x", "app:1", "--keep-deleted", "7d", "--grace", "0")
	first := onlyRun(t, e.root)
	e.clean("-x", "app:2", "--keep-deleted", "7d", "--grace", "0")
	runs := trashList(t, e.root)
	if len(runs) != 2 || runs[0].Run != first.Run {
		t.Fatalf("the trash holds %+v, want two runs, the first first", runs)
	}
	second := runs[1]
	files := registryFiles(t, e.root)
	r := e.undo(1, "restore", first.Run, "app:1")
	if !strings.Contains(r.stderr, "is in run "+second.Run) || !strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("the restore does not name the run holding the shared layer:\n%s", r)
	}
	sameFiles(t, "after a refused restore", files, registryFiles(t, e.root))
	e.undo(0, "restore", second.Run)
	e.undo(0, "restore", first.Run)
	e.pulls(sc.digests, sc.refs()...)
}

// Expiry: a trash kept 1s is listed expired, and the next real run purges it;
// trash purge deletes a run before it expires; neither can be restored then.
// Bad input says what is wrong.
func TestUndoExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := pushUndoScene(e)
	e.clean("-x", "team/x", "--keep-deleted", "1s", "--grace", "0")
	first := onlyRun(t, e.root)
	time.Sleep(1500 * time.Millisecond)
	if tr := onlyRun(t, e.root); tr.State != "expired" {
		t.Errorf("a trash kept 1s, listed 1.5s later: %+v", tr)
	}
	r := e.clean("-x", "app:2", "--keep-deleted", "7d", "--grace", "0", "--json")
	var rep struct {
		TrashPurged []string `json:"trash_purged"`
		Trash       struct{ Run string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !reflect.DeepEqual(rep.TrashPurged, []string{first.Run}) {
		t.Errorf("the next run's report says it purged %v (%v), want %s", rep.TrashPurged, err, first.Run)
	}
	second := onlyRun(t, e.root)
	if second.Run != rep.Trash.Run {
		t.Errorf("the trash holds %s, the report says %s", second.Run, rep.Trash.Run)
	}
	if r := e.undo(1, "restore", first.Run); !strings.Contains(r.stderr, "no run") {
		t.Errorf("restoring an expired run: %s", r)
	}
	e.s.Gone("team/x:v1", "team/x:v2")

	// Bad input: malformed names, a path out of the trash, an unknown run.
	for _, args := range [][]string{
		{"restore", second.Run, "Bad/Name"},
		{"restore", second.Run, "app:-2"},
		{"restore", "../../docker", "app"},
		{"restore", "20000101T000000Z-00000000"},
		{"trash", "purge", "../quarantine"},
	} {
		r := run(t, append(args, "--root", e.root)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "ERROR: ") || strings.Contains(r.stderr, "panic") {
			t.Errorf("%q: %s", args, r)
		}
	}
	if r := run(t, "restore", "--root", e.root); r.code != 2 {
		t.Errorf("restore without a run: %s", r)
	}

	e.undo(0, "trash", "purge", second.Run)
	if runs := trashList(t, e.root); len(runs) != 0 || e.exists(layout.ToolDir) {
		t.Errorf("after trash purge the trash holds %+v", runs)
	}
	if r := e.undo(1, "restore", second.Run, "app:2"); !strings.Contains(r.stderr, "no run") {
		t.Errorf("restoring a purged run: %s", r)
	}
	e.s.Gone("app:2")
	e.pulls(sc.digests, sc.refs("team/x:v1", "team/x:v2", "app:2")...)
}

// undoKillArgs remove repositories of killScenario: with the untagged purge of
// those, the trash gets every kind of file. (Not a tag: a rerun after a crash
// that took it reports it missing, and stops short of the uninterrupted run.)
var undoKillArgs = []string{"--grace", "0", "-x", "repo1", "a"}

// undoKeep are killScenario's refs that survive undoKillArgs.
func undoKeep(keep []string) []string {
	var out []string
	for _, ref := range keep {
		if ref != "repo1:t" && ref != "a:1" {
			out = append(out, ref)
		}
	}
	return out
}

// restoreAll puts back every run of root's trash, in this process.
func restoreAll(t *testing.T, root string) {
	t.Helper()
	b, err := fs.New(root, 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	qs, err := online.Load(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if err := q.List(ctx, b); err != nil {
			t.Fatal(err)
		}
		p, err := online.PlanRestore(ctx, b, q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := online.PutBack(ctx, b, q, p.Items, 4, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// A run with --keep-deleted crashed at points of its move into the trash: every
// kept image pulls; a rerun ends with the registry's files of an uninterrupted
// run; and restoring every run of the trash then gives back the registry whole.
func TestUndoCrashMove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := killScenario(t, e, 8)
	original := registryFiles(t, e.root)
	opts := clean.Options{Grace: 0, Jobs: 4, KeepDeleted: 7 * 24 * time.Hour,
		Remove: true, Select: []clean.Selector{{Repo: "repo1"}, {Repo: "a"}}}
	keep = undoKeep(keep)
	ref := copyOf(t, e.root)
	total, err := cleanInProcessWith(t, ref, -1, false, opts)
	if err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	want := registryFiles(t, ref)
	for _, n := range []int{0, 1, total / 4, total / 2, 3 * total / 4, total - 2, total - 1} {
		root := copyOf(t, e.root)
		if _, err := cleanInProcessWith(t, root, n, false, opts); !errors.Is(err, errCrash) {
			t.Fatalf("a crash after %d of %d moves: the run returned %v", n, total, err)
		}
		verifyPulls(t, root, keep)
		if _, err := cleanInProcessWith(t, root, -1, false, opts); err != nil {
			t.Fatalf("rerun after %d of %d moves: %v", n, total, err)
		}
		sameFiles(t, fmt.Sprintf("rerun after a crash at %d of %d", n, total), want, registryFiles(t, root))
		restoreAll(t, root)
		sameFiles(t, fmt.Sprintf("restore after a crash at %d of %d", n, total), original, registryFiles(t, root))
		if t.Failed() {
			return
		}
	}
}

// crashingRestore plans a restore of what sel names from root's run and puts it
// back through a backend that crashes after budget moves (negative: never).
func crashingRestore(t *testing.T, root, id string, sel []online.Selector, budget int) (moves int, err error) {
	t.Helper()
	fb, err := fs.New(root, 4)
	if err != nil {
		t.Fatal(err)
	}
	b := &crashingBackend{Backend: fb, root: root, budget: budget}
	ctx := context.Background()
	q, err := online.LoadRun(ctx, b, id)
	if err != nil {
		t.Fatal(err)
	}
	p, err := online.PlanRestore(ctx, b, q, sel, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = online.PutBack(ctx, b, q, p.Items, 4, nil)
	return b.units, err
}

// trashed cleans a copy of e's storage with undoKillArgs and --keep-deleted, and
// returns the copy and its run.
func trashed(t *testing.T, e *env) (root, id string) {
	t.Helper()
	root = copyOf(t, e.root)
	mustRun(t, append([]string{"--root", root, "-q", "--keep-deleted", "7d"}, undoKillArgs...)...)
	return root, onlyRun(t, root).Run
}

// A restore, whole or of one repository, crashed at points: every image whole
// before it still pulls; the restore run again ends as an uninterrupted one, and
// what it restored pulls.
func TestUndoCrashRestore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := undoKeep(killScenario(t, e, 8))
	for _, c := range []struct {
		sel  []online.Selector
		args []string
		refs []string
	}{
		{nil, nil, []string{"repo1:t", "a:1"}},
		{[]online.Selector{{Repo: "repo1"}}, []string{"repo1"}, []string{"repo1:t"}},
	} {
		base, id := trashed(t, e)
		ref := copyOf(t, base)
		total, err := crashingRestore(t, ref, id, c.sel, -1)
		if err != nil {
			t.Fatalf("uninterrupted restore %v: %v", c.args, err)
		}
		want := registryFiles(t, ref)
		verifyPulls(t, ref, append(keep, c.refs...))
		for _, n := range []int{0, 1, total / 3, 2 * total / 3, total - 1} {
			root := copyOf(t, base)
			if _, err := crashingRestore(t, root, id, c.sel, n); !errors.Is(err, errCrash) {
				t.Fatalf("a restore %v crashed after %d of %d moves returned %v", c.args, n, total, err)
			}
			verifyPulls(t, root, keep)
			// A crash in the purge that ends a whole restore may leave no run.
			if r := run(t, append([]string{"restore", "-q", "--root", root, id}, c.args...)...); r.code != 0 && !strings.Contains(r.stderr, "no run") {
				t.Fatalf("restore %v again after a crash at %d of %d: %s", c.args, n, total, r)
			}
			sameFiles(t, fmt.Sprintf("restore %v again after a crash at %d of %d", c.args, n, total), want, registryFiles(t, root))
			if t.Failed() {
				return
			}
		}
	}
}

// A purge of the trash crashed at points: the registry is untouched; what is left
// of the run cannot be restored (it may no longer hold whole images); trash purge
// again ends it.
func TestUndoCrashPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := undoKeep(killScenario(t, e, 8))
	base, id := trashed(t, e)
	want := registryFiles(t, base)
	ctx := context.Background()
	for _, n := range []int{0, 1, 2} {
		root := copyOf(t, base)
		fb, err := fs.New(root, 4)
		if err != nil {
			t.Fatal(err)
		}
		b := &crashingBackend{Backend: fb, root: root, budget: n, torn: true}
		q, err := online.LoadRun(ctx, b, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := online.Purge(ctx, b, q, 4, nil); !errors.Is(err, errCrash) {
			t.Fatalf("a purge crashed after %d units returned %v", n, err)
		}
		sameFiles(t, "a crashed purge", want, registryFiles(t, root))
		if r := run(t, "restore", "--root", root, id); r.code != 1 || !strings.Contains(r.stderr, "being purged") {
			t.Errorf("restoring a run whose purge crashed: %s", r)
		}
		if tr := onlyRun(t, root); tr.State != "purging" {
			t.Errorf("trash list says %+v, want state purging", tr)
		}
		mustRun(t, "trash", "purge", "-q", "--root", root)
		if _, err := os.Stat(filepath.Join(root, layout.ToolDir)); !os.IsNotExist(err) {
			t.Errorf("trash purge after a crash left %s: %v", layout.ToolDir, err)
		}
		verifyPulls(t, root, keep)
	}
}

// The real processes SIGKILLed: a run moving into the trash, a restore, a purge.
// Each time every image whole before still pulls, and the command run again
// converges (a rerun's registry files are an uninterrupted run's; a restore run
// again restores; a purge run again empties the trash).
func TestUndoKillBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := undoKeep(killScenario(t, e, 24))
	// No -x: a rerun after a kill that took a named tag would report it missing.
	moveArgs := []string{"--grace", "0", "--keep-deleted", "7d", "-j", "1"}
	ref := copyOf(t, e.root)
	start := time.Now()
	mustRun(t, append([]string{"--root", ref}, moveArgs...)...)
	took := time.Since(start)
	want := registryFiles(t, ref)
	id := onlyRun(t, ref).Run
	restored := copyOf(t, ref)
	start = time.Now()
	mustRun(t, "restore", "-q", "-j", "1", "--root", restored, id)
	tookRestore := time.Since(start)
	wantRestored := registryFiles(t, restored)

	kill := func(root string, after time.Duration, args ...string) {
		cmd := exec.Command(cleanBin, append(args, "--root", root)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		cmd.Process.Kill()
		cmd.Wait()
	}
	for _, f := range []float64{0.3, 0.6, 0.9} {
		root := copyOf(t, e.root)
		kill(root, time.Duration(f*float64(took)), moveArgs...)
		t.Logf("killed a run at %.0f%%: the trash holds %+v", 100*f, trashList(t, root))
		verifyPulls(t, root, keep)
		mustRun(t, append([]string{"--root", root, "-q"}, moveArgs...)...)
		sameFiles(t, fmt.Sprintf("rerun after a kill at %.0f%%", 100*f), want, registryFiles(t, root))

		root = copyOf(t, ref)
		kill(root, time.Duration(f*float64(tookRestore)), "restore", "-j", "1", id)
		t.Logf("killed a restore at %.0f%%: the trash holds %+v", 100*f, trashList(t, root))
		verifyPulls(t, root, keep)
		if r := run(t, "restore", "-q", "--root", root, id); r.code != 0 && !strings.Contains(r.stderr, "no run") {
			t.Fatalf("restore after a kill: %s", r)
		}
		sameFiles(t, fmt.Sprintf("restore after a kill at %.0f%%", 100*f), wantRestored, registryFiles(t, root))

		root = copyOf(t, ref)
		kill(root, time.Duration(f*float64(tookRestore)), "trash", "purge", "-j", "1")
		t.Logf("killed a purge at %.0f%%: the trash holds %+v", 100*f, trashList(t, root))
		verifyPulls(t, root, keep)
		mustRun(t, "trash", "purge", "-q", "--root", root)
		if _, err := os.Stat(filepath.Join(root, layout.ToolDir)); !os.IsNotExist(err) {
			t.Errorf("trash purge after a kill left %s: %v", layout.ToolDir, err)
		}
		sameFiles(t, "purge after a kill", want, registryFiles(t, root))
		if t.Failed() {
			return
		}
	}
}
