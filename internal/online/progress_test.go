package online

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
)

// tree is a filesystem storage to write registry files into.
type tree struct {
	t    *testing.T
	root string
	b    *fs.Backend
}

func newTree(t *testing.T) *tree {
	t.Helper()
	root := t.TempDir()
	b, err := fs.New(root, 4)
	if err != nil {
		t.Fatal(err)
	}
	return &tree{t: t, root: root, b: b}
}

func (tr *tree) write(p, content string) {
	tr.t.Helper()
	layouttest.Tree{T: tr.t, Root: tr.root}.Write(p, []byte(content))
}

// blob writes content at p(its digest), and returns the digest.
func (tr *tree) blob(p func(layout.Digest) string, content string) layout.Digest {
	tr.t.Helper()
	return layouttest.Tree{T: tr.t, Root: tr.root}.BlobAt(p, []byte(content))
}

// stages are tr's stages' snapshots, their times zeroed; each must have ended.
func stages(t *testing.T, tr *progress.Tracker) []progress.Snapshot {
	t.Helper()
	var out []progress.Snapshot
	for _, s := range tr.Stages() {
		snap := s.Snapshot()
		if !snap.Ended || snap.Elapsed <= 0 {
			t.Errorf("stage %q: ended %v after %v", snap.Name, snap.Ended, snap.Elapsed)
		}
		snap.Elapsed = 0
		out = append(out, snap)
	}
	return out
}

// begin starts a quarantine (keeping what it holds for keep) holding n blobs.
func (tr *tree) begin(n int, keep time.Duration) *Quarantine {
	tr.t.Helper()
	ctx := context.Background()
	j, err := Begin(ctx, tr.b, time.Now(), keep)
	if err != nil {
		tr.t.Fatal(err)
	}
	for i := range n {
		tr.blob(func(d layout.Digest) string { return j.Dir(layout.BlobData(d)) }, fmt.Sprint("blob ", i))
	}
	q, err := LoadRun(ctx, tr.b, j.Run)
	if err != nil {
		tr.t.Fatal(err)
	}
	if len(q.Files) != n || q.Journal == nil {
		tr.t.Fatalf("the quarantine holds %d files (journal %v), want %d", len(q.Files), q.Journal, n)
	}
	return q
}

// A purge counts its files batch by batch to their total, in a stage named for
// what it purges; nothing to delete, no stage.
func TestPurgeProgress(t *testing.T) {
	ctx := context.Background()
	tr := newTree(t)
	q := tr.begin(2345, 0) // three batches
	p := progress.New()
	if err := Purge(ctx, tr.b, q, 4, p); err != nil {
		t.Fatal(err)
	}
	want := []progress.Snapshot{{Name: "purging the quarantine", Unit: "files", Done: 2345, Total: 2345, Ended: true}}
	if got := stages(t, p); !reflect.DeepEqual(got, want) {
		t.Fatalf("stages\n%+v\nwant\n%+v", got, want)
	}

	// A run that keeps what it deleted: Finish makes it trash (no purge), which a
	// purge names as such.
	q = tr.begin(3, time.Nanosecond)
	p = progress.New()
	if trash, err := Finish(ctx, tr.b, q, 4, p); err != nil || !trash || p.Len() != 0 {
		t.Fatalf("Finish: trash %v, %v, %d stages", trash, err, p.Len())
	}
	if err := Purge(ctx, tr.b, q, 4, p); err != nil {
		t.Fatal(err)
	}
	want = []progress.Snapshot{{Name: "purging the trash", Unit: "files", Done: 3, Total: 3, Ended: true}}
	if got := stages(t, p); !reflect.DeepEqual(got, want) {
		t.Fatalf("stages\n%+v\nwant\n%+v", got, want)
	}

	q = tr.begin(0, 0)
	p = progress.New()
	if err := Purge(ctx, tr.b, q, 4, p); err != nil || p.Len() != 0 {
		t.Fatalf("an empty quarantine's purge: %v, %d stages", err, p.Len())
	}
	if _, err := os.Stat(filepath.Join(tr.root, layout.ToolDir)); !os.IsNotExist(err) {
		t.Fatalf("the purges left %s: %v", layout.ToolDir, err)
	}
}

// A verification lists the live registry, reads the times the walk did not give
// and puts back what a revision pushed during the run needs: each a stage, counted
// to its total.
func TestVerifyProgress(t *testing.T) {
	ctx := context.Background()
	tr := newTree(t)
	q := tr.begin(1500, 0) // what the run moved that nothing needs
	// Pushed during the run: a manifest whose layer the run had moved.
	quarantined := func(d layout.Digest) string { return layout.Quarantined(q.Run, layout.BlobData(d)) }
	layer := tr.blob(quarantined, "a layer")
	config := tr.blob(layout.BlobData, "a config")
	m := tr.blob(layout.BlobData, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"`+
		config.String()+`"},"layers":[{"digest":"`+layer.String()+`"}]}`)
	for _, d := range []layout.Digest{layer, config} {
		tr.write(layout.LayerLink("app", d), d.String())
	}
	tr.write(layout.RevisionLink("app", m), m.String())
	tr.write(layout.TagCurrentLink("app", "v1"), m.String())
	q, err := LoadRun(ctx, tr.b, q.Run)
	if err != nil || len(q.Files) != 1501 {
		t.Fatalf("listing the quarantine: %v, %d files", err, len(q.Files))
	}

	p := progress.New()
	res, err := Verify(ctx, tr.b, q, 4, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Restored) != 1 || res.Restored[0].Digest != layer {
		t.Fatalf("restored %+v, want the layer", res.Restored)
	}
	got := stages(t, p)
	if len(got) != 3 {
		t.Fatalf("stages %+v, want 3", got)
	}
	// The live files: 2 layer links, a revision link, a tag's current link.
	if want := (progress.Snapshot{Name: "verifying the quarantine: listing", Unit: "files", Done: 4, Total: -1, Ended: true}); got[0] != want {
		t.Errorf("stage %+v, want %+v", got[0], want)
	}
	// A filesystem's walk gives no times: at least the tag's and the revision's.
	if s := got[1]; s.Name != "verifying the quarantine: reading times" || s.Unit != "links" || s.Done != s.Total || s.Total < 2 {
		t.Errorf("stage %+v, want the links whose times were read, all counted", s)
	}
	if want := (progress.Snapshot{Name: "putting back", Unit: "files", Done: 1, Total: 1, Ended: true}); got[2] != want {
		t.Errorf("stage %+v, want %+v", got[2], want)
	}

	// The quarantine is purged, counted: every file listed, the layer put back too
	// (gone already counts as done).
	p = progress.New()
	if trash, err := Finish(ctx, tr.b, q, 4, p); err != nil || trash {
		t.Fatalf("Finish: trash %v, %v", trash, err)
	}
	want := []progress.Snapshot{{Name: "purging the quarantine", Unit: "files", Done: 1501, Total: 1501, Ended: true}}
	if got := stages(t, p); !reflect.DeepEqual(got, want) {
		t.Fatalf("stages\n%+v\nwant\n%+v", got, want)
	}
}

// A whole restore plans every file of the trash and puts every one back, counted;
// a restore in part plans what it takes, its total not known; RestoreAll counts.
func TestRestoreProgress(t *testing.T) {
	ctx := context.Background()
	tr := newTree(t)
	q := tr.begin(1200, 7*24*time.Hour)
	tr.write(layout.Quarantined(q.Run, layout.TagCurrentLink("app", "v1")), layout.Digest{1}.String())
	if trash, err := Finish(ctx, tr.b, q, 4, nil); err != nil || !trash {
		t.Fatalf("Finish: trash %v, %v", trash, err)
	}
	q, err := LoadRun(ctx, tr.b, q.Run)
	if err != nil || len(q.Files) != 1201 {
		t.Fatalf("LoadRun: %v, %d files", err, len(q.Files))
	}

	p := progress.New()
	part, err := PlanRestore(ctx, tr.b, q, []Selector{{Repo: "app", Tag: "v1"}}, p)
	if err != nil || len(part.Items) != 1 {
		t.Fatalf("PlanRestore app:v1: %v, %+v", err, part.Items)
	}
	want := []progress.Snapshot{{Name: "planning the restore", Unit: "files", Done: 1, Total: -1, Ended: true}}
	if got := stages(t, p); !reflect.DeepEqual(got, want) {
		t.Fatalf("stages\n%+v\nwant\n%+v", got, want)
	}

	p = progress.New()
	plan, err := PlanRestore(ctx, tr.b, q, nil, p)
	if err != nil || len(plan.Items) != 1201 {
		t.Fatalf("PlanRestore: %v, %d items", err, len(plan.Items))
	}
	if err := PutBack(ctx, tr.b, q, plan.Items, 4, p); err != nil {
		t.Fatal(err)
	}
	// Restored whole: the run's directories go, with no files left to count.
	want = []progress.Snapshot{
		{Name: "planning the restore", Unit: "files", Done: 1201, Total: 1201, Ended: true},
		{Name: "putting back", Unit: "files", Done: 1201, Total: 1201, Ended: true},
	}
	if got := stages(t, p); !reflect.DeepEqual(got, want) {
		t.Fatalf("stages\n%+v\nwant\n%+v", got, want)
	}

	q = tr.begin(5, 0)
	p = progress.New()
	if res, err := RestoreAll(ctx, tr.b, q, "test", p); err != nil || len(res.Restored) != 5 {
		t.Fatalf("RestoreAll: %v, %+v", err, res)
	}
	want = []progress.Snapshot{{Name: "putting back", Unit: "files", Done: 5, Total: 5, Ended: true}}
	if got := stages(t, p); !reflect.DeepEqual(got, want) {
		t.Fatalf("stages\n%+v\nwant\n%+v", got, want)
	}
}

// Without a tracker the same work is done, and nothing recorded.
func TestNoProgress(t *testing.T) {
	ctx := context.Background()
	tr := newTree(t)
	q := tr.begin(10, 0)
	if res, err := Verify(ctx, tr.b, q, 4, nil); err != nil || len(res.Restored) != 0 {
		t.Fatalf("Verify: %v, %+v", err, res)
	}
	if err := Purge(ctx, tr.b, q, 4, nil); err != nil {
		t.Fatal(err)
	}
}
