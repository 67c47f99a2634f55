package integration

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

const (
	sigType  = "application/vnd.example.signature.v1"
	sbomType = "application/vnd.example.sbom.v1"
)

func TestOverwrittenTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := harness.Image(1, 2, harness.Docker)
	oldD := e.s.PushImage("app:latest", old)
	cur := harness.Image(2, 2, harness.Docker)
	curD := e.s.PushImage("app:latest", cur)
	ociOld := harness.Image(3, 2, harness.OCI)
	ociOldD := e.s.PushImage("oci/app:v1", ociOld)
	e.s.PushImage("oci/app:v1", harness.Image(4, 1, harness.OCI))
	e.s.PushImage("stable:1", harness.Image(5, 1, harness.Docker))

	rep := parseReport(t, e.clean("--grace", "0", "--json"))
	if !rep.Completed || !rep.deleted("revision")["app@"+oldD] || !rep.deleted("revision")["oci/app@"+ociOldD] {
		t.Errorf("the report lacks the overwritten revisions app@%s and oci/app@%s, or is incomplete: %+v", oldD, ociOldD, rep)
	}
	if len(rep.deleted("revision")) != 2 {
		t.Errorf("deleted revisions %v, want only the two overwritten ones", rep.deleted("revision"))
	}
	if p := e.s.Pull("app:latest"); p.Digest != curD {
		t.Errorf("app:latest is %s, want %s", p.Digest, curD)
	}
	e.s.PullAll("app@"+curD, "oci/app:v1", "stable:1")
	e.s.Gone("app@"+oldD, "oci/app@"+ociOldD)
	e.blobsGone(append(harness.BlobsOf(old), oldD, ociOldD)...)
	e.blobsGone(harness.BlobsOf(ociOld)...)
	e.blobsPresent(append(harness.BlobsOf(cur), curD)...)
	if e.exists(harness.TagIndexLinkPath("app", "latest", oldD)) {
		t.Error("the tag history entry of the overwritten digest is still there")
	}
	if !e.exists(harness.TagIndexLinkPath("app", "latest", curD)) {
		t.Error("the tag history entry of the current digest was deleted")
	}
}

func TestMultiArch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	oci := harness.Index(10, 3, 1, harness.OCI)
	e.s.PushIndex("multi:oci", oci)
	list := harness.Index(11, 2, 2, harness.Docker)
	e.s.PushIndex("multi:docker", list)
	nested := harness.IndexOf(harness.OCI, harness.Image(12, 1, harness.OCI), harness.Index(13, 2, 1, harness.OCI))
	e.s.PushIndex("multi:nested", nested)
	// An index overwritten with another: the old one and its children go.
	moved := harness.Index(14, 2, 1, harness.OCI)
	movedD := e.s.PushIndex("multi:moving", moved)
	movedList := harness.Index(15, 2, 1, harness.Docker)
	movedListD := e.s.PushIndex("multi:moving-list", movedList)
	e.s.PushIndex("multi:moving", harness.Index(16, 2, 1, harness.OCI))
	e.s.PushIndex("multi:moving-list", harness.Index(17, 2, 1, harness.Docker))

	e.clean("--grace", "0")
	for _, tag := range []string{"oci", "docker", "nested", "moving", "moving-list"} {
		e.s.Pull("multi:" + tag) // every child, recursively, with its blobs
	}
	var kept []string
	for _, idx := range [][]string{harness.ManifestsOf(oci), harness.ManifestsOf(list), harness.ManifestsOf(nested)} {
		kept = append(kept, idx...)
	}
	for _, d := range kept {
		e.s.Pull("multi@" + d)
	}
	e.s.Gone("multi@"+movedD, "multi@"+movedListD)
	for _, d := range append(harness.ManifestsOf(moved), harness.ManifestsOf(movedList)...) {
		e.s.Gone("multi@" + d)
		e.blobsGone(d)
	}
	for _, img := range append(harness.ImagesOf(moved), harness.ImagesOf(movedList)...) {
		e.blobsGone(harness.BlobsOf(img)...)
	}
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	subject := e.s.PushImage("signed:v1", harness.Image(20, 1, harness.OCI))
	sig := e.s.PushReferrer("signed", subject, sigType, 21)
	sigOfSig := e.s.PushReferrer("signed", sig, sigType, 22) // a signature of the signature
	doomed := e.s.PushImage("signed:v2", harness.Image(23, 1, harness.OCI))
	doomedSBOM := e.s.PushReferrer("signed", doomed, sbomType, 24)
	doomedSBOMSig := e.s.PushReferrer("signed", doomedSBOM, sigType, 25)
	e.s.PushImage("signed:v2", harness.Image(26, 1, harness.OCI)) // untags doomed
	idx := harness.Index(27, 2, 1, harness.OCI)
	e.s.PushIndex("signed:multi", idx)
	child := harness.ManifestsOf(idx)[1]
	childSig := e.s.PushReferrer("signed", child, sigType, 28) // about an untagged but kept child

	e.clean("--grace", "0")
	e.s.PullAll("signed:v1", "signed:v2", "signed:multi")
	// Pull follows each referrer's subject too.
	e.s.PullAll("signed@"+sig, "signed@"+sigOfSig, "signed@"+childSig)
	e.s.Gone("signed@"+doomed, "signed@"+doomedSBOM, "signed@"+doomedSBOMSig)
	e.blobsGone(doomed, doomedSBOM, doomedSBOMSig,
		harness.Sha256(harness.ReferrerPayload(24)), harness.Sha256(harness.ReferrerPayload(25)))
	e.blobsPresent(harness.EmptyConfigDigest, harness.Sha256(harness.ReferrerPayload(21)),
		harness.Sha256(harness.ReferrerPayload(22)), harness.Sha256(harness.ReferrerPayload(28)))
}

func TestSharedLayers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(30, harness.Docker)
	onlyOld := harness.Layer(31, harness.Docker)
	old := harness.ImageWithLayers(32, harness.Docker, shared, onlyOld)
	oldD := e.s.PushImage("a:1", old)
	e.s.PushImage("a:1", harness.ImageWithLayers(33, harness.Docker, harness.Layer(34, harness.Docker)))
	e.s.PushImage("b:1", harness.ImageWithLayers(35, harness.Docker, shared))
	// One image tagged in x and untagged in y: it goes from y only.
	both := harness.Image(36, 2, harness.Docker)
	bothD := e.s.PushImageTo(both, "x:1", "y:tmp")
	e.s.PushImage("y:tmp", harness.Image(37, 1, harness.Docker))

	e.clean("--grace", "0")
	e.s.PullAll("a:1", "b:1", "x:1", "x@"+bothD, "y:tmp")
	e.s.Gone("a@"+oldD, "y@"+bothD)
	sharedD, onlyOldD := harness.DigestOf(shared), harness.DigestOf(onlyOld)
	e.blobsPresent(append(harness.BlobsOf(both), sharedD, bothD)...)
	e.blobsGone(oldD, onlyOldD, harness.BlobsOf(old)[0])
	if e.exists(harness.LayerLinkPath("a", sharedD)) {
		t.Error("a keeps a layer link no kept manifest of a needs")
	}
	if !e.exists(harness.LayerLinkPath("b", sharedD)) {
		t.Error("b lost the link of a layer its image needs")
	}
	if e.exists(harness.RevisionLinkPath("y", bothD)) {
		t.Error("the manifest untagged in y is still linked in y; it must go from there")
	}
	if !e.exists(harness.RevisionLinkPath("x", bothD)) {
		t.Error("the manifest untagged in y went from x too, where it is tagged")
	}
}

func TestNestedRepositories(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(40, harness.OCI)
	top := harness.ImageWithLayers(41, harness.OCI, shared, harness.Layer(42, harness.OCI))
	topD := e.s.PushImage("a:1", top)
	e.s.PushImage("a/b:1", harness.ImageWithLayers(43, harness.OCI, shared))
	e.s.PushImage("a/b/c:1", harness.Image(44, 1, harness.OCI))
	e.s.PushImage("ab:1", harness.Image(45, 1, harness.OCI)) // a name sharing a prefix

	e.clean("--grace", "0", "-x", "a")
	if tags := e.s.Tags("a"); tags != nil {
		t.Errorf("repository a still has tags %v", tags)
	}
	e.s.Gone("a:1", "a@"+topD)
	e.s.PullAll("a/b:1", "a/b/c:1", "ab:1")
	if got := e.s.Catalog(); !slices.Equal(got, []string{"a/b", "a/b/c", "ab"}) {
		t.Errorf("catalog %v, want [a/b a/b/c ab]", got)
	}
	for _, sub := range []string{"_manifests", "_layers", "_uploads"} {
		if e.exists(harness.RepoPath("a") + "/" + sub) {
			t.Errorf("a/%s is still there", sub)
		}
	}
	e.blobsPresent(harness.DigestOf(shared))
	e.blobsGone(topD, harness.DigestOf(harness.Layer(42, harness.OCI)))
}

func TestSeveralTagsOnOneDigest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := harness.Image(50, 2, harness.Docker)
	d := e.s.PushImageTo(img, "multi:t1", "multi:t2", "multi:t3")
	e.s.PushImage("multi:other", harness.Image(51, 1, harness.Docker))
	only := e.s.PushImage("single:only", harness.Image(52, 1, harness.Docker))

	e.clean("--grace", "0", "-x", "multi:t1")
	if got := e.s.Tags("multi"); !slices.Equal(got, []string{"other", "t2", "t3"}) {
		t.Errorf("tags after -x multi:t1: %v, want [other t2 t3]", got)
	}
	if code := e.s.ManifestStatus("multi:t1"); code != 404 {
		t.Errorf("multi:t1 answers %d, want 404", code)
	}
	e.s.PullAll("multi:t2", "multi:t3", "multi@"+d, "multi:other")

	// A missing tag is a per-repository failure: the rest is still done, exit 1.
	e.reg.StopT(t)
	r := run(t, "--root", e.root, "--grace", "0", "-x", "multi:nosuch", "multi:t2", "multi:t3")
	e.reg.RestartT(t)
	if r.code != 1 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("-x of a missing tag: want exit 1 naming it: %s", r)
	}
	if got := e.s.Tags("multi"); !slices.Equal(got, []string{"other"}) {
		t.Errorf("tags after -x multi:t2 multi:t3: %v, want [other]", got)
	}
	e.s.Gone("multi@" + d) // untagged now
	e.blobsGone(append(harness.BlobsOf(img), d)...)
	e.s.Pull("multi:other")

	// Removing the last tag removes the repository.
	e.clean("--grace", "0", "-x", "single:only")
	if tags := e.s.Tags("single"); tags != nil {
		t.Errorf("single still has tags %v", tags)
	}
	e.s.Gone("single@" + only)
	if e.exists(harness.RepoPath("single") + "/_manifests") {
		t.Error("the repository of the last tag removed is still there")
	}
}

func TestRemoveRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(60, harness.Docker)
	gone := harness.ImageWithLayers(61, harness.Docker, shared, harness.Layer(62, harness.Docker))
	goneD := e.s.PushImageTo(gone, "gone:1", "gone:2")
	idxD := e.s.PushIndex("gone:multi", harness.Index(63, 2, 1, harness.OCI))
	e.s.PushImage("stays:1", harness.ImageWithLayers(64, harness.Docker, shared))

	e.clean("--grace", "0", "-x", "gone")
	if tags := e.s.Tags("gone"); tags != nil {
		t.Errorf("gone still has tags %v", tags)
	}
	e.s.Gone("gone@"+goneD, "gone@"+idxD)
	if e.exists(harness.RepoPath("gone")) {
		t.Error("the removed repository's directory is still there")
	}
	e.blobsGone(goneD, idxD, harness.DigestOf(harness.Layer(62, harness.Docker)))
	e.blobsPresent(harness.DigestOf(shared))
	e.s.Pull("stays:1")

	e.reg.StopT(t)
	before := e.tree()
	r := run(t, "--root", e.root, "--grace", "0", "-x", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("-x of a missing repository: want exit 1 naming it: %s", r)
	}
	if after := e.tree(); !slices.Equal(before.Files, after.Files) {
		a, b := harness.Diff(before.Files, after.Files)
		t.Errorf("-x of a missing repository changed the storage: lost %v, gained %v", a, b)
	}
	r = run(t, "--root", e.root, "-x", "Invalid_Name")
	if r.code != 1 || !strings.Contains(r.stderr, "Invalid Docker repository/tag: Invalid_Name") {
		t.Errorf("an invalid name: want the seed's error and exit 1: %s", r)
	}
}

// planLines are the "removed directory" lines of a run, with the verb of a dry run
// ("would remove") made the same as a real run's.
func planLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "would remove directory "):
			lines = append(lines, strings.TrimPrefix(l, "would remove "))
		case strings.HasPrefix(l, "removed directory "):
			lines = append(lines, strings.TrimPrefix(l, "removed "))
		}
	}
	return lines
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.s.PushImage("app:1", harness.Image(70, 2, harness.Docker))
	e.s.PushImage("app:1", harness.Image(71, 2, harness.Docker))
	e.s.PushIndex("multi:1", harness.Index(72, 2, 1, harness.OCI))
	e.s.PushIndex("multi:1", harness.Index(73, 2, 1, harness.OCI))
	doomed := e.s.PushImage("signed:1", harness.Image(74, 1, harness.OCI))
	e.s.PushReferrer("signed", doomed, sigType, 75)
	e.s.PushImage("signed:1", harness.Image(76, 1, harness.OCI))
	e.s.PushImage("gone:1", harness.Image(77, 1, harness.OCI))
	e.reg.StopT(t)

	for _, args := range [][]string{{"--grace", "0"}, {"--grace", "0", "-x", "gone"}} {
		before := e.tree()
		beforeTimes := modTimes(t, e.root, before.Files)
		dry := mustRun(t, append([]string{"--root", e.root, "-n"}, args...)...)
		dryJSON := parseReport(t, mustRun(t, append([]string{"--root", e.root, "--dry-run", "--json"}, args...)...))
		after := e.tree()
		if d := treeDiff(before, after); d != "" {
			t.Fatalf("dry run %v changed the storage: %s", args, d)
		}
		if afterTimes := modTimes(t, e.root, after.Files); !maps.EqualFunc(beforeTimes, afterTimes, time.Time.Equal) {
			for f, was := range beforeTimes {
				if now := afterTimes[f]; !now.Equal(was) {
					t.Errorf("dry run %v changed the modification time of %s: %v, was %v", args, f, now, was)
				}
			}
		}
		// The real run on a copy of the same storage, then compare with the dry run.
		copyRoot := filepath.Join(t.TempDir(), "copy")
		if err := harness.CopyTree(e.root, copyRoot); err != nil {
			t.Fatalf("copying the storage for the real run: %v", err)
		}
		real := mustRun(t, append([]string{"--root", copyRoot}, args...)...)
		want := planLines(strings.ReplaceAll(dry.stdout, e.root, "ROOT"))
		got := planLines(strings.ReplaceAll(real.stdout, copyRoot, "ROOT"))
		if len(want) == 0 {
			t.Fatalf("dry run %v planned nothing:\n%s", args, dry)
		}
		// Same lines in the same order: the real run prints phase by phase, in plan order.
		if !slices.Equal(want, got) {
			t.Errorf("dry run %v and real run differ:\ndry:\n%s\nreal:\n%s", args, strings.Join(want, "\n"), strings.Join(got, "\n"))
		}
		if len(dryJSON.Deletions) != len(want) {
			t.Errorf("the dry run's JSON report has %d deletions, its text %d lines", len(dryJSON.Deletions), len(want))
		}
		// What the real run left is what the dry run said would be left.
		left, err := harness.ListTree(copyRoot)
		if err != nil {
			t.Fatalf("listing what the real run %v left: %v", args, err)
		}
		for _, d := range dryJSON.Deletions {
			for _, f := range left.Files {
				if f == d.Path || strings.HasPrefix(f, d.Path+"/") && d.Kind != "repository" {
					t.Errorf("the real run left %s, which the dry run said it would delete (%s)", f, d.Kind)
				}
			}
		}
	}

	// The registry still serves the dry-run storage untouched.
	e.reg.RestartT(t)
	e.s.PullAll("app:1", "multi:1", "signed:1", "gone:1", "signed@"+doomed)
}

func modTimes(t *testing.T, root string, files []string) map[string]time.Time {
	t.Helper()
	out := make(map[string]time.Time, len(files))
	for _, f := range files {
		st, err := os.Lstat(filepath.Join(root, f))
		if err != nil {
			t.Fatalf("modification time of %s: %v", f, err)
		}
		out[f] = st.ModTime()
	}
	return out
}
