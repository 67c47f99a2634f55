package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// TestStorageDamage writes what old or crashed registries leave behind and checks
// that none of it makes the cleaner delete anything it might reference, while the
// healthy rest is still cleaned.
func TestStorageDamage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Healthy: one overwritten image, which must still go.
	stale := harness.Image(80, 1, harness.Docker)
	staleD := e.s.PushImage("stable:1", stale)
	e.s.PushImage("stable:1", harness.Image(81, 1, harness.Docker))

	// A tag whose current link is garbled: it could point at either digest it ever had.
	was := harness.Image(82, 1, harness.OCI)
	wasD := e.s.PushImage("garbled:t", was)
	is := harness.Image(83, 1, harness.OCI)
	isD := e.s.PushImage("garbled:t", is)

	// A tagged image whose revision link is garbled, one with an empty layer link.
	rev := harness.Image(84, 2, harness.OCI)
	revD := e.s.PushImage("garbledrev:1", rev)
	empty := harness.Image(85, 2, harness.Docker)
	emptyD := e.s.PushImage("emptylink:1", empty)

	// An untagged manifest of an unknown type in a repository that also holds an
	// overwritten image: the unknown one might reference any blob of the repository.
	hidden := harness.Image(86, 2, harness.Docker)
	hiddenD := e.s.PushImage("weird:1", hidden)
	e.s.PushImage("weird:1", harness.Image(87, 1, harness.Docker))

	e.reg.StopT(t)
	legacy, err := harness.WriteSchema1(e.root, "legacy", "old", 88, 3)
	if err != nil {
		t.Fatalf("writing the schema1 image legacy:old: %v", err)
	}
	unknown, err := harness.WriteUnknownManifest(e.root, "weird", "", 89)
	if err != nil {
		t.Fatalf("writing a manifest of an unknown type in weird: %v", err)
	}
	// Links to blobs that do not exist: a revision, a layer link, and a tag.
	missing := harness.Sha256([]byte("a blob nobody stored"))
	missingTag := harness.Sha256([]byte("a manifest nobody stored"))
	for _, step := range []struct {
		what string
		err  error
	}{
		{"garbling the current link of garbled:t", harness.GarbleLink(e.root, harness.TagCurrentLinkPath("garbled", "t"))},
		{"garbling a revision link of garbledrev", harness.GarbleLink(e.root, harness.RevisionLinkPath("garbledrev", revD))},
		{"emptying a layer link of emptylink", harness.EmptyLink(e.root, harness.LayerLinkPath("emptylink", harness.BlobsOf(empty)[1]))},
		{"linking a missing revision into dangling", harness.LinkManifest(e.root, "dangling", missing, "")},
		{"linking a missing layer into stable", harness.WriteLink(e.root, harness.LayerLinkPath("stable", missing), missing)},
		{"tagging a missing manifest as dangling:gone", harness.LinkManifest(e.root, "dangling", missingTag, "gone")},
	} {
		if step.err != nil {
			t.Fatalf("%s: %v", step.what, step.err)
		}
	}
	var tmps []string
	for _, rel := range []string{
		harness.TagCurrentLinkPath("stable", "1"),
		harness.BlobDataPath(harness.BlobsOf(stale)[1]), // next to a blob that goes
		harness.LayerLinkPath("legacy", legacy.Layers[0]),
	} {
		tmp, err := harness.WriteTmp(e.root, rel)
		if err != nil {
			t.Fatalf("writing a transient file next to %s: %v", rel, err)
		}
		tmps = append(tmps, tmp)
	}

	rep := parseReport(t, e.cleanProblems("--grace", "0", "--json"))
	problems := map[string]string{}
	for _, p := range rep.Problems {
		problems[p.Path] = p.Kind
	}
	if len(rep.Problems) < 6 {
		t.Errorf("the report names %d problems, want at least 6 (3 damaged links, 3 missing blobs): %+v", len(rep.Problems), rep.Problems)
	}
	for _, path := range []string{
		harness.TagCurrentLinkPath("garbled", "t"),
		harness.RevisionLinkPath("garbledrev", revD),
		harness.LayerLinkPath("emptylink", harness.BlobsOf(empty)[1]),
	} {
		if _, ok := problems[path]; !ok && !hasProblemUnder(problems, filepath.Dir(path)) {
			t.Errorf("the report names no problem at %s; problems: %v", path, problems)
		}
	}

	// The healthy repository was cleaned all the same.
	e.s.Gone("stable@" + staleD)
	e.blobsGone(staleD, harness.BlobsOf(stale)[1])
	e.s.Pull("stable:1")

	// Nothing the damaged parts might reference went.
	e.blobsPresent(append(harness.BlobsOf(was), wasD)...)
	e.blobsPresent(append(harness.BlobsOf(is), isD)...)
	e.blobsPresent(append(harness.BlobsOf(rev), revD)...)
	e.blobsPresent(append(harness.BlobsOf(empty), emptyD)...)
	e.blobsPresent(append(harness.BlobsOf(hidden), hiddenD, unknown)...)
	e.blobsPresent(append(legacy.Layers, legacy.Manifest)...)
	for _, rel := range []string{
		harness.RevisionLinkPath("garbled", wasD),
		harness.RevisionLinkPath("garbled", isD),
		harness.RevisionLinkPath("weird", unknown),
		harness.RevisionLinkPath("legacy", legacy.Manifest),
		harness.TagCurrentLinkPath("legacy", "old"),
		harness.LayerLinkPath("garbledrev", harness.BlobsOf(rev)[1]),
	} {
		if !e.exists(rel) {
			t.Errorf("%s was deleted", rel)
		}
	}
	for _, d := range legacy.Layers {
		if !e.exists(harness.LayerLinkPath("legacy", d)) {
			t.Errorf("the schema1 image lost its layer link %s", d)
		}
	}
	for _, d := range harness.BlobsOf(hidden) {
		if !e.exists(harness.LayerLinkPath("weird", d)) {
			t.Errorf("a layer link of the repository with an unknown manifest went: %s", d)
		}
	}
	for _, tmp := range tmps[:1] {
		if !e.exists(tmp) {
			t.Errorf("the transient file %s next to a kept link was deleted", tmp)
		}
	}
	if !e.exists(tmps[2]) {
		t.Errorf("the transient file %s next to a kept layer link was deleted", tmps[2])
	}

	// What the damage left servable still pulls.
	e.s.PullAll("garbled@"+wasD, "garbled@"+isD, "weird:1", "weird@"+hiddenD)
}

func hasProblemUnder(problems map[string]string, dir string) bool {
	for p := range problems {
		if strings.HasPrefix(p, dir) {
			return true
		}
	}
	return false
}

func TestNotARegistry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatalf("writing a file that is no registry's: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "docker", "registry"), 0o755); err != nil {
		t.Fatalf("making docker/registry without v2: %v", err)
	}
	for _, args := range [][]string{
		{"--root", dir, "--grace", "0"},
		{"--root", dir, "--grace", "0", "-x", "precious"},
		{"--root", filepath.Join(dir, "missing"), "--grace", "0"},
		{"--root", filepath.Join(dir, "precious"), "--grace", "0"},
	} {
		r := run(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "ERROR") {
			t.Errorf("clean-registry %s: want exit 1 and an error: %s", strings.Join(args, " "), r)
		}
	}
	tree, err := harness.ListTree(dir)
	if err != nil {
		t.Fatalf("listing the refused root: %v", err)
	}
	if strings.Join(tree.Files, ",") != "precious" || strings.Join(tree.Dirs, ",") != "docker,docker/registry" {
		t.Errorf("a refused root was changed: %+v; want only the file precious and the directories docker, docker/registry", tree)
	}
}

func TestGracePeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	oldUntagged := e.s.PushImage("app", harness.Image(90, 1, harness.OCI))
	overwritten := e.s.PushImage("app:1", harness.Image(91, 1, harness.OCI))
	e.reg.StopT(t)
	if err := harness.Backdate(e.root, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatalf("backdating the storage by 2h: %v", err)
	}
	e.reg.RestartT(t)
	e.s.PushImage("app:1", harness.Image(92, 1, harness.OCI))
	fresh := e.s.PushImage("app", harness.Image(93, 1, harness.OCI))
	freshOverwritten := e.s.PushImage("app:2", harness.Image(94, 1, harness.OCI))
	e.s.PushImage("app:2", harness.Image(95, 1, harness.OCI))

	// The default grace period (1h) keeps everything pushed just now.
	rep := parseReport(t, e.clean("--json"))
	for _, d := range rep.Deletions {
		if d.Kind == "revision" && (d.Digest == fresh || d.Digest == freshOverwritten) {
			t.Errorf("the default grace period deleted a fresh revision: %+v", d)
		}
	}
	e.s.Gone("app@"+oldUntagged, "app@"+overwritten)
	e.s.PullAll("app:1", "app:2", "app@"+fresh, "app@"+freshOverwritten)

	e.clean("--grace", "1h")
	e.s.PullAll("app@"+fresh, "app@"+freshOverwritten)

	e.clean("--grace", "0")
	e.s.Gone("app@"+fresh, "app@"+freshOverwritten)
	e.s.PullAll("app:1", "app:2")
}

// TestSymlinksNeverFollowed puts symbolic links to a directory outside the storage
// where a repository, a blob and a link would be: nothing out there may be read as
// registry content or deleted.
func TestSymlinksNeverFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.s.PushImage("app:1", harness.Image(120, 1, harness.OCI))
	e.s.PushImage("app:1", harness.Image(121, 1, harness.OCI))
	e.reg.StopT(t)

	// Outside: something shaped like a repository full of garbage, and a blob.
	outside := t.TempDir()
	foreign := harness.Sha256([]byte("foreign"))
	for _, rel := range []string{
		"repo/_manifests/revisions/sha256/" + foreign[7:] + "/link",
		"repo/_layers/sha256/" + foreign[7:] + "/link",
		"blob/data",
	} {
		if err := harness.WriteFile(outside, rel, []byte(foreign)); err != nil {
			t.Fatalf("writing %s outside the storage: %v", rel, err)
		}
	}
	before := listTree(t, outside)
	links := map[string]string{
		harness.RepoPath("evil"):                            filepath.Join(outside, "repo"),
		filepath.Dir(harness.BlobDataPath(foreign)):         filepath.Join(outside, "blob"),
		filepath.Dir(harness.LayerLinkPath("app", foreign)): filepath.Join(outside, "repo/_layers/sha256", foreign[7:]),
	}
	for rel, target := range links {
		p := filepath.Join(e.root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("making the parent of %s: %v", rel, err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatalf("placing a symbolic link at %s: %v", rel, err)
		}
	}

	e.cleanProblems("--grace", "0") // the symbolic links are problems: exit 3
	after := listTree(t, outside)
	if a, b := harness.Diff(before.Files, after.Files); len(a)+len(b) > 0 {
		t.Errorf("files outside the storage changed through a symbolic link: lost %v, gained %v", a, b)
	}
	if a, b := harness.Diff(before.Dirs, after.Dirs); len(a)+len(b) > 0 {
		t.Errorf("directories outside the storage changed through a symbolic link: lost %v, gained %v", a, b)
	}
	e.s.Pull("app:1")
}
