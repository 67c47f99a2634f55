package clean

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
	"github.com/clean-registry/clean-registry/v2/internal/online"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
)

// sample writes a registry storage: repository app with tags v1 and v2 on one
// image, and an untagged second image (a manifest, its config and layer).
func sample(t *testing.T) (root string, b *fs.Backend) {
	t.Helper()
	tr := layouttest.New(t)
	v1 := tr.Image("app", "one")
	tr.Image("app", "two")
	tr.Link(layout.TagCurrentLink("app", "v1"), v1)
	tr.Link(layout.TagCurrentLink("app", "v2"), v1)
	b, err := fs.New(tr.Root, 4)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Root, b
}

// checkStages checks that the stages from the one named first on are named want,
// in order, each ended and counted to its total (the listing of the live registry
// has none: it counted something). It returns the names of the stages before.
func checkStages(t *testing.T, stages []*progress.Stage, first string, want []string) (before []string) {
	t.Helper()
	var got []string
	for _, s := range stages {
		snap := s.Snapshot()
		if got == nil && snap.Name != first {
			before = append(before, snap.Name)
			continue
		}
		got = append(got, snap.Name)
		switch {
		case !snap.Ended:
			t.Errorf("stage %+v did not end", snap)
		case snap.Name == "verifying the quarantine: listing":
			if snap.Total != -1 || snap.Done <= 0 || snap.Unit != "files" {
				t.Errorf("stage %+v: want files counted, no total", snap)
			}
		case snap.Done != snap.Total || snap.Total <= 0 && snap.Name != "verifying the quarantine: reading times":
			t.Errorf("stage %+v: not counted to its total", snap)
		case snap.Name == "settling" && (snap.Unit != progress.Seconds || snap.Total != 1):
			t.Errorf("stage %+v: want 1 second of a settle under a second", snap)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("stages from %q on: %q, want %q (before: %q)", first, got, want, before)
	}
	return before
}

// An online run reports its settle, its verification and the purge of its
// quarantine, after its deletions.
func TestOnlineRunProgress(t *testing.T) {
	_, b := sample(t)
	tr := progress.New()
	rep, err := Run(context.Background(), b, Options{Jobs: 4, Online: &Online{Settle: 10 * time.Millisecond}, Progress: tr})
	if err != nil || !rep.Completed || rep.Online == nil || rep.Online.Quarantined != 6 {
		t.Fatalf("run: %v, %+v", err, rep)
	}
	before := checkStages(t, tr.Stages(), "settling", []string{"settling", "verifying the quarantine: listing",
		"verifying the quarantine: reading times", "purging the quarantine"})
	if len(before) == 0 || before[0] != "scanning" || before[len(before)-1] != "deleting blobs" {
		t.Errorf("stages before the settle: %q", before)
	}
	last := tr.Stages()[tr.Len()-1].Snapshot()
	if last.Total != 6 {
		t.Errorf("the purge counted %+v, want the 6 files quarantined", last)
	}
}

// A run first purges expired trash and finishes an interrupted run's quarantine:
// stages before its scan.
func TestRecoveryProgress(t *testing.T) {
	root, b := sample(t)
	ctx := context.Background()
	quarantine := func(began time.Time, keep time.Duration) *online.Journal {
		j, err := online.Begin(ctx, b, began, keep)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(j.Dir(layout.BlobData(layout.Digest{byte(began.Second())}))))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("moved"), 0o644); err != nil {
			t.Fatal(err)
		}
		return j
	}
	// A trash that expired (a nanosecond after its run began), named first.
	trash := quarantine(time.Now().Add(-time.Hour), time.Nanosecond)
	q, err := online.LoadRun(ctx, b, trash.Run)
	if err != nil {
		t.Fatal(err)
	}
	if kept, err := online.Finish(ctx, b, q, 4, nil); err != nil || !kept {
		t.Fatalf("making trash: %v, %v", kept, err)
	}
	quarantine(time.Now(), 0) // an interrupted run's

	tr := progress.New()
	rep, err := Run(ctx, b, Options{Jobs: 4, Grace: time.Hour, Online: &Online{Settle: time.Millisecond}, Progress: tr})
	if err != nil || len(rep.TrashPurged) != 1 || rep.Online == nil || len(rep.Online.Recovered) != 1 {
		t.Fatalf("run: %v, %+v", err, rep)
	}
	stages := tr.Stages()
	var names []string
	for _, s := range stages {
		names = append(names, s.Snapshot().Name)
	}
	i := slices.Index(names, "scanning")
	if i < 0 {
		t.Fatalf("no scan among %q", names)
	}
	before := checkStages(t, stages[:i], "purging the trash", []string{"purging the trash", "settling", "verifying the quarantine: listing",
		"verifying the quarantine: reading times", "purging the quarantine"})
	if len(before) > 0 {
		t.Errorf("stages before the trash's purge: %q", before)
	}
}
