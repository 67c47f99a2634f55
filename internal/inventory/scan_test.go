package inventory

import (
	"context"
	"crypto/sha256"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
)

type tree struct {
	t    *testing.T
	root string
}

func (tr tree) write(p string, content []byte) {
	tr.t.Helper()
	layouttest.Tree{T: tr.t, Root: tr.root}.Write(p, content)
}

func (tr tree) blob(content string) layout.Digest {
	tr.t.Helper()
	return layouttest.Tree{T: tr.t, Root: tr.root}.Blob([]byte(content))
}

func (tr tree) link(dir string, d layout.Digest) { tr.write(dir+"/link", []byte(d.String())) }

func scan(t *testing.T, root string) *Inventory {
	t.Helper()
	b, err := fs.New(root, 4)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Scan(context.Background(), b, 4)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func problems(inv *Inventory) map[ProblemKind]int {
	m := map[ProblemKind]int{}
	for _, p := range inv.Problems {
		m[p.Kind]++
	}
	return m
}

func TestScan(t *testing.T) {
	tr := tree{t, t.TempDir()}
	layer := tr.blob("layer")
	config := tr.blob("config")
	man := tr.blob(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` +
		config.String() + `"},"layers":[{"digest":"` + layer.String() + `"}]}`)
	idx := tr.blob(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"` + man.String() + `"}]}`)
	unknown := tr.blob(`{"schemaVersion":2,"mediaType":"application/vnd.example+json"}`)

	// "app": an index tagged, its child untagged; an upload; a transient file.
	tr.link(layout.RevisionDir("app", man), man)
	tr.link(layout.RevisionDir("app", idx), idx)
	tr.link(layout.LayerDir("app", layer), layer)
	tr.link(layout.LayerDir("app", config), config)
	tr.write(layout.TagCurrentLink("app", "v1"), []byte(idx.String()))
	tr.link(layout.TagIndexDir("app", "v1", idx), idx)
	tr.write(layout.UploadDir("app", "u1")+"/startedat", []byte("2026-01-02T03:04:05Z"))
	tr.write(layout.UploadDir("app", "u1")+"/data", nil)
	// Transient files inside blob and link directories are not seen (those are not
	// listed); elsewhere they are reported.
	tr.write(layout.LayerDir("app", layer)+"/link.abc.tmp", nil)
	tr.write(layout.RepoDir("app")+"/_layers/sha256/x.abc.tmp", nil)
	// "app/nested": a garbled revision link, a dangling layer link, a missing manifest blob.
	tr.write(layout.RevisionDir("app/nested", man)+"/link", []byte("garbage"))
	missing := layout.Digest(sha256.Sum256([]byte("missing")))
	tr.link(layout.LayerDir("app/nested", missing), missing)
	tr.link(layout.RevisionDir("app/nested", missing), missing)
	// "odd": an unknown manifest and a garbled tag: opaque.
	tr.link(layout.RevisionDir("odd", unknown), unknown)
	tr.write(layout.TagCurrentLink("odd", "t"), nil)

	// A link directory without its link (an interrupted write or delete).
	emptyDir := filepath.Join(tr.root, filepath.FromSlash(layout.LayerDir("odd", layer)))
	if err := os.MkdirAll(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}

	inv := scan(t, tr.root)
	if len(inv.Repos["odd"].Layers) != 1 {
		t.Fatal("a link directory without link must be recorded, for the plan to remove it")
	}
	app := inv.Repos["app"]
	if app == nil || len(app.Revisions) != 2 || len(app.Layers) != 2 || inv.Digest(app.Tags["v1"].Current) != idx || app.Opaque != "" {
		t.Fatalf("app = %+v", app)
	}
	if u := app.Uploads["u1"]; u == nil || u.StartedAt.IsZero() || len(u.Files) != 2 {
		t.Fatalf("upload = %+v", u)
	}
	if app.Unknown != 1 {
		t.Fatalf("the transient file must count as unknown content, got %d", app.Unknown)
	}
	idxID, _ := inv.Lookup(idx)
	if m, ok := inv.Manifest(idxID); !ok || m.Err != nil || len(m.Children) != 1 {
		t.Fatalf("index manifest = %+v", m)
	}
	if inv.Repos["odd"].Opaque == "" {
		t.Fatal("a repository with an unknown manifest and a garbled tag must be opaque")
	}
	if len(inv.Blobs) != 5 || inv.Files != 19 {
		t.Fatalf("blobs = %d, files = %d", len(inv.Blobs), inv.Files)
	}
	got := problems(inv)
	want := map[ProblemKind]int{GarbledLink: 2, MissingBlob: 2, BadManifest: 1, TransientFile: 1, MissingLink: 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s problems = %d, want %d (all: %v)", k, got[k], n, inv.Problems)
		}
	}
}

func TestScanRefusesWhatIsNoRegistry(t *testing.T) {
	root := t.TempDir()
	b, _ := fs.New(root, 1)
	if _, err := Scan(context.Background(), b, 1); err == nil {
		t.Fatal("scanned a directory that is no registry")
	}
}

func TestScanSymlinkMakesItBlind(t *testing.T) {
	tr := tree{t, t.TempDir()}
	other := t.TempDir()
	d := tr.blob("x")
	tr.link(layout.LayerDir("a", d), d)
	if err := os.Symlink(other, filepath.Join(tr.root, filepath.FromSlash(layout.RepositoriesDir), "b")); err != nil {
		t.Fatal(err)
	}
	inv := scan(t, tr.root)
	if len(inv.Blind) != 1 {
		t.Fatalf("blind = %v", inv.Blind)
	}
}

// Each unreadable entry is reported; where it lies decides whether it blinds the
// scan (no blob deleted) and keeps its repository whole, or is merely ignored.
func TestScanUnreadableEntriesByPlace(t *testing.T) {
	d := layout.Digest(sha256.Sum256([]byte("x")))
	cases := []struct {
		name       string
		entry      string // where the symlink or bad name goes
		badName    bool   // a directory with a non-UTF-8 name instead of a symlink
		blind      bool
		opaqueRepo string
	}{
		{"symlink in _layers", layout.RepoDir("a") + "/_layers/sha256/" + d.Hex(), false, false, ""},
		{"symlink in _uploads", layout.RepoDir("a") + "/_uploads/u1", false, false, ""},
		{"symlink in a tag's index", layout.RepoDir("a") + "/_manifests/tags/v1/index/sha256/" + d.Hex(), false, false, ""},
		{"symlink among revisions", layout.RepoDir("a") + "/_manifests/revisions/sha256/" + d.Hex(), false, true, "a"},
		{"symlink as current", layout.RepoDir("a") + "/_manifests/tags/v2/current", false, true, "a"},
		{"symlink above _manifests", layout.RepoDir("a") + "/sub", false, true, ""},
		{"symlink among blobs", layout.Sha256BlobsDir + "/ab", false, true, ""},
		{"bad name above _manifests", layout.RepoDir("a") + "/bad\xff", true, true, ""},
		{"bad name in _layers", layout.RepoDir("a") + "/_layers/sha256/\xff", true, false, ""},
		{"bad name among revisions", layout.RepoDir("a") + "/_manifests/revisions/sha256/\xfe", true, true, "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := tree{t, t.TempDir()}
			layer := tr.blob("layer")
			man := tr.blob(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` +
				layer.String() + `"},"layers":[]}`)
			tr.link(layout.RevisionDir("a", man), man)
			tr.link(layout.LayerDir("a", layer), layer)
			tr.write(layout.TagCurrentLink("a", "v1"), []byte(man.String()))
			full := filepath.Join(tr.root, filepath.FromSlash(c.entry))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if c.badName {
				tr.write(c.entry+"/link", []byte(d.String()))
			} else if err := os.Symlink(t.TempDir(), full); err != nil {
				t.Fatal(err)
			}
			inv := scan(t, tr.root)
			if got := len(inv.Blind) > 0; got != c.blind {
				t.Errorf("blind = %v (%v), want %v", got, inv.Blind, c.blind)
			}
			if got := inv.Repos["a"].Opaque; (got != "") != (c.opaqueRepo == "a") {
				t.Errorf("repository a opaque = %q, want opaque %v", got, c.opaqueRepo == "a")
			}
			want := Irregular
			if c.badName {
				want = BadName
			}
			if n := problems(inv)[want]; n != 1 {
				t.Fatalf("%s problems = %d, want 1: %+v", want, n, inv.Problems)
			}
			for _, p := range inv.Problems {
				if p.Kind == want && !utf8.ValidString(p.Path) {
					t.Errorf("problem path %q is not escaped", p.Path)
				}
			}
		})
	}
}

// A tag without current link keeps its history: an unreadable entry there may hide
// what it keeps, so the repository is kept whole.
func TestScanHiddenHistoryOfTagWithoutCurrent(t *testing.T) {
	tr := tree{t, t.TempDir()}
	man := tr.blob(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:` +
		strings.Repeat("0", 64) + `"},"layers":[]}`)
	tr.link(layout.RevisionDir("a", man), man)
	full := filepath.Join(tr.root, filepath.FromSlash(layout.TagIndexDir("a", "v1", man)))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), full); err != nil {
		t.Fatal(err)
	}
	inv := scan(t, tr.root)
	if inv.Repos["a"].Opaque == "" || len(inv.Blind) != 0 {
		t.Fatalf("opaque = %q, blind = %v: want the repository kept whole, blob deletion on", inv.Repos["a"].Opaque, inv.Blind)
	}
}

// A manifest blob larger than the registry accepts is not read: it is a bad
// manifest, and its repository is kept whole.
func TestScanOversizedManifest(t *testing.T) {
	tr := tree{t, t.TempDir()}
	big := strings.Repeat(" ", layout.MaxManifestSize+1)
	d := tr.blob(big)
	tr.link(layout.RevisionDir("a", d), d)
	tr.write(layout.TagCurrentLink("a", "v1"), []byte(d.String()))
	inv := scan(t, tr.root)
	m, ok := inv.Manifest(0)
	if !ok || !storage.IsTooLarge(m.Err) {
		t.Fatalf("manifest read = %+v, %v; want a too-large error", m, ok)
	}
	if inv.Repos["a"].Opaque == "" || problems(inv)[BadManifest] != 1 {
		t.Fatalf("opaque = %q, problems = %+v", inv.Repos["a"].Opaque, inv.Problems)
	}
}

// vanishing removes a directory just before the scan reads the file in it, as a
// live registry's API or a completing upload does.
type vanishing struct {
	*fs.Backend
	root string
	dirs map[string]string // the directory of the file read -> the directory removed
}

func (v vanishing) ReadFile(ctx context.Context, p string, limit int64) ([]byte, error) {
	if dir, ok := v.dirs[path.Dir(p)]; ok {
		os.RemoveAll(filepath.Join(v.root, filepath.FromSlash(dir)))
	}
	return v.Backend.ReadFile(ctx, p, limit)
}

// Links deleted under the scan are taken as gone: no problem, nothing recorded.
// A link directory left without its link (a crash) is still a problem.
func TestScanTakesVanishedLinksAsGone(t *testing.T) {
	root := t.TempDir()
	tr := tree{t, root}
	m := tr.blob(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:` +
		strings.Repeat("a", 64) + `","size":1},"layers":[]}`)
	tr.link(layout.RevisionDir("app", m), m)
	tr.link(layout.TagDir("app", "gone")+"/current", m)
	tr.link(layout.TagDir("app", "kept")+"/current", m)
	if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(layout.RevisionDir("app", layout.Digest{1}))), 0o755); err != nil {
		t.Fatal(err)
	}
	fb, err := fs.New(root, 4)
	if err != nil {
		t.Fatal(err)
	}
	b := vanishing{Backend: fb, root: root, dirs: map[string]string{layout.TagDir("app", "gone") + "/current": layout.TagDir("app", "gone")}}
	inv, err := Scan(context.Background(), b, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inv.Repos["app"].Tags["gone"]; ok && inv.Repos["app"].Tags["gone"].HasCurrent {
		t.Errorf("a tag deleted under the scan has a current link")
	}
	if !inv.Repos["app"].Tags["kept"].HasCurrent {
		t.Errorf("the other tag lost its current link")
	}
	if got := problems(inv)[MissingLink]; got != 1 {
		t.Errorf("%d missing-link problems, want 1 (the crash's remnant, not the vanished tag): %+v", got, inv.Problems)
	}
}

// The scan's stages count what it found: every entry, read from the builder's count,
// and every manifest read once.
func TestScanTrackedCounts(t *testing.T) {
	tr := tree{t, t.TempDir()}
	layer, config := tr.blob("layer"), tr.blob("config")
	man := tr.blob(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` +
		config.String() + `"},"layers":[{"digest":"` + layer.String() + `"}]}`)
	tr.link(layout.RevisionDir("app", man), man)
	tr.link(layout.LayerDir("app", layer), layer)
	tr.write(layout.TagCurrentLink("app", "v1"), []byte(man.String()))
	b, err := fs.New(tr.root, 4)
	if err != nil {
		t.Fatal(err)
	}
	pt := progress.New()
	inv, err := ScanTracked(context.Background(), b, 4, pt)
	if err != nil {
		t.Fatal(err)
	}
	stages := pt.Stages()
	if len(stages) != 2 {
		t.Fatalf("%d stages", len(stages))
	}
	if s := stages[0].Snapshot(); s.Name != "scanning" || s.Done != inv.Files || s.Done != 6 || !s.Ended {
		t.Errorf("scan stage %+v, %d files", s, inv.Files)
	}
	if s := stages[1].Snapshot(); s.Name != "reading manifests" || s.Done != 1 || s.Total != 1 || !s.Ended {
		t.Errorf("manifest stage %+v", s)
	}
}
