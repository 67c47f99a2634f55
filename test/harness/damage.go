package harness

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Paths in a registry's storage, relative to its root, after upstream's
// registry/storage/paths.go (written independently of internal/layout on purpose).

// V2 is the directory every registry storage path lies under.
const V2 = "docker/registry/v2"

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

// BlobDataPath is the content of a blob.
func BlobDataPath(digest string) string {
	h := hexOf(digest)
	return path.Join(V2, "blobs/sha256", h[:2], h, "data")
}

// RepoPath is a repository's directory.
func RepoPath(repo string) string { return path.Join(V2, "repositories", repo) }

// RevisionLinkPath says that a manifest exists in a repository.
func RevisionLinkPath(repo, digest string) string {
	return path.Join(RepoPath(repo), "_manifests/revisions/sha256", hexOf(digest), "link")
}

// LayerLinkPath says that a blob is linked into a repository.
func LayerLinkPath(repo, digest string) string {
	return path.Join(RepoPath(repo), "_layers/sha256", hexOf(digest), "link")
}

// TagCurrentLinkPath is what a tag points at now.
func TagCurrentLinkPath(repo, tag string) string {
	return path.Join(RepoPath(repo), "_manifests/tags", tag, "current/link")
}

// TagIndexLinkPath records that a tag once pointed at a digest.
func TagIndexLinkPath(repo, tag, digest string) string {
	return path.Join(RepoPath(repo), "_manifests/tags", tag, "index/sha256", hexOf(digest), "link")
}

// WriteFile writes content at rel below root, making its directories.
func WriteFile(root, rel string, content []byte) error {
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, content, 0o644)
}

// WriteBlob stores content as a blob, as the registry would, and returns its digest.
func WriteBlob(root string, content []byte) (string, error) {
	d := digestOf(content)
	return d, WriteFile(root, BlobDataPath(d), content)
}

// WriteLink writes a link file with any content (a digest, or damage).
func WriteLink(root, rel, content string) error { return WriteFile(root, rel, []byte(content)) }

// GarbleLink overwrites (or creates) a link file with "garbage", as old registries
// sometimes left them (distribution issues 1960, 2635).
func GarbleLink(root, rel string) error { return WriteLink(root, rel, "garbage") }

// EmptyLink truncates (or creates) a link file to nothing.
func EmptyLink(root, rel string) error { return WriteLink(root, rel, "") }

// LinkManifest links a stored manifest blob into repo, and tags it when tag is set
// (current link and history entry).
func LinkManifest(root, repo, digest, tag string) error {
	if err := WriteLink(root, RevisionLinkPath(repo, digest), digest); err != nil {
		return err
	}
	if tag == "" {
		return nil
	}
	if err := WriteLink(root, TagIndexLinkPath(repo, tag, digest), digest); err != nil {
		return err
	}
	return WriteLink(root, TagCurrentLinkPath(repo, tag), digest)
}

// WriteTmp leaves a temporary file next to rel the way the v3.1 filesystem driver
// does while writing (rel + "." + uuid + ".tmp"), and returns its path.
func WriteTmp(root, rel string) (string, error) {
	var id [16]byte
	rand.Read(id[:])
	h := hex.EncodeToString(id[:])
	tmp := fmt.Sprintf("%s.%s-%s-%s-%s-%s.tmp", rel, h[:8], h[8:12], h[12:16], h[16:20], h[20:])
	return tmp, WriteFile(root, tmp, []byte("sha256:"))
}

// Schema1 is a legacy manifest written into storage.
type Schema1 struct {
	Manifest string
	Layers   []string
}

// WriteSchema1 stores a signed (prettyjws) schema 1 manifest of n layers determined by
// seed in repo, as registry 2.x did: the layer blobs and their _layers links, the
// manifest blob, its revision link and, when tag is set, the tag. Registry v3 cannot
// parse these at all, but old storage still holds them.
func WriteSchema1(root, repo, tag string, seed uint64, n int) (Schema1, error) {
	var s Schema1
	type fsLayer struct {
		BlobSum string `json:"blobSum"`
	}
	type history struct {
		V1Compatibility string `json:"v1Compatibility"`
	}
	var layers []fsLayer
	var hist []history
	for i := range n {
		d, err := WriteBlob(root, Random(Derive(seed, "schema1-layer", i), 400+i*100))
		if err != nil {
			return s, err
		}
		if err := WriteLink(root, LayerLinkPath(repo, d), d); err != nil {
			return s, err
		}
		s.Layers = append(s.Layers, d)
		// Schema 1 lists layers newest first.
		layers = append([]fsLayer{{BlobSum: d}}, layers...)
		v1, _ := json.Marshal(map[string]any{
			"id":      hex.EncodeToString(Random(Derive(seed, "schema1-id", i), 32)),
			"created": "2016-01-02T15:04:05Z",
		})
		hist = append([]history{{V1Compatibility: string(v1)}}, hist...)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	protected, _ := json.Marshal(map[string]any{"formatLength": 1000, "formatTail": "Cn0", "time": "2016-01-02T15:04:05Z"})
	body, err := json.MarshalIndent(map[string]any{
		"schemaVersion": 1,
		"name":          repo,
		"tag":           cmp.Or(tag, "latest"),
		"architecture":  "amd64",
		"fsLayers":      layers,
		"history":       hist,
		"signatures": []map[string]any{{
			"header": map[string]any{
				"jwk": map[string]string{
					"crv": "P-256", "kid": "ABCD:EFGH:IJKL:MNOP:QRST:UVWX:YZ23:4567:ABCD:EFGH:IJKL:MNOP",
					"kty": "EC", "x": b64(Random(Derive(seed, "x", 0), 32)), "y": b64(Random(Derive(seed, "y", 0), 32)),
				},
				"alg": "ES256",
			},
			"signature": b64(Random(Derive(seed, "sig", 0), 64)),
			"protected": b64(protected),
		}},
	}, "", "   ")
	if err != nil {
		return s, err
	}
	if s.Manifest, err = WriteBlob(root, body); err != nil {
		return s, err
	}
	return s, LinkManifest(root, repo, s.Manifest, tag)
}

// UnknownMediaType is the media type of manifests no tool understands.
const UnknownMediaType = "application/vnd.example.unknown.v1+json"

// WriteUnknownManifest stores a manifest of an unknown media type determined by seed
// in repo (revision link, and the tag when set) and returns its digest. What it
// references cannot be known, so a cleaner must keep every blob of its repository.
func WriteUnknownManifest(root, repo, tag string, seed uint64) (string, error) {
	body, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     UnknownMediaType,
		"seed":          strconv.FormatUint(seed, 10),
		"opaque":        base64.StdEncoding.EncodeToString(Random(seed, 64)),
	})
	if err != nil {
		return "", err
	}
	d, err := WriteBlob(root, body)
	if err != nil {
		return "", err
	}
	return d, LinkManifest(root, repo, d, tag)
}
