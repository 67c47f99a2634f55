package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types used by the raw helpers.
const (
	MediaOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaOCIIndex    = "application/vnd.oci.image.index.v1+json"
	MediaOCIEmpty    = "application/vnd.oci.empty.v1+json"
	MediaDocker      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaDockerList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaSchema1     = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// SplitRef splits "repo", "repo:tag" or "repo@sha256:..." into repository and the
// tag or digest (empty for a bare repository).
func SplitRef(ref string) (repo, tagOrDigest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// reference is ref on host for go-containerregistry; a bare repository means "by digest".
func reference(host, ref, digest string) (name.Reference, error) {
	repo, id := SplitRef(ref)
	switch {
	case id == "":
		return name.NewDigest(host+"/"+repo+"@"+digest, name.Insecure)
	case strings.Contains(id, ":"):
		return name.NewDigest(host+"/"+repo+"@"+id, name.Insecure)
	default:
		return name.NewTag(host+"/"+repo+":"+id, name.Insecure)
	}
}

// PushImage pushes img (its blobs, then its manifest) to ref: "repo:tag" tags it,
// a bare "repo" pushes it by digest only, untagged. It returns the manifest digest.
func PushImage(ctx context.Context, host, ref string, img v1.Image) (string, error) {
	d := DigestOf(img)
	r, err := reference(host, ref, d)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	return d, nil
}

// PushIndex pushes an index to ref like PushImage: its children (recursively) go by
// digest only, untagged, as docker buildx and crane do.
func PushIndex(ctx context.Context, host, ref string, idx v1.ImageIndex) (string, error) {
	d := DigestOf(idx)
	r, err := reference(host, ref, d)
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing index %s: %w", ref, err)
	}
	return d, nil
}

// PushImageTo pushes one image to several references (tags of one repository, or
// several repositories, which then share its blobs) and returns its digest.
func PushImageTo(ctx context.Context, host string, img v1.Image, refs ...string) (string, error) {
	var d string
	for _, ref := range refs {
		var err error
		if d, err = PushImage(ctx, host, ref, img); err != nil {
			return "", err
		}
	}
	return d, nil
}

// Tag points repo:tag at a manifest already in repo, without pushing anything else.
func Tag(ctx context.Context, host, repo, digest, tag string) error {
	src, err := name.NewDigest(host+"/"+repo+"@"+digest, name.Insecure)
	if err != nil {
		return err
	}
	desc, err := remote.Get(src, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("reading %s@%s to tag it: %w", repo, digest, err)
	}
	dst, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Tag(dst, desc, remote.WithContext(ctx))
}

// PushBlob uploads content to repo and returns its digest.
func PushBlob(ctx context.Context, host, repo string, content []byte) (string, error) {
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		return "", err
	}
	l := static.NewLayer(content, types.MediaType("application/octet-stream"))
	if err := remote.WriteLayer(r, l, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing a blob to %s: %w", repo, err)
	}
	return DigestOf(l), nil
}

// PutManifest PUTs a manifest body as it is to ref ("repo:tag", or a bare "repo" for
// by digest) and returns its digest. The blobs it references must be there already.
func PutManifest(ctx context.Context, host, ref, mediaType string, body []byte) (string, error) {
	d := digestOf(body)
	repo, id := SplitRef(ref)
	if id == "" {
		id = d
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut,
		"http://"+host+"/v2/"+repo+"/manifests/"+id, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PUT manifest %s: %s: %s", ref, resp.Status, msg)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d {
		return "", fmt.Errorf("PUT manifest %s: registry says digest %s, content is %s", ref, got, d)
	}
	return d, nil
}

// Descriptor is what a manifest is known by: media type, digest, size.
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// Describe asks the registry for ref's descriptor (a HEAD request).
func Describe(ctx context.Context, host, ref string) (Descriptor, error) {
	resp, err := manifestRequest(ctx, http.MethodHead, host, ref)
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Descriptor{}, fmt.Errorf("HEAD manifest %s: %s", ref, resp.Status)
	}
	size, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	return Descriptor{MediaType: resp.Header.Get("Content-Type"), Digest: resp.Header.Get("Docker-Content-Digest"), Size: size}, nil
}

// PushReferrer pushes an OCI 1.1 artifact (artifactType, an empty config, one small
// layer determined by seed) whose subject is the manifest subjectDigest in repo, by
// digest only, like a signature or an SBOM. No referrers fallback tag is written.
func PushReferrer(ctx context.Context, host, repo, subjectDigest, artifactType string, seed uint64) (string, error) {
	subject, err := Describe(ctx, host, repo+"@"+subjectDigest)
	if err != nil {
		return "", err
	}
	config := []byte("{}")
	configDigest, err := PushBlob(ctx, host, repo, config)
	if err != nil {
		return "", err
	}
	payload := ReferrerPayload(seed)
	payloadDigest, err := PushBlob(ctx, host, repo, payload)
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaOCIManifest,
		"artifactType":  artifactType,
		"config":        Descriptor{MediaType: MediaOCIEmpty, Digest: configDigest, Size: int64(len(config))},
		"layers":        []Descriptor{{MediaType: "application/octet-stream", Digest: payloadDigest, Size: int64(len(payload))}},
		"subject":       subject,
		"annotations":   map[string]string{"org.clean-registry.test.seed": strconv.FormatUint(seed, 10)},
	})
	if err != nil {
		return "", err
	}
	return PutManifest(ctx, host, repo, MediaOCIManifest, body)
}

// ReferrerPayload is the one layer of the referrer PushReferrer makes from seed.
func ReferrerPayload(seed uint64) []byte {
	return Random(Derive(seed, "referrer", 0), 256+int(seed%256))
}

// Sha256 is the digest string of b.
func Sha256(b []byte) string { return digestOf(b) }

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}
