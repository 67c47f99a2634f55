package check

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
)

// reg writes a registry's storage as the registry would.
type reg struct {
	t    *testing.T
	root string
}

func (r reg) write(p string, data []byte) {
	r.t.Helper()
	layouttest.Tree{T: r.t, Root: r.root}.Write(p, data)
}

func (r reg) remove(p string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.root, filepath.FromSlash(p))); err != nil {
		r.t.Fatal(err)
	}
}

func (r reg) read(p string) []byte {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(p)))
	if err != nil {
		r.t.Fatal(err)
	}
	return data
}

func (r reg) blob(content []byte) layout.Digest {
	r.t.Helper()
	return layouttest.Tree{T: r.t, Root: r.root}.Blob(content)
}

func (r reg) link(p string, d layout.Digest) { r.write(p, []byte(d.String())) }

// img is an image written into the storage.
type img struct {
	manifest, config layout.Digest
	layers           []layout.Digest
	size             int // the manifest's
	mediaType        string
}

func descOf(d layout.Digest, size int, mt string) map[string]any {
	return map[string]any{"mediaType": mt, "digest": d.String(), "size": size}
}

// putManifest stores a manifest in repo (blob and revision link) and tags it.
func (r reg) putManifest(repo, tag string, body []byte) layout.Digest {
	d := r.blob(body)
	r.link(layout.RevisionLink(repo, d), d)
	if tag != "" {
		r.link(layout.TagCurrentLink(repo, tag), d)
		r.link(layout.TagIndexDir(repo, tag, d)+"/link", d)
	}
	return d
}

// image writes an OCI image of n layers named by seed into repo.
func (r reg) image(repo, tag, seed string, n int) img {
	cfg := []byte(`{"seed":"` + seed + `"}`)
	im := img{config: r.blob(cfg), mediaType: manifest.MediaTypeOCIManifest}
	r.link(layout.LayerLink(repo, im.config), im.config)
	var layers []any
	for i := range n {
		content := []byte(strings.Repeat(seed+string(rune('a'+i)), 100))
		d := r.blob(content)
		r.link(layout.LayerLink(repo, d), d)
		im.layers = append(im.layers, d)
		layers = append(layers, descOf(d, len(content), "application/vnd.oci.image.layer.v1.tar"))
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIManifest,
		"config": descOf(im.config, len(cfg), "application/vnd.oci.image.config.v1+json"), "layers": layers})
	im.manifest, im.size = r.putManifest(repo, tag, body), len(body)
	return im
}

// index writes an OCI index of children into repo, with sizes adjusted by skew.
func (r reg) index(repo, tag string, skew int, children ...img) layout.Digest {
	var ms []any
	for _, c := range children {
		ms = append(ms, descOf(c.manifest, c.size+skew, c.mediaType))
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIIndex, "manifests": ms})
	return r.putManifest(repo, tag, body)
}

func newReg(t *testing.T) reg {
	r := reg{t: t, root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(r.root, layout.BlobsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r reg) check(opts Options) (*Result, error) {
	r.t.Helper()
	b, err := fs.New(r.root, 4)
	if err != nil {
		r.t.Fatal(err)
	}
	opts.Jobs = 3
	return Run(context.Background(), b, opts)
}

// kinds is the broken images as "repo:tag" -> their issues' kinds and roles.
func kinds(res *Result) map[string][]string {
	out := map[string][]string{}
	for _, im := range res.Broken {
		for _, is := range im.Issues {
			out[im.String()] = append(out[im.String()], string(is.Kind)+"/"+is.Role)
		}
		sort.Strings(out[im.String()])
	}
	return out
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		// damage changes a storage of app:1 (an image of two layers), app:2 (an
		// index of app:1's image and another), and other:1.
		damage   func(r reg, one, two img, idx layout.Digest)
		verify   bool
		want     map[string][]string
		warnings int
	}{
		{"healthy", func(reg, img, img, layout.Digest) {}, false, map[string][]string{}, 0},
		{"healthy, verified", func(reg, img, img, layout.Digest) {}, true, map[string][]string{}, 0},
		{"a layer blob removed: every image with it", func(r reg, one, _ img, _ layout.Digest) {
			r.remove(layout.BlobDir(one.layers[1]))
		}, false, map[string][]string{"app:1": {"missing-blob/layer"}, "app:2": {"missing-blob/layer"}}, 0},
		{"a layer blob truncated", func(r reg, one, _ img, _ layout.Digest) {
			r.write(layout.BlobData(one.layers[0]), r.read(layout.BlobData(one.layers[0]))[:10])
		}, false, map[string][]string{"app:1": {"wrong-size/layer"}, "app:2": {"wrong-size/layer"}}, 0},
		{"a config blob of the same size, corrupt: only a verification sees it", func(r reg, one, _ img, _ layout.Digest) {
			data := r.read(layout.BlobData(one.config))
			data[0] ^= 1
			r.write(layout.BlobData(one.config), data)
		}, false, map[string][]string{}, 0},
		{"a config blob of the same size, corrupt, verified", func(r reg, one, _ img, _ layout.Digest) {
			data := r.read(layout.BlobData(one.config))
			data[0] ^= 1
			r.write(layout.BlobData(one.config), data)
		}, true, map[string][]string{"app:1": {"wrong-digest/config"}, "app:2": {"wrong-digest/config"}}, 0},
		{"the tag's revision link removed", func(r reg, one, _ img, _ layout.Digest) {
			r.remove(layout.RevisionDir("app", one.manifest))
		}, false, map[string][]string{"app:1": {"missing-revision-link/manifest"}, "app:2": {"missing-revision-link/index child"}}, 0},
		{"a layer link removed", func(r reg, one, _ img, _ layout.Digest) {
			r.remove(layout.LayerDir("app", one.layers[1]))
		}, false, map[string][]string{"app:1": {"missing-layer-link/layer"}, "app:2": {"missing-layer-link/layer"}}, 0},
		{"a config link garbled", func(r reg, one, _ img, _ layout.Digest) {
			r.write(layout.LayerLink("app", one.config), []byte("garbage"))
		}, false, map[string][]string{"app:1": {"bad-link/config"}, "app:2": {"bad-link/config"}}, 0},
		{"a layer link naming another digest", func(r reg, one, _ img, _ layout.Digest) {
			r.link(layout.LayerLink("app", one.layers[0]), one.layers[1])
		}, false, map[string][]string{"app:1": {"bad-link/layer"}, "app:2": {"bad-link/layer"}}, 0},
		{"an index child's blob removed", func(r reg, _, two img, _ layout.Digest) {
			r.remove(layout.BlobDir(two.manifest))
		}, false, map[string][]string{"app:2": {"missing-blob/index child"}}, 0},
		{"the tag's manifest blob removed", func(r reg, _, _ img, idx layout.Digest) {
			r.remove(layout.BlobDir(idx))
		}, false, map[string][]string{"app:2": {"missing-blob/manifest"}}, 0},
		{"the tag's current link removed", func(r reg, _, _ img, _ layout.Digest) {
			r.remove(layout.TagCurrentLink("app", "2"))
		}, false, map[string][]string{"app:2": {"no-tag-link/"}}, 0},
		{"the tag's current link garbled", func(r reg, _, _ img, _ layout.Digest) {
			r.write(layout.TagCurrentLink("app", "1"), []byte("sha256:nothex"))
		}, false, map[string][]string{"app:1": {"bad-tag-link/"}}, 0},
		{"an index child of the wrong size", func(r reg, one, two img, _ layout.Digest) {
			r.index("app", "2", 1, one, two)
		}, false, map[string][]string{"app:2": {"wrong-size/index child", "wrong-size/index child"}}, 0},
		{"an index child that was never stored", func(r reg, one, _ img, _ layout.Digest) {
			ghost := img{manifest: layout.Digest(sha256.Sum256([]byte("ghost"))), size: 5, mediaType: manifest.MediaTypeOCIManifest}
			r.index("app", "2", 0, one, ghost)
		}, false, map[string][]string{"app:2": {"missing-blob/index child", "missing-revision-link/index child"}}, 0},
		{"a manifest of an unknown type", func(r reg, _, _ img, _ layout.Digest) {
			r.putManifest("other", "1", []byte(`{"schemaVersion":2,"mediaType":"application/x-unknown"}`))
		}, false, map[string][]string{"other:1": {"unreadable-manifest/manifest"}}, 0},
		{"a manifest that is no JSON", func(r reg, _, _ img, _ layout.Digest) {
			r.putManifest("other", "1", []byte(`garbage`))
		}, false, map[string][]string{"other:1": {"unreadable-manifest/manifest"}}, 0},
		{"a foreign layer need not be stored", func(r reg, _, _ img, _ layout.Digest) {
			cfg := r.blob([]byte("{}"))
			r.link(layout.LayerLink("other", cfg), cfg)
			body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeDockerSchema2,
				"config": descOf(cfg, 2, "application/vnd.docker.container.image.v1+json"),
				"layers": []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
					"digest": layout.Digest(sha256.Sum256([]byte("windows"))).String(), "size": 7, "urls": []string{"https://example.com/l"}}}})
			r.putManifest("other", "1", body)
		}, false, map[string][]string{}, 0},
		{"schema1: checked, with a warning", func(r reg, _, _ img, _ layout.Digest) {
			l := r.blob([]byte("legacy layer"))
			r.link(layout.LayerLink("other", l), l)
			r.putManifest("other", "1", []byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"`+l.String()+`"}]}`))
		}, false, map[string][]string{}, 1},
		{"schema1 with its layer link gone", func(r reg, _, _ img, _ layout.Digest) {
			l := r.blob([]byte("legacy layer"))
			r.putManifest("other", "1", []byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"`+l.String()+`"}]}`))
		}, false, map[string][]string{"other:1": {"missing-layer-link/layer"}}, 1},
		{"another digest algorithm: a warning", func(r reg, one, _ img, _ layout.Digest) {
			body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIManifest,
				"config": descOf(one.config, len(`{"seed":"one"}`), "application/vnd.oci.image.config.v1+json"),
				"layers": []any{map[string]any{"digest": "sha512:" + strings.Repeat("ab", 64), "size": 3}}})
			r.link(layout.LayerLink("other", one.config), one.config)
			r.putManifest("other", "1", body)
		}, false, map[string][]string{}, 1},
		{"a symbolic link the scan does not follow: a warning", func(r reg, _, _ img, _ layout.Digest) {
			if err := os.Symlink(r.t.TempDir(), filepath.Join(r.root, filepath.FromSlash(layout.RepoDir("evil")))); err != nil {
				r.t.Fatal(err)
			}
		}, false, map[string][]string{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReg(t)
			one := r.image("app", "1", "one", 2)
			two := r.image("app", "", "two", 1)
			idx := r.index("app", "2", 0, one, two)
			r.image("other", "1", "three", 1)
			tt.damage(r, one, two, idx)
			res, err := r.check(Options{VerifyDigests: tt.verify})
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(res); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("broken: %v\nwant %v", got, tt.want)
				for _, im := range res.Broken {
					for _, is := range im.Issues {
						t.Logf("%s -> %s", im, is)
					}
				}
			}
			if len(res.Warnings) != tt.warnings {
				t.Errorf("warnings %q, want %d", res.Warnings, tt.warnings)
			}
			if res.Images != 3 {
				t.Errorf("%d images checked, want 3", res.Images)
			}
			if tt.verify && (res.Verified != res.Blobs || res.VerifiedBytes != res.Bytes || res.Blobs == 0) {
				t.Errorf("verified %d blobs (%d bytes) of %d (%d bytes)", res.Verified, res.VerifiedBytes, res.Blobs, res.Bytes)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	r := newReg(t)
	one := r.image("app", "1", "one", 2)
	r.index("app", "2", 0, one)
	r.image("app", "old", "old", 1)
	res, err := r.check(Options{Select: []Selector{{Repo: "app", Tag: "2"}}, VerifyDigests: true})
	if err != nil {
		t.Fatal(err)
	}
	// The index, its child, the child's config and two layers.
	var bytes int64
	for _, d := range append([]layout.Digest{one.config}, one.layers...) {
		bytes += int64(len(r.read(layout.BlobData(d))))
	}
	idx, _ := layout.ParseLink(r.read(layout.TagCurrentLink("app", "2")))
	bytes += int64(len(r.read(layout.BlobData(idx)))) + int64(one.size)
	if res.Images != 1 || res.Manifests != 2 || res.Blobs != 5 || res.Bytes != bytes || res.Verified != 5 || res.VerifiedBytes != bytes {
		t.Errorf("got %+v, want 1 image, 2 manifests, 5 blobs of %d bytes, all verified", res, bytes)
	}
}

func TestSelection(t *testing.T) {
	r := newReg(t)
	one := r.image("app", "1", "one", 1)
	r.image("app", "2", "two", 1)
	r.image("other", "1", "three", 1)
	r.remove(layout.BlobDir(one.layers[0]))
	for _, tt := range []struct {
		sel    []Selector
		images int
		broken int
		err    bool
	}{
		{nil, 3, 1, false},
		{[]Selector{{Repo: "app"}}, 2, 1, false},
		{[]Selector{{Repo: "app", Tag: "2"}, {Repo: "other"}}, 2, 0, false},
		{[]Selector{{Repo: "app", Tag: "1"}, {Repo: "app"}}, 2, 1, false}, // each tag once
		{[]Selector{{Repo: "nope"}}, 0, 0, true},
		{[]Selector{{Repo: "app", Tag: "nope"}}, 0, 0, true},
	} {
		res, err := r.check(Options{Select: tt.sel})
		if tt.err {
			if !errors.Is(err, ErrUnknown) {
				t.Errorf("%v: error %v, want ErrUnknown", tt.sel, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.sel, err)
		}
		if res.Images != tt.images || len(res.Broken) != tt.broken {
			t.Errorf("%v: %d images, %d broken; want %d, %d", tt.sel, res.Images, len(res.Broken), tt.images, tt.broken)
		}
	}
}

func TestIssueString(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	m := "sha256:" + strings.Repeat("b", 64)
	for _, tt := range []struct {
		is   Issue
		want string
	}{
		{Issue{Kind: MissingBlob, Digest: d, Role: "layer", Of: m}, "missing blob " + d + " (layer of manifest " + m + ")"},
		{Issue{Kind: MissingRevisionLink, Digest: m, Role: "manifest"}, "missing revision link " + m + " (manifest)"},
		{Issue{Kind: WrongSize, Digest: d, Role: "config", Of: m, Detail: "1 bytes stored, the descriptor says 2"},
			"wrong-size blob " + d + " (config of manifest " + m + "): 1 bytes stored, the descriptor says 2"},
		{Issue{Kind: NoTagLink}, "tag without current link"},
	} {
		if got := tt.is.String(); got != tt.want {
			t.Errorf("got %q\nwant %q", got, tt.want)
		}
	}
}
