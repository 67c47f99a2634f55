package fs

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

func TestOpen(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	write(t, outside, "f", "secret")
	write(t, root, "a/f", "ok")
	if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "a", "l")); err != nil {
		t.Fatal(err)
	}
	b, _ := New(root, 1)
	ctx := context.Background()
	r, err := b.Open(ctx, "a/f")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(data) != "ok" {
		t.Fatalf("read %q, %v", data, err)
	}
	if r, err := b.Open(ctx, "a/l"); err == nil {
		r.Close()
		t.Fatal("opened through a symlink")
	}
	if _, err := b.Open(ctx, "a/missing"); !storage.IsNotExist(err) {
		t.Fatalf("missing file error = %v", err)
	}
	if _, err := b.Open(ctx, "../x"); err == nil || storage.IsNotExist(err) {
		t.Fatalf("Open of an escape = %v, want an invalid path error", err)
	}
}
