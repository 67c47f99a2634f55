package s3

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	fsbackend "github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/internal/storage/gcs"
	"github.com/clean-registry/clean-registry/v2/test/harness"
	"github.com/clean-registry/clean-registry/v2/test/s3/s3test"
)

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s to %s: %v", from, to, err)
	}
}

func filesBelow(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing the files below %s: %v", root, err)
	}
	sort.Strings(out)
	return out
}

// TestRegistryOnGCS cleans a registry tree held by a GCS emulator through the
// registry's own gcs driver. The tree is a real registry's (pushed on the
// filesystem driver: the gcs driver's uploads go to Google's fixed upload URL, which
// no emulator can take), loaded into fake-gcs-server. After cleaning, the objects
// left are exported back to a filesystem, where the registry serves them: every kept
// image pulls intact, every deleted manifest is gone, and the same files remain as
// when the filesystem backend cleans a copy of the same tree.
func TestRegistryOnGCS(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	fsRoot := filepath.Join(work, "pushed")
	reg := harness.StartFS(t, fsRoot)
	sc := pushScenario(t, reg.Session(t))
	reg.StopT(t)

	// The reference: the filesystem backend cleans a copy.
	reference := filepath.Join(work, "reference")
	copyTree(t, fsRoot, reference)
	fb, err := fsbackend.New(reference, 4)
	if err != nil {
		t.Fatalf("opening the reference copy with the filesystem backend: %v", err)
	}
	if _, err := clean.Run(ctx, fb, clean.Options{Jobs: 4, UploadAge: 24 * time.Hour}); err != nil {
		t.Fatalf("cleaning the reference copy on the filesystem: %v", err)
	}

	const bucket = "registry-bucket"
	data := filepath.Join(work, "gcs-data")
	copyTree(t, fsRoot, filepath.Join(data, bucket, "reg"))
	emu, err := s3test.StartFakeGCS(data, work)
	if err != nil {
		harness.Unavailable(t, "no GCS emulator: %v", err)
	}
	defer emu.Close()
	t.Setenv("STORAGE_EMULATOR_HOST", emu.Host)
	keyfile := filepath.Join(work, "key.json")
	if err := s3test.WriteServiceAccountKey(keyfile); err != nil {
		t.Fatalf("writing the emulator's service account key: %v", err)
	}
	params := map[string]any{"bucket": bucket, "rootdirectory": "/reg/", "keyfile": keyfile}

	if _, err := gcs.New(ctx, map[string]any{"bucket": "no-such-bucket", "keyfile": keyfile}, 2); err == nil {
		t.Error("a missing bucket was accepted")
	}
	b, err := gcs.New(ctx, params, 8)
	if err != nil {
		t.Fatalf("opening the gcs backend on %s: %v", bucket, err)
	}
	if b.String() != "gcs://"+bucket+"/reg" {
		t.Errorf("String() = %q, want %q", b.String(), "gcs://"+bucket+"/reg")
	}
	backendContract(t, b)

	rep, err := clean.Run(ctx, b, clean.Options{Jobs: 8, UploadAge: 24 * time.Hour})
	if err != nil {
		t.Fatalf("cleaning on GCS: %v", err)
	}
	sc.checkReport(t, rep)
	t.Logf("driver calls: %v", rep.Requests)

	// Export what is left and serve it.
	export := filepath.Join(work, "export")
	var mu sync.Mutex
	err = b.Walk(ctx, "", func(f storage.File) error {
		content, err := b.ReadFile(ctx, f.Path, 1<<20)
		if err != nil {
			return err
		}
		dst := filepath.Join(export, filepath.FromSlash(f.Path))
		mu.Lock()
		defer mu.Unlock()
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, content, 0o644)
	})
	if err != nil {
		t.Fatalf("exporting what is left on GCS: %v", err)
	}
	got, want := filesBelow(t, export), filesBelow(t, reference)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("files left on GCS differ from the filesystem backend's run:\nGCS:\n%s\nfilesystem:\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sc.verify(t, harness.StartFS(t, export).Session(t))
}

// backendContract checks the basics of a backend over a registry tree, without
// changing it.
func backendContract(t *testing.T, b storage.Backend) {
	t.Helper()
	ctx := context.Background()
	if ok, err := b.DirExists(ctx, layout.V2Dir); err != nil || !ok {
		t.Errorf("DirExists(%s) = %v, %v; want true, nil", layout.V2Dir, ok, err)
	}
	if ok, err := b.DirExists(ctx, layout.RepoDir("ap")); err != nil || ok {
		t.Errorf("DirExists(%s), a name's prefix, = %v, %v; want false, nil", layout.RepoDir("ap"), ok, err)
	}
	files := walkAll(t, b, layout.BlobsDir)
	if len(files) == 0 {
		t.Fatal("no blobs walked")
	}
	for p, f := range files {
		st, err := b.Stat(ctx, p)
		if err != nil || st.Size != f.Size || f.Size <= 0 || f.ModTime.IsZero() {
			t.Errorf("%s: walked %+v, stat %+v, %v; want one positive size and a modification time", p, f, st, err)
		}
		break
	}
	if _, err := b.ReadFile(ctx, "docker/registry/v2/none", 1<<20); !storage.IsNotExist(err) {
		t.Errorf("ReadFile of a missing file: %v, want not-exist", err)
	}
	if _, err := b.Stat(ctx, "docker/registry/v2/none"); !storage.IsNotExist(err) {
		t.Errorf("Stat of a missing file: %v, want not-exist", err)
	}
	if _, err := b.Stat(ctx, layout.BlobsDir); !storage.IsNotExist(err) {
		t.Errorf("Stat of a directory: %v, want not-exist", err)
	}
	missing := layout.BlobDir(digestOf("never stored"))
	if err := b.Delete(ctx, []storage.Unit{{Dir: missing, Files: []string{"data"}}, {Dir: missing + "x"}}); err != nil {
		t.Errorf("deleting what is not there: %v", err)
	}
}
