package harness

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Format is a manifest family.
type Format int

const (
	// Docker is Docker image manifest v2 schema 2 and the Docker manifest list.
	Docker Format = iota
	// OCI is the OCI image manifest and index.
	OCI
)

func (f Format) String() string {
	if f == OCI {
		return "oci"
	}
	return "docker"
}

func (f Format) layerType() types.MediaType {
	if f == OCI {
		return types.OCILayer
	}
	return types.DockerLayer
}

// Random returns n bytes determined by seed.
func Random(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "clean-registry test content")
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// Derive is a new seed from seed, a purpose and a number, so that the parts of one
// image or index never share a seed with the parts of another.
func Derive(seed uint64, purpose string, i int) uint64 {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%s/%d", seed, purpose, i)))
	return binary.LittleEndian.Uint64(h[:])
}

// Layer is a small layer (0.5 to 2.5 KiB) whose content is determined by seed: the
// same seed gives the same digest, which is how tests share layers.
func Layer(seed uint64, f Format) v1.Layer {
	size := 512 + int(seed*7919%2048)
	return static.NewLayer(Random(seed, size), f.layerType())
}

// Image is an image of n fresh layers, all determined by seed.
func Image(seed uint64, n int, f Format) v1.Image {
	layers := make([]v1.Layer, n)
	for i := range layers {
		layers[i] = Layer(Derive(seed, "layer", i), f)
	}
	return ImageWithLayers(seed, f, layers...)
}

// ImageWithLayers is an image of the given layers whose config (and so digest) is
// determined by seed: two images of the same layers differ when their seeds do.
func ImageWithLayers(seed uint64, f Format, layers ...v1.Layer) v1.Image {
	base := empty.Image
	if f == OCI {
		base = mutate.MediaType(base, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	}
	img, err := mutate.AppendLayers(base, layers...)
	must(err)
	cf, err := img.ConfigFile()
	must(err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Labels = map[string]string{"org.clean-registry.test.seed": strconv.FormatUint(seed, 10)}
	img, err = mutate.ConfigFile(img, cf)
	must(err)
	return img
}

// platforms are given to index children in order.
var platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
	{OS: "linux", Architecture: "ppc64le"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "windows", Architecture: "amd64"},
}

// Index is a multi-arch index (an OCI index, or a Docker manifest list) of n images
// of layers layers each, all determined by seed. Children are pushed by digest only.
func Index(seed uint64, n, layers int, f Format) v1.ImageIndex {
	children := make([]mutate.Appendable, n)
	for i := range children {
		children[i] = Image(Derive(seed, "child", i), layers, f)
	}
	return IndexOf(f, children...)
}

// IndexOf is an index of the given images and indexes (nested indexes are OCI only
// in the specifications, but registries store whatever they are given).
func IndexOf(f Format, children ...mutate.Appendable) v1.ImageIndex {
	idx := v1.ImageIndex(empty.Index)
	if f == Docker {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	adds := make([]mutate.IndexAddendum, len(children))
	for i, c := range children {
		adds[i].Add = c
		if _, isImage := c.(v1.Image); isImage {
			p := platforms[i%len(platforms)]
			adds[i].Descriptor.Platform = &p
		}
	}
	return mutate.AppendManifests(idx, adds...)
}

// DigestOf is the digest string ("sha256:...") of an image or index.
func DigestOf(m interface{ Digest() (v1.Hash, error) }) string {
	h, err := m.Digest()
	must(err)
	return h.String()
}

// BlobsOf lists the digests an image's manifest references (config, then layers).
func BlobsOf(img v1.Image) []string {
	m, err := img.Manifest()
	must(err)
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// must panics on errors that cannot happen with in-memory images built here.
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("harness: building an in-memory image: %v", err))
	}
}

// ManifestsOf lists the digests of an index's children, recursively, depth first.
func ManifestsOf(idx v1.ImageIndex) []string {
	im, err := idx.IndexManifest()
	must(err)
	var out []string
	for _, d := range im.Manifests {
		out = append(out, d.Digest.String())
		if d.MediaType.IsIndex() {
			child, err := idx.ImageIndex(d.Digest)
			must(err)
			out = append(out, ManifestsOf(child)...)
		}
	}
	return out
}

// ImagesOf lists an index's images, recursively, depth first.
func ImagesOf(idx v1.ImageIndex) []v1.Image {
	im, err := idx.IndexManifest()
	must(err)
	var out []v1.Image
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			child, err := idx.ImageIndex(d.Digest)
			must(err)
			out = append(out, ImagesOf(child)...)
			continue
		}
		img, err := idx.Image(d.Digest)
		must(err)
		out = append(out, img)
	}
	return out
}

// EmptyConfigDigest is the digest of "{}", the OCI empty descriptor's content that
// every referrer pushed here uses as its config.
const EmptyConfigDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
