package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

func TestMinus(t *testing.T) {
	got := minus([]string{"a", "b", "c", "e"}, []string{"b", "d", "e", "f"})
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("minus = %v, want [a c]", got)
	}
}

func TestByDepthDeepestFirst(t *testing.T) {
	got := byDepthDeepestFirst([]string{"a", "a/b/c", "a/b", "x/y"})
	want := [][]string{{"a/b/c"}, {"a/b", "x/y"}, {"a"}}
	if len(got) != len(want) {
		t.Fatalf("got %d groups %v, want %d: %v", len(got), got, len(want), want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("group %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestPlanCheck(t *testing.T) {
	after := &Listing{Files: []string{"keep/link"}, Dirs: []string{"keep"}}
	planned := []string{"gone", "gone2/x"}
	if p := planCheck(planned, []string{"gone/data", "gone2/x"}, after); len(p) != 0 {
		t.Errorf("a run that did its plan: planCheck reported %v, want nothing", p)
	}
	if p := planCheck([]string{"keep"}, []string{"other/data"}, after); len(p) != 2 {
		t.Errorf("want a planned path left and an unplanned deletion, got %v", p)
	}
}

func digestOf(s string) layout.Digest {
	d, _ := layout.ParseHex(strings.Repeat(s, 64)[:64])
	return d
}

// TestCompare: referrers kept by subject, tag history and _layers links are
// differences by design; a blob only one side kept is a failure.
func TestCompare(t *testing.T) {
	root := t.TempDir()
	image, referrer, payload := digestOf("a"), digestOf("b"), digestOf("c")
	body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json",` +
		`"config":{"digest":"` + payload.String() + `"},"layers":[],"subject":{"digest":"` + image.String() + `"}}`
	if err := os.MkdirAll(filepath.Join(root, layout.BlobDir(referrer)), 0o755); err != nil {
		t.Fatalf("making the referrer's blob directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, layout.BlobData(referrer)), []byte(body), 0o644); err != nil {
		t.Fatalf("writing the referrer's manifest: %v", err)
	}
	common := []string{
		layout.BlobData(image),
		layout.RevisionDir("r", image) + "/link",
		layout.TagCurrentLink("r", "latest"),
	}
	up := &Listing{Files: append(slices.Clone(common), layout.LayerDir("r", payload)+"/link")}
	cr := &Listing{Root: root, Files: append(slices.Clone(common),
		layout.RevisionDir("r", referrer)+"/link",
		layout.BlobData(referrer),
		layout.BlobData(payload),
		layout.TagIndexDir("r", "latest", image)+"/link",
	)}
	slices.Sort(up.Files)
	slices.Sort(cr.Files)
	c := compare(up, cr)
	if c.Failed != 0 || len(c.Aside) != 4 {
		t.Errorf("compare = %+v; want no failure and 4 differences set aside by design", c)
	}

	cr.Files = append(cr.Files, layout.BlobData(digestOf("d")))
	slices.Sort(cr.Files)
	if c := compare(up, cr); c.Failed != 1 {
		t.Errorf("a stray blob kept: compare = %+v; want 1 failure", c)
	}
}

// TestBenchOnATinyTree runs the whole instrument on a small generated tree: upstream
// and clean-registry on copies, the floor, and every check (same result as upstream,
// plan kept, every image left pulls from the real registry). No timing is asserted.
func TestBenchOnATinyTree(t *testing.T) {
	registry := harness.RegistryBinaryT(t)
	ctx := context.Background()
	work := t.TempDir()
	root, err := moduleRoot(ctx)
	if err != nil {
		t.Fatalf("finding the module root: %v", err)
	}
	cleanBin, err := buildCleanRegistry(ctx, root, work)
	if err != nil {
		t.Fatalf("building clean-registry: %v", err)
	}
	if rusageBin, err = buildRusage(ctx, root, work); err != nil {
		t.Fatalf("building rusage: %v", err)
	}
	cfg := gen.Config{
		Seed: 3, Repos: 10, Nested: 0.3, Manifests: 8, Layers: 3, Tags: 3,
		MultiArchEvery: 3, Children: 2, Overwritten: 0.5, SharedShare: 0.4, SharedPool: 20,
		OCIShare: 0.5, Referrers: 0.3, Cosign: 0.3, Uploads: 0.3, LayerBytes: 16,
	}
	base, err := ensureTree(ctx, filepath.Join(work, "tiny"), cfg)
	if err != nil {
		t.Fatalf("generating the tiny tree: %v", err)
	}
	o := options{cleanBin: cleanBin, registryBin: registry, repeat: 1, pull: true}
	r, err := benchTree(ctx, o, "tiny", base, filepath.Join(work, "tiny"), genCopier(cfg))
	if err != nil {
		t.Fatalf("benchmarking the tiny tree: %v", err)
	}
	t.Log("\n" + r.markdown())
	if r.failed() {
		t.Error("the checks failed; see the report above")
	}
	if r.CrDeleted == 0 || r.UpDeleted == 0 || r.Pull == nil || r.Pull.Manifests == 0 {
		t.Errorf("nothing happened: clean-registry deleted %d files, upstream %d, pull %+v; want deletions on both sides and manifests pulled",
			r.CrDeleted, r.UpDeleted, r.Pull)
	}
	if r.Comparison == nil || r.Comparison.Aside["referrers kept by subject (upstream ignores subject)"] == 0 {
		t.Error("the tree exercised no referrer kept by its subject")
	}
}
