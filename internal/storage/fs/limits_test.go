package fs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// A read stops at its limit: a file one byte larger is refused, also when it is
// sparse and huge, and a file at the limit is read whole.
func TestReadFileLimit(t *testing.T) {
	root := t.TempDir()
	b, err := New(root, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{0, 10, 64 << 10, 64<<10 + 1, 200 << 10} {
		write(t, root, "f", strings.Repeat("x", n))
		for _, limit := range []int64{int64(n), int64(n) - 1} {
			data, err := b.ReadFile(ctx, "f", limit)
			switch {
			case limit < 0:
			case int64(n) <= limit && (err != nil || len(data) != n):
				t.Errorf("size %d, limit %d: read %d bytes, %v; want it whole", n, limit, len(data), err)
			case int64(n) > limit && !storage.IsTooLarge(err):
				t.Errorf("size %d, limit %d: err = %v, want too large", n, limit, err)
			}
		}
	}
	sparse, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	sparse.Close()
	if _, err := b.ReadFile(ctx, "sparse", 4<<20); !storage.IsTooLarge(err) {
		t.Fatalf("1 GiB sparse file with a 4 MiB limit: err = %v, want too large", err)
	}
}

// A name that is not UTF-8 is reported as such and never descended into.
func TestWalkReportsBadNames(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a/bad\xff/hidden/link", "x")
	write(t, root, "a/good/link", "x")
	b, err := New(root, 2)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bad, files []string
	err = b.Walk(context.Background(), "", func(f storage.File) error {
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
		t.Fatalf("walk: %v", err)
	}
	if len(bad) != 1 || bad[0] != "a/bad\xff" {
		t.Errorf("bad names = %q, want [a/bad\\xff]", bad)
	}
	if len(files) != 1 || files[0] != "a/good/link" {
		t.Errorf("files = %q, want only a/good/link", files)
	}
}
