package regdriver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// The adapter over the registry's own filesystem driver: the same driver API the gcs
// and azure drivers offer, with no server needed.
func TestDriverBackend(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	files := map[string]string{
		"docker/registry/v2/blobs/sha256/ab/ab01/data":                         "blob",
		"docker/registry/v2/repositories/a/_layers/sha256/ab01/link":           "sha256:ab01",
		"docker/registry/v2/repositories/a/_uploads/u1/startedat":              "2020-01-01T00:00:00Z",
		"docker/registry/v2/repositories/a/_uploads/u1/hashstates/sha256/0":    "h",
		"docker/registry/v2/repositories/a/b/_layers/sha256/ab01/link":         "sha256:ab01",
		"docker/registry/v2/repositories/ab/_manifests/tags/t/current/link":    "sha256:ab01",
		"docker/registry/v2/repositories/a/_manifests/revisions/sha256/x/link": "sha256:x",
	}
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	b := Wrap(d, "test", 3)

	walk := func(dir string) []string {
		var mu sync.Mutex
		var got []string
		err := b.Walk(ctx, dir, func(f storage.File) error {
			mu.Lock()
			defer mu.Unlock()
			if f.Size != int64(len(files[f.Path])) || f.ModTime.IsZero() {
				t.Errorf("%s: size %d time %v", f.Path, f.Size, f.ModTime)
			}
			got = append(got, f.Path)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		return got
	}
	var all []string
	for p := range files {
		all = append(all, p)
	}
	sort.Strings(all)
	if got := walk(""); strings.Join(got, ",") != strings.Join(all, ",") {
		t.Errorf("walk:\n%v\nwant\n%v", got, all)
	}
	if got := walk("docker/registry/v2/none"); len(got) != 0 {
		t.Errorf("walk of a missing dir: %v", got)
	}
	if data, err := b.ReadFile(ctx, "docker/registry/v2/blobs/sha256/ab/ab01/data", 1<<20); err != nil || string(data) != "blob" {
		t.Errorf("ReadFile = %q, %v", data, err)
	}
	if _, err := b.ReadFile(ctx, "docker/registry/v2/none", 1<<20); !storage.IsNotExist(err) {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
	if _, err := b.Stat(ctx, "docker/registry/v2/blobs"); !storage.IsNotExist(err) {
		t.Errorf("Stat of a directory: %v", err)
	}
	if ok, err := b.DirExists(ctx, "docker/registry/v2/repositories/a"); !ok || err != nil {
		t.Errorf("DirExists = %v, %v", ok, err)
	}
	if ok, err := b.DirExists(ctx, "docker/registry/v2/repositories/zz"); ok || err != nil {
		t.Errorf("DirExists of a missing dir = %v, %v", ok, err)
	}

	// Removing repository a: its reserved directories only, never a/b, never ab.
	err = b.Delete(ctx, []storage.Unit{
		{Dir: "docker/registry/v2/repositories/a/_uploads"},
		{Dir: "docker/registry/v2/repositories/a/_layers"},
		{Dir: "docker/registry/v2/repositories/a/_manifests"},
		{Dir: "docker/registry/v2/blobs/sha256/cd/cd01", Files: []string{"data"}}, // never there
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"docker/registry/v2/blobs/sha256/ab/ab01/data",
		"docker/registry/v2/repositories/a/b/_layers/sha256/ab01/link",
		"docker/registry/v2/repositories/ab/_manifests/tags/t/current/link",
	}
	if got := walk(""); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after deletion:\n%v\nwant\n%v", got, want)
	}
	if err := b.Delete(ctx, []storage.Unit{{Dir: "/"}}); err == nil {
		t.Error("deleting the root was accepted")
	}
	if err := b.Delete(ctx, []storage.Unit{{Dir: "docker/x", Files: []string{"../../y"}}}); err == nil {
		t.Error("a file leaving its unit was accepted")
	}
	if n := b.Requests()["Delete"]; n != 4 {
		t.Errorf("Delete calls counted: %d, want 4", n)
	}
}

// The walk reports non-UTF-8 names without descending, stops at fn's first error and
// honours a cancelled context, with one job or several.
func TestDriverWalk(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	var names []string
	for i := range 60 {
		names = append(names, filepath.Join("r", string(rune('a'+i%6)), strings.Repeat("x", 1+i/6), "f"))
	}
	names = append(names, "r/bad\xff/hidden")
	for _, p := range names {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	for _, jobs := range []int{1, 4} {
		b := Wrap(d, "test", jobs)
		var mu sync.Mutex
		var files, bad []string
		err := b.Walk(ctx, "", func(f storage.File) error {
			mu.Lock()
			defer mu.Unlock()
			if f.BadName {
				bad = append(bad, f.Path)
			} else {
				files = append(files, f.Path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 60 || len(bad) != 1 || bad[0] != "r/bad\xff" {
			t.Errorf("jobs=%d: %d files, bad names %q", jobs, len(files), bad)
		}

		stop := errors.New("stop")
		calls := 0
		err = b.Walk(ctx, "", func(storage.File) error {
			mu.Lock()
			defer mu.Unlock()
			if calls++; calls == 5 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls >= 60 {
			t.Errorf("jobs=%d: err %v after %d calls, want fn's error early", jobs, err, calls)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Walk(cctx, "", func(storage.File) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("jobs=%d: cancelled walk: %v", jobs, err)
		}
	}
}
