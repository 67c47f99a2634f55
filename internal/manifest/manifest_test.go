package manifest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	godigest "github.com/opencontainers/go-digest"
)

const (
	h1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	h2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	h3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name                     string
		doc                      string
		typ                      Type
		blobs, children, subject int
		err                      error // nil: success; errAny: any error
	}{
		{"docker schema2", `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerSchema2 + `","config":{"digest":"` + h1 + `"},"layers":[{"digest":"` + h2 + `"},{"digest":"` + h3 + `"}]}`,
			DockerSchema2, 3, 0, 0, nil},
		{"oci manifest", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"digest":"` + h1 + `"},"layers":[]}`,
			OCIManifest, 1, 0, 0, nil},
		{"oci manifest without mediaType", `{"schemaVersion":2,"config":{"digest":"` + h1 + `"},"layers":[{"digest":"` + h2 + `"}]}`,
			OCIManifest, 2, 0, 0, nil},
		{"oci referrer", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","artifactType":"application/x","config":{"digest":"` + h1 + `"},"layers":[],"subject":{"digest":"` + h3 + `"}}`,
			OCIManifest, 1, 0, 1, nil},
		{"docker list", `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","manifests":[{"digest":"` + h1 + `"},{"digest":"` + h2 + `"}]}`,
			DockerList, 0, 2, 0, nil},
		{"oci index without mediaType", `{"schemaVersion":2,"manifests":[{"digest":"` + h1 + `"}]}`,
			OCIIndex, 0, 1, 0, nil},
		{"oci index with subject", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"subject":{"digest":"` + h2 + `"}}`,
			OCIIndex, 0, 0, 1, nil},
		{"schema1", `{"schemaVersion":1,"name":"a","tag":"t","fsLayers":[{"blobSum":"` + h1 + `"},{"blobSum":"` + h2 + `"}],"signatures":[]}`,
			DockerSchema1, 2, 0, 0, nil},
		{"schema1 prettyjws", `{"schemaVersion":1,"mediaType":"` + MediaTypeDockerSchema1JWS + `","fsLayers":[{"blobSum":"` + h1 + `"}]}`,
			DockerSchema1, 1, 0, 0, nil},
		{"other algorithm counted, not lost", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"digest":"` + h1 + `"},"layers":[{"digest":"sha512:` + strings.Repeat("ab", 64) + `"}]}`,
			OCIManifest, 1, 0, 0, nil},
		{"unknown media type", `{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}`, 0, 0, 0, 0, ErrUnknown},
		{"unknown schema version", `{"schemaVersion":3}`, 0, 0, 0, 0, ErrUnknown},
		{"no schema version", `{"mediaType":"` + MediaTypeOCIManifest + `"}`, 0, 0, 0, 0, ErrUnknown},
		{"not json", `garbage`, 0, 0, 0, 0, errAny},
		{"empty", ``, 0, 0, 0, 0, errAny},
		{"bad digest", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"digest":"sha256:xyz"}}`, 0, 0, 0, 0, errAny},
		{"manifest without config", `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerSchema2 + `","layers":[]}`, 0, 0, 0, 0, errAny},
		{"index with layers", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"layers":[{"digest":"` + h1 + `"}]}`, 0, 0, 0, 0, errAny},
		{"schema1 without layers", `{"schemaVersion":1,"fsLayers":[]}`, 0, 0, 0, 0, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.doc))
			switch {
			case tt.err == nil && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.err == errAny && err == nil, tt.err != nil && tt.err != errAny && !errors.Is(err, tt.err):
				t.Fatalf("error = %v, want %v", err, tt.err)
			case tt.err != nil:
				return
			}
			subject := 0
			if !m.Subject.IsZero() {
				subject = 1
			}
			if m.Type != tt.typ || len(m.Blobs) != tt.blobs || len(m.Children) != tt.children || subject != tt.subject {
				t.Fatalf("got %s blobs=%d children=%d subject=%d, want %s %d %d %d",
					m.Type, len(m.Blobs), len(m.Children), subject, tt.typ, tt.blobs, tt.children, tt.subject)
			}
		})
	}
}

var errAny = errors.New("any error")

// Sizes are the declared sizes of Blobs, one each: -1 where none is declared
// (schema1, or no size field) or a negative one is; other algorithms' blobs are not
// there, so neither are their sizes.
func TestParseSizes(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		want []int64
	}{
		{`{"schemaVersion":2,"config":{"digest":"` + h1 + `","size":7},"layers":[{"digest":"` + h2 + `","size":1000},{"digest":"` + h3 + `"}]}`, []int64{7, 1000, 0}},
		{`{"schemaVersion":2,"config":{"digest":"` + h1 + `","size":-9},"layers":[{"digest":"sha512:` + strings.Repeat("ab", 64) + `","size":5},{"digest":"` + h2 + `","size":3}]}`, []int64{-1, 3}},
		{`{"schemaVersion":1,"fsLayers":[{"blobSum":"` + h1 + `"},{"blobSum":"` + h2 + `"}]}`, []int64{-1, -1}},
		{`{"schemaVersion":2,"manifests":[{"digest":"` + h1 + `","size":3}]}`, nil},
	} {
		m, err := Parse([]byte(tt.doc))
		if err != nil {
			t.Fatalf("%s: %v", tt.doc, err)
		}
		if !slices.Equal(m.Sizes, tt.want) {
			t.Errorf("%s: sizes %v, want %v", tt.doc, m.Sizes, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[{"digest":"` + h1 + `"}],"subject":{"digest":"` + h2 + `"}}`))
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"` + h1 + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"` + h1 + `"},"layers":[{"digest":"` + h2 + `"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if m != nil {
				t.Fatal("a manifest and an error")
			}
			return
		}
		if m.Type == 0 {
			t.Fatal("understood without a type")
		}
		if len(m.References()) != len(m.Blobs)+len(m.Children) {
			t.Fatal("references lost")
		}
		if len(m.Sizes) != len(m.Blobs) || slices.ContainsFunc(m.Sizes, func(n int64) bool { return n < -1 }) {
			t.Fatalf("sizes %v for %d blobs", m.Sizes, len(m.Blobs))
		}
		if (m.Type == DockerList || m.Type == OCIIndex) && len(m.Blobs) > 0 {
			t.Fatal("an index with blobs")
		}
	})
}

func BenchmarkParse(b *testing.B) {
	var layers []string
	for i := 0; i < 8; i++ {
		layers = append(layers, `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":12345678,"digest":"`+h2+`"}`)
	}
	doc := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":1234,"digest":"` +
		h1 + `"},"layers":[` + strings.Join(layers, ",") + `],"annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}`)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseDescriptors(t *testing.T) {
	foreign := "sha512:" + strings.Repeat("ab", 64)
	tests := []struct {
		name string
		doc  string
		want []Descriptor
	}{
		{"image: config then layers, sizes and urls as written",
			`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerSchema2 + `","config":{"digest":"` + h1 + `","size":7},"layers":[{"digest":"` + h2 +
				`","size":9,"mediaType":"x"},{"digest":"` + h3 + `","size":3,"urls":["https://example.com/l"]}]}`,
			[]Descriptor{{Role: RoleConfig, Digest: h1, Size: 7}, {Role: RoleLayer, Digest: h2, Size: 9, MediaType: "x"},
				{Role: RoleLayer, Digest: h3, Size: 3, URLs: []string{"https://example.com/l"}}}},
		{"index: children, another algorithm kept",
			`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[{"digest":"` + h1 + `","size":5},{"digest":"` + foreign + `","size":6}],"subject":{"digest":"` + h2 + `"}}`,
			[]Descriptor{{Role: RoleChild, Digest: h1, Size: 5}, {Role: RoleChild, Digest: godigest.Digest(foreign), Size: 6}}},
		{"schema1: unsized layers",
			`{"schemaVersion":1,"fsLayers":[{"blobSum":"` + h1 + `"}]}`,
			[]Descriptor{{Role: RoleLayer, Digest: h1, Size: -1}}},
		{"empty index", `{"schemaVersion":2,"manifests":[]}`, []Descriptor{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := ParseDescriptors([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if m, d, err := ParseDescriptors([]byte(`{"schemaVersion":3}`)); err == nil || m != nil || d != nil {
		t.Fatalf("an unknown manifest gave %v %v %v", m, d, err)
	}
}

// FuzzParseDescriptors checks that the descriptors agree with Parse: the same
// verdict, and the sha256 ones are exactly its blobs and children, in order.
func FuzzParseDescriptors(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[{"digest":"` + h1 + `","size":3}]}`))
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"` + h1 + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"` + h1 + `"},"layers":[{"digest":"` + h2 + `","urls":["u"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, descs, err := ParseDescriptors(data)
		pm, perr := Parse(data)
		if (err == nil) != (perr == nil) {
			t.Fatalf("ParseDescriptors: %v; Parse: %v", err, perr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(m, pm) {
			t.Fatalf("ParseDescriptors read %+v, Parse %+v", m, pm)
		}
		var blobs, children []string
		for _, d := range descs {
			if d.Digest.Validate() != nil {
				t.Fatalf("an invalid digest passed: %q", d.Digest)
			}
			if d.Digest.Algorithm() != godigest.SHA256 {
				continue
			}
			if d.Role == RoleChild {
				children = append(children, string(d.Digest))
			} else {
				blobs = append(blobs, string(d.Digest))
			}
		}
		var wantBlobs, wantChildren []string
		for _, d := range m.Blobs {
			wantBlobs = append(wantBlobs, d.String())
		}
		for _, d := range m.Children {
			wantChildren = append(wantChildren, d.String())
		}
		if !reflect.DeepEqual(blobs, wantBlobs) || !reflect.DeepEqual(children, wantChildren) {
			t.Fatalf("descriptors %v %v, manifest %v %v", blobs, children, wantBlobs, wantChildren)
		}
	})
}
