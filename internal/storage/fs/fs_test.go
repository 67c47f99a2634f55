package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

func write(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func walkAll(t *testing.T, b *Backend, dir string) (files, irregular []string) {
	t.Helper()
	var mu sync.Mutex
	err := b.Walk(context.Background(), dir, func(f storage.File) error {
		mu.Lock()
		defer mu.Unlock()
		if f.Irregular {
			irregular = append(irregular, f.Path)
		} else {
			files = append(files, f.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	sort.Strings(irregular)
	return files, irregular
}

func TestWalk(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write(t, outside, "secret/data", "x")
	var want []string
	// Enough directories to overflow the walk queue.
	for i := 0; i < 3000; i++ {
		p := filepath.ToSlash(filepath.Join("d", string(rune('a'+i%26)), strings.Repeat("x", 1+i%7), "f"+string(rune('a'+i%26))+"-"+strings.Repeat("y", i/26%5)))
		if !contains(want, p) {
			write(t, root, p, "")
			want = append(want, p)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "d", "link")); err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	for _, jobs := range []int{1, 4, 32} {
		b, err := New(root, jobs)
		if err != nil {
			t.Fatal(err)
		}
		files, irregular := walkAll(t, b, "d")
		if strings.Join(files, "\n") != strings.Join(want, "\n") {
			t.Fatalf("jobs=%d: walk found %d files, want %d", jobs, len(files), len(want))
		}
		if len(irregular) != 1 || irregular[0] != "d/link" {
			t.Fatalf("jobs=%d: irregular = %v, want the symlink only, not followed", jobs, irregular)
		}
	}
	b, _ := New(root, 2)
	if files, _ := walkAll(t, b, "missing"); len(files) != 0 {
		t.Fatal("walking a missing directory found files")
	}
}

// WalkLeaves passes a leaf directory's file unseen, reports empty directories, and
// lists everything else.
func TestWalkLeavesAndEmptyDirs(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a/leaf1/data", "x")
	write(t, root, "a/leaf2/other", "x") // not listed: the leaf's file is named unseen
	write(t, root, "a/dir/f", "x")
	if err := os.MkdirAll(filepath.Join(root, "a/empty/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "a/leaf3"), 0o755); err != nil {
		t.Fatal(err)
	}
	leaf := func(dir string) string {
		if strings.HasPrefix(dir, "a/leaf") {
			return "data"
		}
		return ""
	}
	for _, jobs := range []int{1, 3} {
		b, _ := New(root, jobs)
		var mu sync.Mutex
		var got []string
		err := b.WalkLeaves(context.Background(), "", leaf, func(f storage.File) error {
			mu.Lock()
			defer mu.Unlock()
			if f.Size != -1 || f.Irregular || f.BadName {
				t.Errorf("%+v: want Size -1 only", f)
			}
			if f.EmptyDir {
				got = append(got, f.Path+" (empty)")
			} else {
				got = append(got, f.Path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		want := []string{"a/dir/f", "a/empty/sub (empty)", "a/leaf1/data", "a/leaf2/data", "a/leaf3/data"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("jobs=%d: walk = %q, want %q", jobs, got, want)
		}
	}
}

// fn's first error ends the walk and is returned; so is a cancelled context's, and a
// directory that cannot be read is an error, never an empty directory.
func TestWalkErrors(t *testing.T) {
	root := t.TempDir()
	for i := range 200 {
		write(t, root, filepath.Join("d", strings.Repeat("x", 1+i%9), string(rune('a'+i%26))+strings.Repeat("y", i/26), "f"), "")
	}
	stop := errors.New("stop")
	for _, jobs := range []int{1, 4} {
		b, _ := New(root, jobs)
		var calls atomic.Int32
		err := b.Walk(context.Background(), "", func(storage.File) error {
			if calls.Add(1) == 10 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("jobs=%d: err = %v, want fn's", jobs, err)
		}
		if n := calls.Load(); n >= 200 {
			t.Errorf("jobs=%d: fn called %d times after failing", jobs, n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := b.Walk(ctx, "", func(storage.File) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("jobs=%d: cancelled walk: err = %v", jobs, err)
		}
	}
	if os.Geteuid() == 0 {
		return // root reads any directory
	}
	locked := filepath.Join(root, "d", "x")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(locked, 0o755)
	b, _ := New(root, 2)
	if err := b.Walk(context.Background(), "", func(storage.File) error { return nil }); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("unreadable directory: err = %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestReadRefusesSymlinksAndEscapes(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	write(t, outside, "f", "secret")
	write(t, root, "a/f", "ok")
	if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "a", "l")); err != nil {
		t.Fatal(err)
	}
	b, _ := New(root, 1)
	ctx := context.Background()
	if data, err := b.ReadFile(ctx, "a/f", 1<<20); err != nil || string(data) != "ok" {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	if _, err := b.ReadFile(ctx, "a/l", 1<<20); err == nil {
		t.Fatal("read through a symlink")
	}
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "a//f"} {
		if _, err := b.ReadFile(ctx, p, 1<<20); err == nil || storage.IsNotExist(err) {
			t.Fatalf("ReadFile(%q) = %v, want an invalid path error", p, err)
		}
	}
	if _, err := b.ReadFile(ctx, "a/missing", 1<<20); !storage.IsNotExist(err) {
		t.Fatalf("missing file error = %v", err)
	}
	if st, err := b.Stat(ctx, "a/f"); err != nil || st.Size != 2 || st.ModTime.IsZero() {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
}

func TestDeleteAndPrune(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	write(t, outside, "keep", "x")
	write(t, root, "r/u1/link", "x")
	write(t, root, "r/u2/link", "x")
	write(t, root, "r/u2/link.123.tmp", "x") // unexpected content goes too
	write(t, root, "r/u3/data", "x")
	if err := os.Symlink(outside, filepath.Join(root, "r", "u3", "escape")); err != nil {
		t.Fatal(err)
	}
	write(t, root, "p/a/b/f", "x")
	write(t, root, "p/a/other/f", "x")
	b, _ := New(root, 1)
	ctx := context.Background()
	units := []storage.Unit{
		{Dir: "r/u1", Files: []string{"link"}},
		{Dir: "r/u2", Files: []string{"link"}},
		{Dir: "r/u3", Files: []string{"data"}},
		{Dir: "r/gone", Files: []string{"link"}}, // already deleted: fine
		{Dir: "p/a/b"},                           // contents unknown
	}
	if err := b.Delete(ctx, units); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"r/u1", "r/u2", "r/u3", "p/a/b"} {
		if _, err := os.Lstat(filepath.Join(root, d)); !os.IsNotExist(err) {
			t.Errorf("%s still exists", d)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Fatal("deleted through a symlink")
	}
	if err := b.Delete(ctx, units); err != nil {
		t.Fatalf("a second delete must converge: %v", err)
	}
	if err := b.Delete(ctx, []storage.Unit{{Dir: ""}}); err == nil {
		t.Fatal("deleted the root")
	}
	if err := b.PruneDirs(ctx, []string{"p/a", "p", "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "p/a/other/f")); err != nil {
		t.Fatal("pruned a directory with content")
	}
	if _, err := os.Stat(filepath.Join(root, "r")); !os.IsNotExist(err) {
		t.Fatal("empty directory not pruned")
	}
}

// BenchmarkWalk times the walk alone on generated trees, the scan's hot path: go test
// -run XXX -bench Walk -benchmem ./internal/storage/fs/. Allocations per file are
// what the walk itself costs (fn does nothing).
func BenchmarkWalk(b *testing.B) {
	for _, preset := range []string{"small", "medium"} {
		root := b.TempDir()
		if _, err := gen.Generate(context.Background(), root, gen.Presets[preset]); err != nil {
			b.Fatal(err)
		}
		for _, mode := range []struct {
			name string
			leaf func(string) string
		}{{"all", nil}, {"leaves", layout.LeafFile}} {
			if preset == "medium" && mode.leaf == nil {
				continue // seconds per walk: the leaves mode is the scan's
			}
			b.Run(preset+"/"+mode.name, func(b *testing.B) {
				be, err := New(root, 16)
				if err != nil {
					b.Fatal(err)
				}
				var files atomic.Int64
				for b.Loop() {
					files.Store(0)
					err := be.WalkLeaves(context.Background(), "", mode.leaf, func(storage.File) error {
						files.Add(1)
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(files.Load()), "files")
			})
		}
	}
}

// A root that is missing or no directory is refused with a message that says so.
func TestNewRefusesBadRoot(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for root, want := range map[string]string{
		filepath.Join(dir, "missing"): "storage root " + filepath.Join(dir, "missing") + " does not exist",
		file:                          "storage root " + file + " is not a directory",
	} {
		if _, err := New(root, 1); err == nil || err.Error() != want {
			t.Errorf("New(%s): %v, want %q", root, err, want)
		}
	}
}
