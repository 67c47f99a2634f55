package integration

import (
	"slices"
	"testing"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// TestRemoveSeveral removes a tag of one repository and a whole other repository in
// one run: a repository not named keeps even its untagged manifests.
func TestRemoveSeveral(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(400, harness.Docker)
	t1 := harness.Image(401, 2, harness.Docker)
	t1D := e.s.PushImage("a:t1", t1)
	e.s.PushImage("a:t2", harness.Image(402, 1, harness.Docker))
	b := harness.ImageWithLayers(403, harness.Docker, shared, harness.Layer(404, harness.Docker))
	bD := e.s.PushImage("b:1", b)
	bIdxD := e.s.PushIndex("b:multi", harness.Index(405, 2, 1, harness.OCI))
	cOld := harness.ImageWithLayers(406, harness.Docker, shared)
	cOldD := e.s.PushImage("c:1", cOld)
	e.s.PushImage("c:1", harness.Image(407, 1, harness.Docker)) // untags cOld

	rep := parseReport(t, e.clean("--grace", "0", "--json", "-x", "a:t1", "b"))
	if len(rep.Failures) > 0 {
		t.Errorf("the report has failures %v, want none", rep.Failures)
	}
	if got := e.s.Tags("a"); !slices.Equal(got, []string{"t2"}) {
		t.Errorf("tags of a: %v, want [t2]", got)
	}
	e.s.Gone("a:t1", "a@"+t1D, "b:1", "b@"+bD, "b@"+bIdxD)
	e.blobsGone(append(harness.BlobsOf(t1), t1D, bD, bIdxD, harness.DigestOf(harness.Layer(404, harness.Docker)))...)
	if e.exists(harness.RepoPath("b")) {
		t.Error("the removed repository b is still there")
	}
	if got := e.s.Catalog(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("catalog %v, want [a c]", got)
	}
	// c was not named: its untagged image stays, and with it the layer b shared.
	e.s.PullAll("a:t2", "c:1", "c@"+cOldD)
	e.blobsPresent(append(harness.BlobsOf(cOld), cOldD)...)
	for _, d := range rep.Deletions {
		if d.Repo == "c" {
			t.Errorf("a deletion in c, which was not named: %+v", d)
		}
	}
}

// TestSelectRepository purges the untagged manifests of the named repository only,
// while blobs no repository references are swept registry-wide.
func TestSelectRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(410, harness.OCI)
	only := harness.Layer(411, harness.OCI)
	appOld := harness.ImageWithLayers(412, harness.OCI, shared, only)
	appOldD := e.s.PushImage("app:1", appOld)
	e.s.PushImage("app:1", harness.Image(413, 1, harness.OCI))
	otherOld := harness.ImageWithLayers(414, harness.OCI, shared)
	otherOldD := e.s.PushImage("other:1", otherOld)
	e.s.PushImage("other:1", harness.Image(415, 1, harness.OCI))
	// A blob linked into app that no manifest references, and one linked nowhere.
	loose := e.s.PushBlob("app", harness.Random(416, 600))
	e.reg.StopT(t)
	orphan, err := harness.WriteBlob(e.root, harness.Random(417, 600))
	if err != nil {
		t.Fatalf("writing a blob linked nowhere: %v", err)
	}
	e.reg.RestartT(t)

	rep := parseReport(t, e.clean("--grace", "0", "--json", "app"))
	if revs := rep.deleted("revision"); len(revs) != 1 || !revs["app@"+appOldD] {
		t.Errorf("deleted revisions %v, want only app@%s", revs, appOldD)
	}
	e.s.Gone("app@" + appOldD)
	e.blobsGone(appOldD, harness.BlobsOf(appOld)[0], harness.DigestOf(only), loose, orphan)
	if e.exists(harness.LayerLinkPath("app", loose)) {
		t.Error("app keeps the link of a blob none of its manifests references")
	}
	// other was not named: its untagged image stays whole, the shared layer with it.
	e.s.PullAll("app:1", "other:1", "other@"+otherOldD)
	e.blobsPresent(append(harness.BlobsOf(otherOld), otherOldD)...)
	if !e.exists(harness.TagIndexLinkPath("other", "1", otherOldD)) {
		t.Error("the tag history of other, which was not named, was pruned")
	}
}
