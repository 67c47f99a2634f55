package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// checkDoc is the part of check's --json document the tests read.
type checkDoc struct {
	Completed bool   `json:"completed"`
	Healthy   bool   `json:"healthy"`
	Images    int    `json:"images"`
	Blobs     int    `json:"blobs"`
	Verified  int    `json:"verified_blobs"`
	Error     string `json:"error"`
	Broken    []struct {
		Repo   string `json:"repository"`
		Tag    string `json:"tag"`
		Issues []struct {
			Kind   string `json:"kind"`
			Digest string `json:"digest"`
		} `json:"issues"`
	} `json:"broken"`
}

// runCheck runs check --json on the env's storage and returns its exit status and
// its broken images, sorted.
func (e *env) runCheck(args ...string) (int, checkDoc, []string) {
	e.t.Helper()
	r := run(e.t, append([]string{"check", "--json", "--root", e.root}, args...)...)
	var doc checkDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		e.t.Fatalf("check's --json document does not parse: %v\n%s", err, r)
	}
	broken := []string{}
	for _, im := range doc.Broken {
		broken = append(broken, im.Repo+":"+im.Tag)
	}
	sort.Strings(broken)
	return r.code, doc, broken
}

// failingPulls pulls every tag of the registry, verified, and lists those whose
// pull fails, sorted; all counts every tag.
func (e *env) failingPulls() (failing []string, all int) {
	e.t.Helper()
	repos, err := harness.Catalog(e.s.Ctx, e.s.Host)
	if err != nil {
		e.t.Fatalf("listing the catalog: %v", err)
	}
	failing = []string{}
	for _, repo := range repos {
		tags, err := harness.Tags(e.s.Ctx, e.s.Host, repo)
		if err != nil {
			e.t.Fatalf("listing the tags of %s: %v", repo, err)
		}
		for _, tag := range tags {
			all++
			if _, err := harness.Pull(e.s.Ctx, e.s.Host, repo+":"+tag); err != nil {
				e.t.Logf("pull of %s:%s fails: %v", repo, tag, err)
				failing = append(failing, repo+":"+tag)
			}
		}
	}
	sort.Strings(failing)
	return failing, all
}

// TestCheck damages a real registry's storage in each way a pull can break and
// checks that check names exactly the tags whose verified pull fails, and that a
// healthy registry passes.
func TestCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.s.PushImage("ok:docker", harness.Image(300, 2, harness.Docker))
	e.s.PushImage("ok:oci", harness.Image(301, 2, harness.OCI))
	e.s.PushIndex("ok:index", harness.Index(302, 2, 1, harness.OCI))
	e.s.PushIndex("ok:list", harness.Index(303, 2, 1, harness.Docker))

	// What will be damaged, each beside a healthy tag of its repository.
	layerGone := harness.Image(310, 2, harness.OCI)
	e.s.PushImage("layergone:1", layerGone)
	e.s.PushImage("layergone:2", layerGone)
	e.s.PushImage("layergone:ok", harness.Image(311, 1, harness.OCI))
	truncated := harness.Image(312, 2, harness.Docker)
	e.s.PushImage("truncated:1", truncated)
	corrupt := harness.Image(313, 1, harness.OCI)
	e.s.PushImage("corrupt:1", corrupt)
	revGoneD := e.s.PushImage("revgone:1", harness.Image(314, 1, harness.OCI))
	e.s.PushImage("revgone:ok", harness.Image(315, 1, harness.OCI))
	linkGone := harness.Image(316, 2, harness.Docker)
	e.s.PushImage("linkgone:1", linkGone)
	// The same layer in another repository, linked there: that image stays whole.
	e.s.PushImage("linkgone-neighbour:1", harness.ImageWithLayers(317, harness.Docker, harness.Layer(harness.Derive(316, "layer", 0), harness.Docker)))
	idx := harness.Index(318, 3, 1, harness.OCI)
	e.s.PushIndex("indexgone:1", idx)
	e.s.PushIndex("indexgone:ok", harness.Index(319, 2, 1, harness.OCI))

	// Healthy: every check passes, with and without re-hashing.
	r := run(t, "check", "--root", e.root)
	if r.code != 0 || !strings.Contains(r.stdout, "15 images checked in "+e.root+": all pull whole") {
		t.Fatalf("check of a healthy registry: %s", r)
	}
	code, doc, broken := e.runCheck("--verify-digests")
	if code != 0 || !doc.Completed || !doc.Healthy || len(broken) != 0 || doc.Images != 15 || doc.Verified != doc.Blobs || doc.Blobs == 0 {
		t.Fatalf("check --verify-digests of a healthy registry: exit %d, %+v", code, doc)
	}
	if failing, all := e.failingPulls(); len(failing) != 0 || all != 15 {
		t.Fatalf("before any damage, %d of %d pulls fail: %v", len(failing), all, failing)
	}

	e.reg.StopT(t)
	layerD := harness.BlobsOf(layerGone)[2]
	truncD := harness.BlobsOf(truncated)[1]
	corruptD := harness.BlobsOf(corrupt)[1]
	childD := harness.ManifestsOf(idx)[1]
	remove := func(rel string) {
		t.Helper()
		if err := os.RemoveAll(filepath.Join(e.root, filepath.FromSlash(rel))); err != nil {
			t.Fatalf("removing %s: %v", rel, err)
		}
	}
	remove(filepath.Dir(harness.BlobDataPath(layerD)))                                    // (a) a layer blob
	remove(filepath.Dir(harness.RevisionLinkPath("revgone", revGoneD)))                   // (c) a revision link
	remove(filepath.Dir(harness.LayerLinkPath("linkgone", harness.BlobsOf(linkGone)[1]))) // (d) a layer link
	remove(filepath.Dir(harness.BlobDataPath(childD)))                                    // (e) an index child's blob
	rewrite := func(d string, change func([]byte) []byte) {
		t.Helper()
		p := filepath.Join(e.root, filepath.FromSlash(harness.BlobDataPath(d)))
		data, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(p, change(data), 0o644)
		}
		if err != nil {
			t.Fatalf("damaging blob %s: %v", d, err)
		}
	}
	rewrite(truncD, func(b []byte) []byte { return b[:len(b)/2] })             // (b) a blob truncated
	rewrite(corruptD, func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }) // its size unchanged
	e.reg.RestartT(t)

	failing, all := e.failingPulls()
	wantFailing := []string{"corrupt:1", "indexgone:1", "layergone:1", "layergone:2", "linkgone:1", "revgone:1", "truncated:1"}
	if !reflect.DeepEqual(failing, wantFailing) || all != 15 {
		t.Fatalf("after the damage, the pulls of %v fail (of %d tags); the damage was meant to break %v", failing, all, wantFailing)
	}

	// Re-hashing finds exactly what fails to pull; sizes alone all but the blob
	// corrupted in place.
	code, doc, broken = e.runCheck("--verify-digests")
	if code != 3 || !doc.Completed || doc.Healthy || !reflect.DeepEqual(broken, failing) {
		t.Errorf("check --verify-digests: exit %d, broken %v; want exit 3 and the failing pulls %v (%+v)", code, broken, failing, doc)
	}
	code, _, broken = e.runCheck()
	if want := slicesWithout(failing, "corrupt:1"); code != 3 || !reflect.DeepEqual(broken, want) {
		t.Errorf("check: exit %d, broken %v; want exit 3 and %v", code, broken, want)
	}

	// The text names each image with what is missing or corrupt.
	r = run(t, "check", "--root", e.root, "--verify-digests", "-j", "2")
	for _, line := range []string{
		"layergone:1 -> missing blob " + layerD + " (layer of manifest ",
		"layergone:2 -> missing blob " + layerD,
		"truncated:1 -> wrong-size blob " + truncD,
		"corrupt:1 -> corrupt blob " + corruptD,
		"revgone:1 -> missing revision link " + revGoneD + " (manifest)",
		"linkgone:1 -> missing layer link " + harness.BlobsOf(linkGone)[1],
		"indexgone:1 -> missing blob " + childD + " (index child of manifest " + harness.DigestOf(idx) + ")",
		"7 of 15 images checked in " + e.root + " broken",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("check's output lacks %q: %s", line, r)
		}
	}
	if r.code != 3 {
		t.Errorf("check with broken images: exit %d, want 3", r.code)
	}

	// Selections: only what is named is checked; a name the storage lacks is an error.
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"ok", "layergone:ok", "revgone:ok", "linkgone-neighbour"}, 0},
		{[]string{"indexgone:ok", "layergone:1"}, 3},
		{[]string{"nosuch"}, 1},
		{[]string{"ok:nosuch"}, 1},
		{[]string{"Bad:Name"}, 2},
		{[]string{"--bogus"}, 2},
	} {
		args := append([]string{"check", "--root", e.root}, tt.args...)
		if r := run(t, args...); r.code != tt.code {
			t.Errorf("clean-registry %s: exit %d, want %d: %s", strings.Join(args, " "), r.code, tt.code, r)
		}
	}
	if r := run(t, "check", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit status") {
		t.Errorf("check --help: %s", r)
	}
}

func slicesWithout(s []string, drop string) []string {
	out := []string{}
	for _, x := range s {
		if x != drop {
			out = append(out, x)
		}
	}
	return out
}
