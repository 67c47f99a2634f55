package regdriver

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Move through the registry's own filesystem driver: known files and a listed tree,
// a missing source, an existing destination kept, nothing else touched.
func TestDriverMove(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	files := map[string]string{
		"docker/registry/v2/blobs/sha256/ab/ab01/data":                      "blob ab01",
		"docker/registry/v2/blobs/sha256/cd/cd01/data":                      "blob cd01",
		"docker/registry/v2/blobs/sha256/ef/ef01/data":                      "blob ef01 new",
		"docker/registry/v2/blobs/sha256/ab/ab02/data":                      "stays",
		"docker/registry/v2/repositories/a/_uploads/u1/startedat":           "2020",
		"docker/registry/v2/repositories/a/_uploads/u1/hashstates/sha256/0": "h",
		"docker/registry/v2/repositories/a/_uploads/u2/data":                "d",
		"docker/registry/v2/repositories/a/_uploadsX/keep":                  "k",
		// Already in the quarantine: kept as it is.
		"q/blobs/sha256/ef/ef01/data": "blob ef01 old",
	}
	write := func(p, c string) {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range files {
		write(p, c)
	}
	d, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	b := Wrap(d, "test", 3)
	moves := []storage.Move{
		{Unit: storage.Unit{Dir: "docker/registry/v2/blobs/sha256/ab/ab01", Files: []string{"data"}}, To: "q/blobs/sha256/ab/ab01"},
		{Unit: storage.Unit{Dir: "docker/registry/v2/blobs/sha256/cd/cd01", Files: []string{"data"}}, To: "q/blobs/sha256/cd/cd01"},
		{Unit: storage.Unit{Dir: "docker/registry/v2/blobs/sha256/ef/ef01", Files: []string{"data"}}, To: "q/blobs/sha256/ef/ef01"},
		// Never there: counts as moved.
		{Unit: storage.Unit{Dir: "docker/registry/v2/blobs/sha256/00/0001", Files: []string{"data"}}, To: "q/blobs/sha256/00/0001"},
		// Contents unknown: listed.
		{Unit: storage.Unit{Dir: "docker/registry/v2/repositories/a/_uploads"}, To: "q/repositories/a/_uploads"},
		{Unit: storage.Unit{Dir: "docker/registry/v2/repositories/none/_uploads"}, To: "q/repositories/none/_uploads"},
	}
	if err := b.Move(ctx, moves); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"docker/registry/v2/blobs/sha256/ab/ab02/data":     "stays",
		"docker/registry/v2/repositories/a/_uploadsX/keep": "k",
		"q/blobs/sha256/ab/ab01/data":                      "blob ab01",
		"q/blobs/sha256/cd/cd01/data":                      "blob cd01",
		"q/blobs/sha256/ef/ef01/data":                      "blob ef01 old",
		"q/repositories/a/_uploads/u1/startedat":           "2020",
		"q/repositories/a/_uploads/u1/hashstates/sha256/0": "h",
		"q/repositories/a/_uploads/u2/data":                "d",
	}
	check := func(when string) {
		t.Helper()
		got := map[string]string{}
		err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			got[filepath.ToSlash(rel)] = string(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var diff []string
		for p, c := range want {
			if got[p] != c {
				diff = append(diff, "want "+p+" = "+c+", got "+got[p])
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				diff = append(diff, "unexpected "+p)
			}
		}
		sort.Strings(diff)
		if len(diff) > 0 {
			t.Errorf("%s:\n%s", when, strings.Join(diff, "\n"))
		}
	}
	check("after the move")
	req := b.Requests()
	// 7 files (4 named, one of them missing, 3 listed), each destination stat'ed; 6
	// driver Moves (one finds no source), the source whose destination exists deleted.
	if req["Move"] != 6 || req["Delete"] != 1 || req["Stat"] < 7 {
		t.Errorf("driver calls %v, want 6 Move, 1 Delete, a Stat per file", req)
	}

	// A rerun converges: every source is gone, every destination kept.
	if err := b.Move(ctx, moves); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	check("after a rerun")

	for _, bad := range []storage.Move{
		{Unit: storage.Unit{Dir: "", Files: []string{"x"}}, To: "q/x"},
		{Unit: storage.Unit{Dir: "docker/x", Files: []string{"x"}}, To: "/"},
		{Unit: storage.Unit{Dir: "docker/x", Files: []string{"../../y"}}, To: "q/x"},
		{Unit: storage.Unit{Dir: "docker/x", Files: []string{"a/../b"}}, To: "q/x"},
		{Unit: storage.Unit{Dir: "docker/x"}, To: "docker/x/q"},
		{Unit: storage.Unit{Dir: "docker/x"}, To: "../x"},
	} {
		if err := b.Move(ctx, []storage.Move{bad}); err == nil {
			t.Errorf("moving %q (files %q) to %q was accepted", bad.Dir, bad.Files, bad.To)
		}
	}
	check("after refused moves")
}

// A move with UnmodifiedSince leaves in place the files written after it, named or
// listed, and moves the older ones.
func TestDriverMoveUnmodifiedSince(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	since := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	files := map[string]time.Time{
		"repositories/a/_manifests/tags/v1/current/link":         since.Add(time.Hour), // pushed again
		"repositories/a/_manifests/revisions/sha256/aa/link":     since.Add(-time.Hour),
		"repositories/b/_manifests/tags/v1/current/link":         since.Add(time.Hour),
		"repositories/b/_manifests/tags/v1/index/sha256/bb/link": since.Add(-time.Hour),
	}
	for p, mt := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	d, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	b := Wrap(d, "test", 2)
	moves := []storage.Move{
		{Unit: storage.Unit{Dir: "repositories/a/_manifests/tags/v1/current", Files: []string{"link"}}, To: "q/a/tags/v1/current", UnmodifiedSince: since},
		{Unit: storage.Unit{Dir: "repositories/a/_manifests/revisions/sha256/aa", Files: []string{"link"}}, To: "q/a/revisions/sha256/aa", UnmodifiedSince: since},
		{Unit: storage.Unit{Dir: "repositories/b"}, To: "q/b", UnmodifiedSince: since},
	}
	if err := b.Move(ctx, moves); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"repositories/a/_manifests/tags/v1/current/link":     true,
		"q/a/revisions/sha256/aa/link":                       true,
		"repositories/a/_manifests/revisions/sha256/aa/link": false,
		"repositories/b/_manifests/tags/v1/current/link":     true,
		"q/b/_manifests/tags/v1/index/sha256/bb/link":        true,
		"q/b/_manifests/tags/v1/current/link":                false,
	} {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); (err == nil) != want {
			t.Errorf("%s: there %v, want %v", p, err == nil, want)
		}
	}
}

// The in-memory driver has no directories on disk: a tree moves whole, back and
// forth, and many units in one call.
func TestDriverMoveInMemory(t *testing.T) {
	ctx := context.Background()
	d, err := factory.Create(ctx, "inmemory", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := Wrap(d, "mem", 4)
	var moves, back []storage.Move
	for i := range 50 {
		dir := "docker/registry/v2/repositories/r" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		for _, f := range []string{"_layers/sha256/aa/link", "_manifests/tags/t/current/link", "_manifests/tags/t/index/sha256/aa/link"} {
			if err := d.PutContent(ctx, "/"+dir+"/"+f, []byte(dir+"/"+f)); err != nil {
				t.Fatal(err)
			}
		}
		moves = append(moves, storage.Move{Unit: storage.Unit{Dir: dir}, To: "q/" + dir})
		back = append(back, storage.Move{Unit: storage.Unit{Dir: "q/" + dir}, To: dir})
	}
	if err := b.Move(ctx, moves); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	if err := b.Walk(ctx, "", func(f storage.File) error {
		if !strings.HasPrefix(f.Path, "q/docker/") {
			t.Errorf("%s not moved", f.Path)
		}
		data, err := b.ReadFile(ctx, f.Path, 1<<10)
		if err != nil || "q/"+string(data) != f.Path {
			t.Errorf("%s holds %q, %v", f.Path, data, err)
		}
		n.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 150 {
		t.Errorf("%d files after the move, want 150", n.Load())
	}
	if err := b.Move(ctx, back); err != nil {
		t.Fatal(err)
	}
	n.Store(0)
	if err := b.Walk(ctx, "", func(f storage.File) error {
		data, err := b.ReadFile(ctx, f.Path, 1<<10)
		if err != nil || string(data) != f.Path {
			t.Errorf("%s holds %q, %v", f.Path, data, err)
		}
		n.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 150 {
		t.Errorf("%d files after moving back, want 150", n.Load())
	}
}
