package gen

import (
	"context"
	"crypto/sha256"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
)

// tiny has every feature of the generator at a size that writes in well under a second.
var tiny = Config{
	Seed: 7, Repos: 12, Nested: 0.3, Manifests: 8, Layers: 3, Tags: 3,
	MultiArchEvery: 3, Children: 2, Overwritten: 0.5, SharedShare: 0.4, SharedPool: 20,
	OCIShare: 0.5, Referrers: 0.3, Cosign: 0.5, Uploads: 0.3, LayerBytes: 16, Workers: 3,
}

func generate(t *testing.T, cfg Config) (string, Stats) {
	t.Helper()
	root := t.TempDir()
	st, err := Generate(context.Background(), root, cfg)
	if err != nil {
		t.Fatalf("Generate(seed %d): %v", cfg.Seed, err)
	}
	return root, st
}

// snapshot maps every file of a tree to the hash of its content.
func snapshot(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	files := map[string][32]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the tree at %s: %v", root, err)
	}
	return files
}

func TestDeterministicForASeed(t *testing.T) {
	rootA, stA := generate(t, tiny)
	other := tiny
	other.Workers = 1 // the schedule must not matter
	rootB, stB := generate(t, other)
	a, b := snapshot(t, rootA), snapshot(t, rootB)
	if len(a) != len(b) || stA != stB {
		t.Fatalf("two generations differ: %d vs %d files, %+v vs %+v", len(a), len(b), stA, stB)
	}
	for p, h := range a {
		if b[p] != h {
			t.Fatalf("%s differs between two generations with one seed", p)
		}
	}
	if int64(len(a)) != stA.Files {
		t.Errorf("Stats.Files = %d, tree holds %d files", stA.Files, len(a))
	}
	counted, err := Count(tiny)
	if err != nil {
		t.Fatalf("Count(tiny): %v", err)
	}
	if counted != stA {
		t.Errorf("Count = %+v, Generate = %+v", counted, stA)
	}

	reseeded := tiny
	reseeded.Seed++
	rootC, _ := generate(t, reseeded)
	if c := snapshot(t, rootC); len(c) == len(a) && c[firstKey(a)] == a[firstKey(a)] {
		t.Error("another seed gave the same tree")
	}
}

func firstKey(m map[string][32]byte) string {
	for k := range m {
		if strings.Contains(k, "/blobs/") {
			return k
		}
	}
	return ""
}

// TestTreeIsConsistent checks the generated tree the way a registry would read it:
// content under its digest, links naming their directory's digest, and every
// reference of every manifest present and linked into its repository.
func TestTreeIsConsistent(t *testing.T) {
	root, st := generate(t, tiny)
	files := snapshot(t, root)
	exists := func(p string) bool { _, ok := files[p]; return ok }
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		return b
	}
	kinds := map[manifest.Type]int{}
	var referrers, subjects, indexes, uploads int
	for p := range files {
		info := layout.Classify(p)
		switch info.Kind {
		case layout.KindBlobData:
			if files[p] != info.Digest {
				t.Errorf("%s does not hash to its digest", p)
			}
		case layout.KindLayerLink, layout.KindTagIndexLink:
			if string(read(p)) != info.Digest.String() {
				t.Errorf("%s holds %q, want %q", p, read(p), info.Digest.String())
			}
			if !exists(layout.BlobData(info.Digest)) {
				t.Errorf("%s links a missing blob", p)
			}
		case layout.KindTagCurrentLink:
			d, err := layout.ParseLink(read(p))
			if err != nil || !exists(layout.RevisionDir(info.Repo, d)+"/link") {
				t.Errorf("%s names no revision of its repository", p)
			}
			if !exists(layout.TagIndexDir(info.Repo, info.Tag, d) + "/link") {
				t.Errorf("%s: the current target is missing from the tag's history", p)
			}
		case layout.KindRevisionLink:
			if string(read(p)) != info.Digest.String() {
				t.Errorf("%s holds %q, want %q", p, read(p), info.Digest.String())
			}
			body := read(layout.BlobData(info.Digest))
			m, err := manifest.Parse(body)
			if err != nil {
				t.Fatalf("%s: the manifest does not parse: %v", p, err)
			}
			kinds[m.Type]++
			for _, c := range m.Children {
				indexes++
				if !exists(layout.RevisionDir(info.Repo, c) + "/link") {
					t.Errorf("%s: child %s is no revision of the repository", p, c)
				}
			}
			for _, b := range m.Blobs {
				if !exists(layout.BlobData(b)) || !exists(layout.LayerDir(info.Repo, b)+"/link") {
					t.Errorf("%s: blob %s missing or not linked into the repository", p, b)
				}
			}
			if !m.Subject.IsZero() {
				referrers++
				if m.ArtifactType == "" {
					t.Errorf("%s: referrer without artifactType", p)
				}
				if exists(layout.RevisionDir(info.Repo, m.Subject) + "/link") {
					subjects++
				}
			}
		case layout.KindUploadFile:
			uploads++
		default:
			t.Errorf("%s is not part of the registry layout", p)
		}
	}
	for _, k := range []manifest.Type{manifest.DockerSchema2, manifest.DockerList, manifest.OCIManifest, manifest.OCIIndex} {
		if kinds[k] == 0 {
			t.Errorf("no %s manifest in the tree: %v", k, kinds)
		}
	}
	if referrers == 0 || subjects != referrers || indexes == 0 || uploads == 0 || st.Tags <= int64(tiny.Repos*tiny.Tags) {
		t.Errorf("missing features: %d referrers (%d with their subject), %d index children, %d upload files, %d tags (cosign tags add to %d)",
			referrers, subjects, indexes, uploads, st.Tags, tiny.Repos*tiny.Tags)
	}
	var nested bool
	for _, n := range repoNames(tiny) {
		nested = nested || strings.Contains(n, "/sub-")
	}
	if !nested {
		t.Error("no nested repository")
	}
}

// TestMediumMatchesTheDocumentedShape guards the medium preset: upstream's documented
// figures were taken on a tree of this shape (docs/registry-storage.md).
func TestMediumMatchesTheDocumentedShape(t *testing.T) {
	st, err := Count(Presets["medium"])
	if err != nil {
		t.Fatalf("Count(medium): %v", err)
	}
	if st.Repositories != 500 || st.Revisions != 10000 || st.Tags != 1500 || st.Files < 125000 || st.Files > 131000 {
		t.Errorf("medium: %+v; want 500 repositories, 10,000 manifests, 1,500 tags, about 128,000 files", st)
	}
	mt, err := Count(Presets["manytags"])
	if err != nil {
		t.Fatalf("Count(manytags): %v", err)
	}
	if mt.Repositories != 5 || mt.Revisions != 10000 || mt.Tags != 5000 || mt.Files < 77000 || mt.Files > 81000 {
		t.Errorf("manytags: %+v; want 5 repositories, 10,000 manifests, 5,000 tags, about 79,000 files", mt)
	}
}

func TestFromArgs(t *testing.T) {
	cfg, err := FromArgs(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-preset", "medium", "-repos", "7", "-referrers", "0.5"}, nil)
	if err != nil {
		t.Fatalf("FromArgs(-preset medium -repos 7 -referrers 0.5): %v", err)
	}
	want := Presets["medium"]
	want.Repos, want.Referrers = 7, 0.5
	if cfg != want {
		t.Errorf("got %v\nwant %v", cfg, want)
	}
	if _, err := FromArgs(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-preset", "nope"}, nil); err == nil {
		t.Error("unknown preset accepted")
	}
	if _, err := FromArgs(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-children", "30"}, nil); err == nil {
		t.Error("more children than manifests accepted")
	}
}

func TestRefusesAnExistingTree(t *testing.T) {
	root, _ := generate(t, Config{Seed: 1, Repos: 1, Manifests: 1, Layers: 1, Tags: 1, LayerBytes: 8})
	if _, err := Generate(context.Background(), root, tiny); err == nil {
		t.Error("wrote over an existing registry tree")
	}
}
