package layout

import (
	"reflect"
	"testing"
)

const dirsHex = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"

func dirsDigest(t *testing.T) Digest {
	t.Helper()
	d, err := ParseHex(dirsHex)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The shapes are spelled out in full: they are the registry's, not ours to change.
func TestPathShapes(t *testing.T) {
	d := dirsDigest(t)
	const r = "docker/registry/v2/repositories/"
	for _, tt := range []struct {
		name, got, want string
	}{
		{"Data", Data, "data"},
		{"StartedAt", StartedAt, "startedat"},
		{"TagCurrentFile", TagCurrentFile, "current/link"},
		{"TagIndexFile", TagIndexFile(d), "index/sha256/" + dirsHex + "/link"},
		{"LayerLink", LayerLink("a/b", d), r + "a/b/_layers/sha256/" + dirsHex + "/link"},
		{"RevisionLink", RevisionLink("a", d), r + "a/_manifests/revisions/sha256/" + dirsHex + "/link"},
		{"TagIndexLink", TagIndexLink("a", "v1", d), r + "a/_manifests/tags/v1/index/sha256/" + dirsHex + "/link"},
		{"RepoManifestsDir", RepoManifestsDir("a/b"), r + "a/b/_manifests"},
		{"RepoLayersDir", RepoLayersDir("a/b"), r + "a/b/_layers"},
		{"RepoUploadsDir", RepoUploadsDir("a/b"), r + "a/b/_uploads"},
		{"RevisionsDir", RevisionsDir("a/b"), r + "a/b/_manifests/revisions"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// The relative files and the link paths agree with the directories of paths.go and
// read back as what they are.
func TestFilesInDirs(t *testing.T) {
	d := dirsDigest(t)
	for _, tt := range []struct {
		path string
		want PathInfo
	}{
		{BlobDir(d) + "/" + Data, PathInfo{Kind: KindBlobData, Digest: d}},
		{LayerLink("x/y", d), PathInfo{Kind: KindLayerLink, Repo: "x/y", Digest: d}},
		{RevisionLink("x/y", d), PathInfo{Kind: KindRevisionLink, Repo: "x/y", Digest: d}},
		{TagIndexLink("x/y", "t", d), PathInfo{Kind: KindTagIndexLink, Repo: "x/y", Tag: "t", Digest: d}},
		{TagDir("x/y", "t") + "/" + TagCurrentFile, PathInfo{Kind: KindTagCurrentLink, Repo: "x/y", Tag: "t"}},
		{TagDir("x/y", "t") + "/" + TagIndexFile(d), PathInfo{Kind: KindTagIndexLink, Repo: "x/y", Tag: "t", Digest: d}},
		{UploadDir("x/y", "u-1") + "/" + StartedAt, PathInfo{Kind: KindUploadFile, Repo: "x/y", UploadID: "u-1", Rest: StartedAt}},
	} {
		if got := Classify(tt.path); got != tt.want {
			t.Errorf("Classify(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
	for _, tt := range []struct{ got, want string }{
		{BlobDir(d) + "/" + Data, BlobData(d)},
		{TagDir("x/y", "t") + "/" + TagCurrentFile, TagCurrentLink("x/y", "t")},
		{TagDir("x/y", "t") + "/" + TagIndexFile(d), TagIndexLink("x/y", "t", d)},
		{RevisionsDir("x/y") + "/sha256/" + dirsHex, RevisionDir("x/y", d)},
		{RepoLayersDir("x/y") + "/sha256/" + dirsHex, LayerDir("x/y", d)},
		{RepoManifestsDir("x/y") + "/tags", TagsDir("x/y")},
	} {
		if tt.got != tt.want {
			t.Errorf("%q, want %q", tt.got, tt.want)
		}
	}
	if got := LeafFile(TagDir("x/y", "t") + "/current"); got != Link {
		t.Errorf("LeafFile of a tag's current dir = %q", got)
	}
}

func TestRepoDirLists(t *testing.T) {
	const r = "docker/registry/v2/repositories/"
	for _, tt := range []struct {
		name string
		got  []string
		want []string
	}{
		{"ReservedDirs", ReservedDirs("a/b"), []string{r + "a/b/_uploads", r + "a/b/_layers", r + "a/b/_manifests"}},
		{"SkeletonDirs", SkeletonDirs("a/b"), []string{
			r + "a/b/_manifests/revisions/sha256", r + "a/b/_manifests/revisions", r + "a/b/_manifests/tags",
			r + "a/b/_manifests", r + "a/b/_layers/sha256", r + "a/b/_layers", r + "a/b/_uploads",
		}},
		{"RepoDirAndParents a", RepoDirAndParents("a"), []string{r + "a"}},
		{"RepoDirAndParents a/b/c", RepoDirAndParents("a/b/c"), []string{r + "a/b/c", r + "a/b", r + "a"}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestCutRepository(t *testing.T) {
	const r = "docker/registry/v2/repositories/"
	for _, tt := range []struct {
		path         string
		name, inside string
		ok           bool
	}{
		{r + "a/b/_manifests/tags/t/current/link", "a/b", "_manifests/tags/t/current/link", true},
		{r + "a/_layers", "a", "_layers", true},
		{r + "a/_uploads/u/_x", "a", "_uploads/u/_x", true},
		{r + "a/b", "a/b", "", true},
		{r + "a/b/file", "a/b/file", "", true},
		{r + "a/b_c/d", "a/b_c/d", "", true}, // "_" inside a component reserves nothing
		{r + "_manifests/x", "", "_manifests/x", true},
		{r + "Bad/_layers/x", "Bad", "_layers/x", true}, // the name is not checked
		{r + "a//_x", "a/", "_x", true},
		{"docker/registry/v2/repositories", "", "", false},
		{"docker/registry/v2/blobs/sha256/ab", "", "", false},
		{"elsewhere/_x", "", "", false},
	} {
		name, inside, ok := CutRepository(tt.path)
		if name != tt.name || inside != tt.inside || ok != tt.ok {
			t.Errorf("CutRepository(%q) = %q, %q, %v; want %q, %q, %v", tt.path, name, inside, ok, tt.name, tt.inside, tt.ok)
		}
	}
}
