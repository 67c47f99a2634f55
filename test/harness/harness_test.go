package harness

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestConfigYAML(t *testing.T) {
	y := Config{Root: `/tmp/a "b"`, Addr: "127.0.0.1:1"}.YAML()
	for _, want := range []string{
		"version: 0.1\n",
		"  filesystem:\n    rootdirectory: \"/tmp/a \\\"b\\\"\"\n",
		"  delete:\n    enabled: true\n",
		"  cache:\n    blobdescriptor: \"inmemory\"\n",
		"  addr: \"127.0.0.1:1\"\n",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
	s3 := Config{Storage: map[string]any{"s3": map[string]any{"bucket": "b", "secure": false}}}.YAML()
	if !strings.Contains(s3, "  s3:\n    bucket: \"b\"\n    secure: false\n") || strings.Contains(s3, "filesystem") {
		t.Errorf("s3 config: want an s3 section with bucket \"b\" and secure false, and no filesystem section:\n%s", s3)
	}
}

func TestDeterministicImages(t *testing.T) {
	// Two images built apart from one seed: the same digest.
	first, again := Image(1, 2, OCI), Image(1, 2, OCI)
	if d1, d2 := DigestOf(first), DigestOf(again); d1 != d2 {
		t.Errorf("Image(1, 2, OCI) built twice: digests %s and %s, want one", d1, d2)
	}
	for _, other := range []struct {
		what string
		img  v1.Image
	}{{"Image(2, 2, OCI)", Image(2, 2, OCI)}, {"Image(1, 2, Docker)", Image(1, 2, Docker)}} {
		if d := DigestOf(other.img); d == DigestOf(first) {
			t.Errorf("Image(1, 2, OCI) and %s have one digest %s, want two", other.what, d)
		}
	}
	shared := Layer(7, Docker)
	a, b := ImageWithLayers(1, Docker, shared), ImageWithLayers(2, Docker, shared)
	if DigestOf(a) == DigestOf(b) {
		t.Errorf("two images around one shared layer have one digest %s, want two", DigestOf(a))
	}
	if BlobsOf(a)[1] != BlobsOf(b)[1] {
		t.Errorf("the shared layer has digests %s and %s in two images, want one", BlobsOf(a)[1], BlobsOf(b)[1])
	}
}

// TestRegistry exercises the harness on the real registry: start, every kind of push,
// pull with verification, restart on the same port, garbage-collect.
func TestRegistry(t *testing.T) {
	root := t.TempDir()
	reg := StartFS(t, root)
	s := reg.Session(t)

	img := Image(1, 3, Docker)
	d := s.PushImageTo(img, "app:v1", "app:v2", "other/app:v1")
	ociImg := s.PushImage("oci:latest", Image(2, 2, OCI))
	untagged := s.PushImage("oci", Image(3, 1, OCI))
	list := Index(4, 2, 1, Docker)
	listDigest := s.PushIndex("multi:list", list)
	idxDigest := s.PushIndex("multi:oci", IndexOf(OCI, Image(5, 1, OCI), Index(6, 2, 1, OCI)))
	ref := s.PushReferrer("oci", ociImg, "application/vnd.example.sbom", 8)

	if got := s.Tags("app"); !slices.Equal(got, []string{"v1", "v2"}) {
		t.Errorf("tags of app: %v, want [v1 v2]", got)
	}
	if got := s.Tags("oci"); !slices.Equal(got, []string{"latest"}) {
		t.Errorf("tags of oci: %v, want [latest] (a referrers fallback tag must not be written)", got)
	}
	if got := s.Catalog(); !slices.Equal(got, []string{"app", "multi", "oci", "other/app"}) {
		t.Errorf("catalog: %v, want [app multi oci other/app]", got)
	}

	p := s.Pull("app:v1")
	if p.Digest != d || len(p.Blobs) != 4 {
		t.Errorf("pull app:v1: %+v; want digest %s and 4 blobs", p, d)
	}
	s.Pull("other/app@" + d)
	s.Pull("oci@" + untagged)
	if p := s.Pull("multi:list"); p.Digest != listDigest || len(p.Manifests) != 3 || len(p.Blobs) != 4 {
		t.Errorf("pull manifest list: %+v; want digest %s, 3 manifests, 4 blobs", p, listDigest)
	}
	if p := s.Pull("multi:oci"); p.Digest != idxDigest || len(p.Manifests) != 5 {
		t.Errorf("pull nested index: %+v; want digest %s and 5 manifests", p, idxDigest)
	}
	if p := s.Pull("oci@" + ref); len(p.Manifests) != 2 || p.Manifests[1] != ociImg {
		t.Errorf("pull referrer (with its subject): %+v; want 2 manifests, the second its subject %s", p, ociImg)
	}
	if code := s.ManifestStatus("app@sha256:" + strings.Repeat("0", 64)); code != 404 {
		t.Errorf("HEAD of an unknown manifest: status %d, want 404", code)
	}
	if _, err := os.Stat(filepath.Join(root, RevisionLinkPath("oci", ref))); err != nil {
		t.Errorf("RevisionLinkPath(oci, referrer) names no file in storage: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, TagCurrentLinkPath("app", "v2"))); err != nil {
		t.Errorf("TagCurrentLinkPath(app, v2) names no file in storage: %v", err)
	}

	// Overwrite a tag, restart, and collect: the overwritten image goes away.
	s.PushImage("app:v2", Image(9, 1, Docker))
	addr := reg.Addr()
	reg.RestartT(t)
	if reg.Addr() != addr {
		t.Fatalf("restart moved the registry from %s to %s", addr, reg.Addr())
	}
	s.Pull("app:v1")
	reg.StopT(t)
	GarbageCollectT(t, reg.ConfigPath(), "--delete-untagged")
	reg.RestartT(t)
	s.Pull("app:v1")
	s.Pull("app:v2")
	s.Pull("multi:list")
	s.Gone("oci@" + untagged)
	// Upstream knows nothing of subjects: the untagged referrer goes too.
	s.Gone("oci@" + ref)
}

func TestDamageHelpers(t *testing.T) {
	root := t.TempDir()
	s1, err := WriteSchema1(root, "legacy", "old", 1, 2)
	if err != nil {
		t.Fatalf("WriteSchema1: %v", err)
	}
	body, err := os.ReadFile(filepath.Join(root, BlobDataPath(s1.Manifest)))
	if err != nil {
		t.Fatalf("reading the schema1 manifest blob: %v", err)
	}
	if digestOf(body) != s1.Manifest || !strings.Contains(string(body), `"blobSum": "`+s1.Layers[0]) || !strings.Contains(string(body), `"signatures"`) {
		t.Errorf("schema1 manifest: want content digest %s, blobSum %s and signatures:\n%s", s1.Manifest, s1.Layers[0], body)
	}
	link, _ := os.ReadFile(filepath.Join(root, TagCurrentLinkPath("legacy", "old")))
	if string(link) != s1.Manifest {
		t.Errorf("tag link of legacy:old holds %q, want %q", link, s1.Manifest)
	}
	u, err := WriteUnknownManifest(root, "weird", "", 2)
	if err != nil {
		t.Fatalf("WriteUnknownManifest: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, RevisionLinkPath("weird", u))); err != nil {
		t.Errorf("the unknown manifest's revision link: %v", err)
	}
	tmp, err := WriteTmp(root, LayerLinkPath("legacy", s1.Layers[0]))
	if err != nil || !strings.HasSuffix(tmp, ".tmp") || !strings.HasPrefix(tmp, LayerLinkPath("legacy", s1.Layers[0])+".") {
		t.Errorf("WriteTmp = %q, %v; want a file named <link>.<random>.tmp next to the layer link", tmp, err)
	}
	if err := GarbleLink(root, RevisionLinkPath("weird", u)); err != nil {
		t.Fatalf("GarbleLink: %v", err)
	}

	// The registry serves the repository but cannot parse schema 1 (v3 dropped it).
	reg := StartFS(t, root)
	s := reg.Session(t)
	if got := s.Tags("legacy"); !slices.Equal(got, []string{"old"}) {
		t.Errorf("legacy tags: %v, want [old]", got)
	}

	tree, err := ListTree(root)
	if err != nil {
		t.Fatalf("listing the storage: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if err := Backdate(root, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatalf("Backdate: %v", err)
	}
	if err := CopyTree(root, dst); err != nil {
		t.Fatalf("CopyTree: %v", err)
	}
	copied, err := ListTree(dst)
	if err != nil {
		t.Fatalf("listing the copy: %v", err)
	}
	if a, b := Diff(tree.Files, copied.Files); len(a)+len(b) > 0 {
		t.Errorf("the copy's files differ: missing %v, extra %v", a, b)
	}
	if !slices.Equal(tree.Dirs, copied.Dirs) {
		t.Errorf("the copy's directories differ:\n%v\nwant:\n%v", copied.Dirs, tree.Dirs)
	}
	st, err := os.Stat(filepath.Join(dst, BlobDataPath(s1.Manifest)))
	if err != nil {
		t.Errorf("the copied manifest blob: %v", err)
	} else if age := time.Since(st.ModTime()); age < time.Hour {
		t.Errorf("the copy lost the modification time: the blob is %v old, want the 2h it was backdated", age.Round(time.Second))
	}
}
