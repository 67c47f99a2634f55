package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	rpt "github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// onlineReport is the part of an online run's --json report the tests read.
type onlineReport struct {
	Completed bool        `json:"completed"`
	Online    *rpt.Online `json:"online"`
}

// quarantineEmpty fails the test unless no quarantine is left below root.
func quarantineEmpty(t *testing.T, root string) {
	t.Helper()
	dir := filepath.Join(root, "clean-registry", "quarantine")
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("reading the quarantine: %v", err)
	}
	if len(entries) > 0 {
		t.Errorf("the quarantine holds %d runs after the run; it must be purged", len(entries))
	}
}

// An online run beside a serving registry deletes what an offline run deletes,
// leaves no quarantine, and every kept image pulls.
func TestOnlineRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := harness.Image(900, 2, harness.OCI)
	oldD := e.s.PushImage("app:1", old)
	e.s.PushImage("app:1", harness.Image(901, 2, harness.OCI)) // old is untagged now
	e.s.PushIndex("multi:1", harness.Index(902, 2, 1, harness.OCI))

	r := mustRun(t, "--root", e.root, "--online", "--grace", "0", "--settle", "0s", "--json")
	var rep onlineReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, r)
	}
	if !rep.Completed || rep.Online == nil || rep.Online.Run == "" || rep.Online.Quarantined == 0 {
		t.Fatalf("the online report says too little: %+v\n%s", rep.Online, r)
	}
	if len(rep.Online.Restored) != 0 {
		t.Errorf("nothing pushed during the run, yet it put back %+v", rep.Online.Restored)
	}
	e.blobsGone(append(harness.BlobsOf(old), oldD)...)
	quarantineEmpty(t, e.root)
	e.reg.RestartT(t) // the registry's in-memory cache saw the deleted blobs
	e.s.PullAll("app:1", "multi:1")
	e.s.Gone("app@" + oldD)
}

// The races a grace period cannot cover, staged at the worst moment: after the run
// moved what it deletes and before it verifies, a registry with a stale blob
// descriptor cache acknowledges (1) a tag put onto an old untagged manifest by
// digest and (2) a new image, in another repository, whose layer is an old
// unreferenced blob. The verification puts back exactly what they need.
func TestOnlineVerificationPutsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(910, harness.OCI)
	untagged := harness.ImageWithLayers(911, harness.OCI, shared, harness.Layer(912, harness.OCI))
	untaggedD := e.s.PushImage("app:1", untagged)
	untagged2 := harness.Image(917, 1, harness.OCI)
	untagged2D := e.s.PushImage("app:1", untagged2)
	e.s.PushImage("app:1", harness.Image(913, 1, harness.OCI))
	garbage := harness.Image(914, 1, harness.OCI)
	garbageD := e.s.PushImage("junk:1", garbage)
	e.s.PushImage("junk:1", harness.Image(915, 1, harness.OCI))
	e.reg.StopT(t)

	// The new image of (2): a fresh config over the old shared layer.
	fresh := harness.ImageWithLayers(916, harness.OCI, shared)
	rawManifest, _ := fresh.RawManifest()
	rawConfig, _ := fresh.RawConfigFile()
	freshD := harness.DigestOf(fresh)

	race := func(ctx context.Context, _ *rpt.Report) (bool, error) {
		root := e.root
		// (1) PUT app:2 with the old manifest: its revision link, tag links.
		if err := harness.LinkManifest(root, "app", untaggedD, "2"); err != nil {
			return false, err
		}
		// (3) PUT app:3 with another old manifest, whose revision link the registry
		// rewrote just before the run moved it: only the tag's links are left.
		if err := harness.WriteLink(root, harness.TagIndexLinkPath("app", "3", untagged2D), untagged2D); err != nil {
			return false, err
		}
		if err := harness.WriteLink(root, harness.TagCurrentLinkPath("app", "3"), untagged2D); err != nil {
			return false, err
		}
		// (2) other:1 with the fresh image: layer links (the cache said the shared
		// layer exists), config and manifest blobs, revision and tag.
		for _, d := range harness.BlobsOf(fresh) {
			if err := harness.WriteLink(root, harness.LayerLinkPath("other", d), d); err != nil {
				return false, err
			}
		}
		if _, err := harness.WriteBlob(root, rawConfig); err != nil {
			return false, err
		}
		if _, err := harness.WriteBlob(root, rawManifest); err != nil {
			return false, err
		}
		return false, harness.LinkManifest(root, "other", freshD, "1")
	}
	b, err := fs.New(e.root, 4)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := clean.Run(context.Background(), b, clean.Options{Jobs: 4, Online: &clean.Online{AfterMoves: race}})
	if err != nil {
		t.Fatalf("online run: %v", err)
	}
	if rep.Online == nil || len(rep.Online.Restored) == 0 {
		t.Fatalf("the verification put nothing back: %+v", rep.Online)
	}
	restored := map[string]bool{}
	for _, r := range rep.Online.Restored {
		restored[r.Subject] = true
		t.Logf("put back %s %s: %s", r.Kind, r.Subject, r.Why)
	}
	// (1)'s revision link was written again, so it stays; (3)'s comes back.
	for _, want := range append(harness.BlobsOf(untagged), untaggedD, "app@"+untagged2D, untagged2D) {
		if !restored[want] {
			t.Errorf("%s was not put back", want)
		}
	}
	if !restored[harness.DigestOf(shared)] {
		t.Errorf("the shared layer was not put back for other:1")
	}
	// What nothing needs stays deleted.
	e.blobsGone(append(harness.BlobsOf(garbage), garbageD)...)
	quarantineEmpty(t, e.root)
	e.reg.RestartT(t)
	e.s.PullAll("app:1", "app:2", "app:3", "other:1")
	e.s.Gone("junk@" + garbageD)
}

// An online run crashed at every point, moving into the quarantine, putting back or
// purging: every kept image pulls, and the next run (which first verifies and purges
// what the crashed one left) ends as an uninterrupted run.
func TestOnlineCrashAtEveryPoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := killScenario(t, e, 12)
	crashEverywhere(t, e.root, keep, clean.Options{Grace: 0, Jobs: 4, Online: &clean.Online{}})
}

// The real process SIGKILLed all through an online run, the settle and the
// verification included.
func TestOnlineKillBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := killScenario(t, e, 16)
	killRuns(t, e, keep, []string{"--online", "--grace", "0", "--settle", "1s", "-j", "1"})
}

// pushBeforeFirstMove is a filesystem backend on which a push completes between a
// run's scan and its first move: push runs once, just before the first Move.
type pushBeforeFirstMove struct {
	*fs.Backend
	once sync.Once
	push func() error
	err  error
}

func (b *pushBeforeFirstMove) Move(ctx context.Context, moves []storage.Move) error {
	b.once.Do(func() { b.err = b.push() })
	if b.err != nil {
		return b.err
	}
	return b.Backend.Move(ctx, moves)
}

// The race the soak found: the registry creates a tag's directories, the scan sees
// them empty (a remnant of an interrupted deletion, by all it can tell) while the
// manifest it names is untagged, then the push writes the tag's links and is
// acknowledged, and the run moves the tag directory, links included, and the
// manifest. The verification finds the tag's current link written after the scan
// in the quarantine and puts back the tag and its whole image.
func TestOnlineTagWrittenBetweenScanAndMove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := harness.Image(930, 2, harness.OCI)
	d := e.s.PushImage("app:1", img)
	e.s.PushImage("app:1", harness.Image(931, 1, harness.OCI)) // d is untagged now
	e.reg.StopT(t)
	// The push of app:2 (by digest d) under way: its index directory, no link yet.
	tagIndexDir := filepath.Dir(filepath.Join(e.root, filepath.FromSlash(harness.TagIndexLinkPath("app", "2", d))))
	if err := os.MkdirAll(tagIndexDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fb, err := fs.New(e.root, 4)
	if err != nil {
		t.Fatal(err)
	}
	b := &pushBeforeFirstMove{Backend: fb, push: func() error {
		if err := harness.WriteLink(e.root, harness.TagIndexLinkPath("app", "2", d), d); err != nil {
			return err
		}
		return harness.WriteLink(e.root, harness.TagCurrentLinkPath("app", "2"), d)
	}}
	rep, err := clean.Run(context.Background(), b, clean.Options{Jobs: 4, Online: &clean.Online{}})
	if err != nil {
		t.Fatalf("online run: %v", err)
	}
	restored := map[string]bool{}
	for _, r := range rep.Online.Restored {
		restored[r.Subject] = true
		t.Logf("put back %s %s: %s", r.Kind, r.Subject, r.Why)
	}
	for _, want := range append(harness.BlobsOf(img), "app:2", "app@"+d) {
		if !restored[want] {
			t.Errorf("%s was not put back", want)
		}
	}
	quarantineEmpty(t, e.root)
	e.reg.RestartT(t)
	e.s.PullAll("app:1", "app:2")
}
