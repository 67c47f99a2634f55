package integration

import (
	"testing"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// TestSchema1 puts legacy schema 1 manifests next to a modern image in one
// repository. Their fsLayers are understood: an untagged one goes like any untagged
// manifest, with the blobs nothing else references; a tagged one stays with all of
// its blobs. Registry v3 cannot serve schema 1, so the storage itself is checked.
func TestSchema1(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	modern := harness.Image(200, 2, harness.OCI)
	e.s.PushImage("mixed:cur", modern)
	e.reg.StopT(t)

	// untagged has layers of its own; tagged and its untagged sibling (same seed, so
	// the same layers, but another manifest) share theirs.
	untagged, err := harness.WriteSchema1(e.root, "mixed", "", 201, 2)
	if err != nil {
		t.Fatalf("writing the untagged schema1 manifest: %v", err)
	}
	tagged, err := harness.WriteSchema1(e.root, "mixed", "old", 202, 3)
	if err != nil {
		t.Fatalf("writing the tagged schema1 manifest: %v", err)
	}
	sibling, err := harness.WriteSchema1(e.root, "mixed", "", 202, 2)
	if err != nil {
		t.Fatalf("writing the untagged sibling schema1 manifest: %v", err)
	}
	if sibling.Manifest == tagged.Manifest {
		t.Fatal("the sibling schema1 manifest is the tagged one")
	}

	rep := parseReport(t, e.clean("--grace", "0", "--json"))
	for _, p := range rep.Problems {
		t.Errorf("schema1 manifests raised a problem: %+v", p)
	}
	revisions := rep.deleted("revision")
	if len(revisions) != 2 || !revisions["mixed@"+untagged.Manifest] || !revisions["mixed@"+sibling.Manifest] {
		t.Errorf("deleted revisions %v, want the two untagged schema1 manifests", revisions)
	}

	// The untagged ones: revision links gone, manifest blobs and unshared layers swept.
	for _, s := range []harness.Schema1{untagged, sibling} {
		if e.exists(harness.RevisionLinkPath("mixed", s.Manifest)) {
			t.Errorf("the untagged schema1 revision %s is still linked", s.Manifest)
		}
		e.blobsGone(s.Manifest)
	}
	e.blobsGone(untagged.Layers...)
	for _, d := range untagged.Layers {
		if e.exists(harness.LayerLinkPath("mixed", d)) {
			t.Errorf("the layer link %s of the untagged schema1 manifest is still there", d)
		}
	}

	// The tagged one keeps everything, the layers it shares with its sibling included.
	for _, rel := range []string{
		harness.RevisionLinkPath("mixed", tagged.Manifest),
		harness.TagCurrentLinkPath("mixed", "old"),
		harness.TagIndexLinkPath("mixed", "old", tagged.Manifest),
	} {
		if !e.exists(rel) {
			t.Errorf("%s of the tagged schema1 manifest was deleted", rel)
		}
	}
	e.blobsPresent(append(tagged.Layers, tagged.Manifest)...)
	for _, d := range tagged.Layers {
		if !e.exists(harness.LayerLinkPath("mixed", d)) {
			t.Errorf("the tagged schema1 manifest lost its layer link %s", d)
		}
	}

	// The modern image beside them still pulls.
	e.s.Pull("mixed:cur")
	if tags := e.s.Tags("mixed"); len(tags) != 2 {
		t.Errorf("tags of mixed: %v, want [cur old]", tags)
	}
}
