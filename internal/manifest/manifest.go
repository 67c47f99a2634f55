// Package manifest reads a manifest's bytes into the references that keep other
// content alive: its config and layers, the children of an index, and the subject of
// an OCI 1.1 referrer. It understands every type a distribution registry stores and
// says so plainly when it does not, instead of guessing.
package manifest

import (
	_ "crypto/sha512" // lets go-digest validate sha384/sha512 digests, which are kept, not rejected
	"encoding/json"
	"errors"
	"fmt"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	godigest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the manifests a registry holds.
const (
	MediaTypeDockerSchema2    = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList       = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1    = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1JWS = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeOCIManifest      = v1.MediaTypeImageManifest
	MediaTypeOCIIndex         = v1.MediaTypeImageIndex
)

// Type is the kind of a manifest.
type Type uint8

const (
	DockerSchema2 Type = iota + 1
	DockerList
	OCIManifest
	OCIIndex
	DockerSchema1
)

func (t Type) String() string {
	switch t {
	case DockerSchema2:
		return "docker-schema2"
	case DockerList:
		return "docker-manifest-list"
	case OCIManifest:
		return "oci-manifest"
	case OCIIndex:
		return "oci-index"
	case DockerSchema1:
		return "docker-schema1"
	}
	return "unknown"
}

// Manifest is what a manifest references.
type Manifest struct {
	Type Type
	// Blobs are the config and layers (schema1: the fsLayers blobSums), in order.
	Blobs []layout.Digest
	// Sizes are the sizes the manifest declares for Blobs, one each (-1: none, as in
	// schema1).
	Sizes []int64
	// Children are the manifests an index or manifest list names.
	Children []layout.Digest
	// Subject is the manifest a referrer is about (OCI 1.1); zero when none.
	Subject layout.Digest
	// ArtifactType is the OCI 1.1 artifactType, if any.
	ArtifactType string
	// Foreign counts references with another digest algorithm: they cannot be held in
	// a Digest, and blobs of other algorithms are never deleted anyway.
	Foreign int
}

// ErrUnknown reports a manifest whose type this package does not understand.
var ErrUnknown = errors.New("unknown manifest type")

// document is the union of the fields of every manifest type that matter here.
type document struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     string           `json:"mediaType"`
	ArtifactType  string           `json:"artifactType"`
	Config        *v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor  `json:"layers"`
	Manifests     *[]v1.Descriptor `json:"manifests"`
	Subject       *v1.Descriptor   `json:"subject"`
	FSLayers      []struct {
		BlobSum godigest.Digest `json:"blobSum"`
	} `json:"fsLayers"`
}

// Parse reads a manifest. The rules follow the registry's own (registry/storage/
// manifeststore.go): schemaVersion 1 is schema1; schemaVersion 2 is dispatched on
// mediaType, and an OCI document without one is an index when it has "manifests".
// Anything else is ErrUnknown; malformed JSON or digests are errors too, so that
// the caller keeps whatever such a manifest might reference.
func Parse(data []byte) (*Manifest, error) { return parse(data, nil) }

// Role says what a descriptor is to its manifest.
type Role uint8

const (
	RoleConfig Role = iota + 1
	RoleLayer
	RoleChild // a manifest an index or manifest list names
)

func (r Role) String() string {
	switch r {
	case RoleConfig:
		return "config"
	case RoleLayer:
		return "layer"
	case RoleChild:
		return "index child"
	}
	return "unknown"
}

// Descriptor is one reference of a manifest as the manifest states it: what a pull
// fetches and checks (the subject is not: a pull does not fetch it).
type Descriptor struct {
	Role Role
	// Digest is as written, of any valid algorithm.
	Digest godigest.Digest
	// Size is -1 where the manifest states none (schema1).
	Size      int64
	MediaType string
	// URLs are where a non-distributable (foreign) layer is fetched from instead.
	URLs []string
}

// ParseDescriptors is Parse, and also returns the config, layer and child
// descriptors in the manifest's order (schema1: its fsLayers, unsized).
func ParseDescriptors(data []byte) (*Manifest, []Descriptor, error) {
	descs := []Descriptor{}
	m, err := parse(data, &descs)
	if err != nil {
		return nil, nil, err
	}
	return m, descs, nil
}

// parse is Parse; with descs set it also records every descriptor there.
func parse(data []byte, descs *[]Descriptor) (*Manifest, error) {
	var doc document
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON manifest: %w", err)
	}
	m := &Manifest{ArtifactType: doc.ArtifactType}
	switch doc.SchemaVersion {
	case 1:
		if doc.MediaType != "" && doc.MediaType != MediaTypeDockerSchema1 && doc.MediaType != MediaTypeDockerSchema1JWS {
			return nil, fmt.Errorf("%w: schemaVersion 1 with mediaType %q", ErrUnknown, doc.MediaType)
		}
		m.Type = DockerSchema1
		if len(doc.FSLayers) == 0 {
			return nil, errors.New("schema1 manifest without fsLayers")
		}
		for _, l := range doc.FSLayers {
			if err := m.addBlob(l.BlobSum, -1); err != nil {
				return nil, err
			}
			if descs != nil {
				*descs = append(*descs, Descriptor{Role: RoleLayer, Digest: l.BlobSum, Size: -1})
			}
		}
		return m, nil
	case 2:
	default:
		return nil, fmt.Errorf("%w: schemaVersion %d", ErrUnknown, doc.SchemaVersion)
	}
	switch doc.MediaType {
	case MediaTypeDockerSchema2:
		m.Type = DockerSchema2
	case MediaTypeOCIManifest:
		m.Type = OCIManifest
	case MediaTypeDockerList:
		m.Type = DockerList
	case MediaTypeOCIIndex:
		m.Type = OCIIndex
	case "":
		if doc.Manifests != nil {
			m.Type = OCIIndex
		} else {
			m.Type = OCIManifest
		}
	default:
		return nil, fmt.Errorf("%w: mediaType %q", ErrUnknown, doc.MediaType)
	}
	if m.Type == DockerSchema2 || m.Type == OCIManifest {
		if doc.Config == nil {
			return nil, fmt.Errorf("%s manifest without config", m.Type)
		}
		if doc.Manifests != nil {
			return nil, fmt.Errorf("%s manifest with a manifests list", m.Type)
		}
		if err := m.addBlob(doc.Config.Digest, doc.Config.Size); err != nil {
			return nil, err
		}
		addDesc(descs, RoleConfig, *doc.Config)
		for _, l := range doc.Layers {
			if err := m.addBlob(l.Digest, l.Size); err != nil {
				return nil, err
			}
			addDesc(descs, RoleLayer, l)
		}
	} else {
		if doc.Config != nil || len(doc.Layers) > 0 {
			return nil, fmt.Errorf("%s with config or layers", m.Type)
		}
		if doc.Manifests != nil {
			for _, c := range *doc.Manifests {
				d, ok, err := convert(c.Digest)
				if err != nil {
					return nil, err
				}
				addDesc(descs, RoleChild, c)
				if !ok {
					m.Foreign++
					continue
				}
				m.Children = append(m.Children, d)
			}
		}
	}
	if doc.Subject != nil {
		if m.Type == DockerSchema2 || m.Type == DockerList {
			return nil, fmt.Errorf("%w: subject in a %s manifest", ErrUnknown, m.Type)
		}
		d, ok, err := convert(doc.Subject.Digest)
		if err != nil {
			return nil, err
		}
		if ok {
			m.Subject = d
		} else {
			m.Foreign++
		}
	}
	return m, nil
}

func addDesc(descs *[]Descriptor, role Role, d v1.Descriptor) {
	if descs != nil {
		*descs = append(*descs, Descriptor{Role: role, Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, URLs: d.URLs})
	}
}

func (m *Manifest) addBlob(dg godigest.Digest, size int64) error {
	d, ok, err := convert(dg)
	if err != nil {
		return err
	}
	if !ok {
		m.Foreign++
		return nil
	}
	m.Blobs = append(m.Blobs, d)
	m.Sizes = append(m.Sizes, max(size, -1))
	return nil
}

// convert turns a descriptor digest into a Digest; ok is false for a valid digest of
// another algorithm.
func convert(dg godigest.Digest) (layout.Digest, bool, error) {
	if err := dg.Validate(); err != nil {
		return layout.Digest{}, false, fmt.Errorf("bad digest %q in manifest: %v", truncate(string(dg)), err)
	}
	if dg.Algorithm() != godigest.SHA256 {
		return layout.Digest{}, false, nil
	}
	d, err := layout.ParseHex(dg.Encoded())
	return d, err == nil, err
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// References lists every digest m keeps alive: blobs, children and nothing else
// (a subject is not kept alive by its referrers).
func (m *Manifest) References() []layout.Digest {
	refs := make([]layout.Digest, 0, len(m.Blobs)+len(m.Children))
	refs = append(refs, m.Blobs...)
	return append(refs, m.Children...)
}
