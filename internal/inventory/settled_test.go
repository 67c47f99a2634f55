package inventory

import (
	"context"
	"crypto/sha256"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
)

// TestSettled: what a scan finds half-written is set apart once the registry's
// write is finished, and damage stays a problem.
func TestSettled(t *testing.T) {
	late := []byte("a layer pushed during the scan")
	lateDigest := layout.Digest(sha256.Sum256(late))
	upload := layout.UploadDir("app", "7d0b6d8e-upload")
	history := path.Dir(layout.TagIndexLink("app", "v1", lateDigest)) // a history entry's directory
	onLate := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` +
		lateDigest.String() + `"},"layers":[]}`) // a manifest
	tmp := layout.RepoDir("app") + "/_layers/sha256/link.1234.tmp" // where a listing sees it
	tests := []struct {
		name string
		// before writes the state the scan sees; after, what the registry writes
		// once the scan has passed (nil: nothing).
		before, after func(tr layouttest.Tree, m layout.Digest)
		kind          ProblemKind
		settled       bool
	}{
		{
			name:    "layer link whose blob is written after the scan passed the blobs",
			before:  func(tr layouttest.Tree, _ layout.Digest) { tr.Link(layout.LayerLink("app", lateDigest), lateDigest) },
			after:   func(tr layouttest.Tree, _ layout.Digest) { tr.Blob(late) },
			kind:    MissingBlob,
			settled: true,
		},
		{
			name:   "layer link to a blob that never comes",
			before: func(tr layouttest.Tree, _ layout.Digest) { tr.Link(layout.LayerLink("app", lateDigest), lateDigest) },
			kind:   MissingBlob,
		},
		{
			name: "revision whose manifest blob comes after",
			before: func(tr layouttest.Tree, _ layout.Digest) {
				tr.Link(layout.RevisionLink("app", lateDigest), lateDigest)
			},
			after:   func(tr layouttest.Tree, _ layout.Digest) { tr.Blob(late) },
			kind:    MissingBlob,
			settled: true,
		},
		{
			name:    "tag whose current link is written after its history",
			before:  func(tr layouttest.Tree, m layout.Digest) { tr.Link(layout.TagIndexLink("app", "v2", m), m) },
			after:   func(tr layouttest.Tree, m layout.Digest) { tr.Link(layout.TagCurrentLink("app", "v2"), m) },
			kind:    MissingLink,
			settled: true,
		},
		{
			name:   "tag without current link for good",
			before: func(tr layouttest.Tree, m layout.Digest) { tr.Link(layout.TagIndexLink("app", "v2", m), m) },
			kind:   MissingLink,
		},
		{
			name: "tag on a manifest whose revision link comes after",
			before: func(tr layouttest.Tree, _ layout.Digest) {
				tr.Link(layout.TagCurrentLink("app", "v2"), tr.Blob(onLate))
			},
			after: func(tr layouttest.Tree, _ layout.Digest) {
				m2 := tr.Blob(onLate)
				tr.Link(layout.RevisionLink("app", m2), m2)
			},
			kind:    DanglingTag,
			settled: true,
		},
		{
			name:   "history entry whose link is written after its directory",
			before: func(tr layouttest.Tree, _ layout.Digest) { mkdir(tr, history) },
			after: func(tr layouttest.Tree, _ layout.Digest) {
				tr.Link(layout.TagIndexLink("app", "v1", lateDigest), lateDigest)
			},
			kind:    MissingLink,
			settled: true,
		},
		{
			name:    "history entry without its link, removed whole since",
			before:  func(tr layouttest.Tree, _ layout.Digest) { mkdir(tr, history) },
			after:   func(tr layouttest.Tree, _ layout.Digest) { remove(tr, history) },
			kind:    MissingLink,
			settled: true,
		},
		{
			name:   "history entry without its link for good",
			before: func(tr layouttest.Tree, _ layout.Digest) { mkdir(tr, history) },
			kind:   MissingLink,
		},
		{
			name:    "temporary file renamed since",
			before:  func(tr layouttest.Tree, _ layout.Digest) { tr.Write(tmp, []byte("sha256:")) },
			after:   func(tr layouttest.Tree, _ layout.Digest) { remove(tr, tmp) },
			kind:    TransientFile,
			settled: true,
		},
		{
			name:   "temporary file left behind",
			before: func(tr layouttest.Tree, _ layout.Digest) { tr.Write(tmp, []byte("sha256:")) },
			kind:   TransientFile,
		},
		{
			name:    "upload the registry was removing as it completed",
			before:  func(tr layouttest.Tree, _ layout.Digest) { tr.Write(upload+"/data", late) },
			after:   func(tr layouttest.Tree, _ layout.Digest) { remove(tr, upload+"/data") },
			kind:    BadUpload,
			settled: true,
		},
		{
			name:   "upload without startedat left behind",
			before: func(tr layouttest.Tree, _ layout.Digest) { tr.Write(upload+"/data", late) },
			kind:   BadUpload,
		},
		{
			name: "upload with a garbled startedat, even once gone",
			before: func(tr layouttest.Tree, _ layout.Digest) {
				tr.Write(upload+"/"+layout.StartedAt, []byte("garbage"))
				tr.Write(upload+"/data", late)
			},
			after: func(tr layouttest.Tree, _ layout.Digest) { remove(tr, upload+"/data") },
			kind:  BadUpload,
		},
		{
			name:   "garbled link, even once rewritten",
			before: func(tr layouttest.Tree, m layout.Digest) { tr.Write(layout.RevisionLink("app", m), []byte("garbage")) },
			after:  func(tr layouttest.Tree, m layout.Digest) { tr.Link(layout.RevisionLink("app", m), m) },
			kind:   GarbledLink,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := layouttest.New(t)
			m := tr.Image("app", "one")
			tr.Tag("app", "v1", m)
			tc.before(tr, m)
			b, err := fs.New(tr.Root, 4)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			inv, err := Scan(ctx, b, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Problems) != 1 || inv.Problems[0].Kind != tc.kind {
				t.Fatalf("scan found %+v, want one %s", inv.Problems, tc.kind)
			}
			if tc.after != nil {
				tc.after(tr, m)
			}
			settled, remaining, err := Settled(ctx, b, inv.Problems, 4)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(settled) == 1; got != tc.settled || len(settled)+len(remaining) != 1 {
				t.Errorf("settled %+v, remaining %+v; want settled %v", settled, remaining, tc.settled)
			}
		})
	}
}

func mkdir(tr layouttest.Tree, p string) {
	tr.T.Helper()
	if err := os.MkdirAll(filepath.Join(tr.Root, filepath.FromSlash(p)), 0o755); err != nil {
		tr.T.Fatal(err)
	}
}

func remove(tr layouttest.Tree, p string) {
	tr.T.Helper()
	if err := os.Remove(filepath.Join(tr.Root, filepath.FromSlash(p))); err != nil {
		tr.T.Fatal(err)
	}
}

// An upload the registry removes as the scan reads its startedat (it finished) is
// taken as gone: what the scan listed of it before settles.
func TestSettledUploadRemovedUnderScan(t *testing.T) {
	tr := layouttest.New(t)
	m := tr.Image("app", "one")
	tr.Tag("app", "v1", m)
	upload := layout.UploadDir("app", "7d0b6d8e-upload")
	tr.Write(upload+"/"+layout.StartedAt, []byte("2026-12-02T08:00:00Z"))
	tr.Write(upload+"/data", []byte("pushed"))
	fb, err := fs.New(tr.Root, 4)
	if err != nil {
		t.Fatal(err)
	}
	b := vanishing{Backend: fb, root: tr.Root, dirs: map[string]string{upload: upload}}
	ctx := context.Background()
	inv, err := Scan(ctx, b, 4)
	if err != nil {
		t.Fatal(err)
	}
	settled, remaining, err := Settled(ctx, b, inv.Problems, 4)
	if err != nil || len(remaining) != 0 {
		t.Errorf("settled %+v, remaining %+v (%v): want no problem left", settled, remaining, err)
	}
}
