package regdriver

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a", "f"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := factory.Create(ctx, "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	b := Wrap(d, "test", 2)
	r, err := b.Open(ctx, "a/f")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(data) != "content" {
		t.Fatalf("read %q, %v", data, err)
	}
	if _, err := b.Open(ctx, "a/missing"); !storage.IsNotExist(err) {
		t.Fatalf("Open of a missing file: %v", err)
	}
}
