// Package check tells, without changing anything, whether the tags of a registry's
// storage pull whole: each tag resolves to a manifest whose graph (index children,
// config, layers) is there as the registry serves it. The rules are upstream's
// (distribution v3, registry/storage): a tag is read from its current link
// (tagstore.go); a manifest, by tag or as an index child, only through the
// repository's revision link, then from its blob (manifeststore.go, linkedblobstore.go);
// a config or layer blob only through the repository's _layers link
// (linkedBlobStatter with blobLinkPath); and a client checks each blob's size and
// digest against the descriptor that named it.
package check

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sort"
	"strings"

	godigest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Selector names a repository (Tag empty: all its tags) or one tag.
type Selector = layout.Selector

// Options says what to check.
type Options struct {
	// Select limits the check to these repositories and tags; empty: every tag.
	Select []Selector
	// Jobs bounds the concurrent storage operations.
	Jobs int
	// VerifyDigests re-hashes every blob the checked images reference.
	VerifyDigests bool
	// Progress, when set, is told how far the check has got: the scan, the sizes,
	// the digest verification (blobs and bytes).
	Progress *progress.Tracker
}

// ErrUnknown reports a selected repository or tag the storage does not hold.
var ErrUnknown = errors.New("not in the storage")

// Kind is what is wrong with one part of an image.
type Kind string

const (
	NoTagLink           Kind = "no-tag-link"           // the tag has no current link
	BadTagLink          Kind = "bad-tag-link"          // its current link is no digest
	MissingRevisionLink Kind = "missing-revision-link" // the repository does not link the manifest
	MissingLayerLink    Kind = "missing-layer-link"    // the repository does not link the config or layer
	BadLink             Kind = "bad-link"              // a revision or layer link names another digest, or none
	MissingBlob         Kind = "missing-blob"          // the blob's data is not stored
	WrongSize           Kind = "wrong-size"            // the blob's size is not its descriptor's (truncated)
	WrongDigest         Kind = "wrong-digest"          // the blob's content does not hash to its digest
	UnreadableManifest  Kind = "unreadable-manifest"   // the registry cannot serve it as a manifest
)

// Issue is one thing that makes an image's pull fail.
type Issue struct {
	Kind Kind `json:"kind"`
	// Digest is the part's: the manifest, config or layer.
	Digest string `json:"digest,omitempty"`
	// Role is the part's: "manifest" (the tag's), "index child", "config", "layer".
	Role string `json:"role,omitempty"`
	// Of is the manifest whose descriptor names the part.
	Of     string `json:"of,omitempty"`
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (i Issue) String() string {
	var s string
	switch i.Kind {
	case NoTagLink:
		s = "tag without current link"
	case BadTagLink:
		s = "unreadable tag link"
	case MissingRevisionLink:
		s = "missing revision link " + i.Digest
	case MissingLayerLink:
		s = "missing layer link " + i.Digest
	case BadLink:
		s = "bad link " + i.Digest
	case MissingBlob:
		s = "missing blob " + i.Digest
	case WrongSize:
		s = "wrong-size blob " + i.Digest
	case WrongDigest:
		s = "corrupt blob " + i.Digest
	case UnreadableManifest:
		s = "unreadable manifest " + i.Digest
	default:
		s = string(i.Kind) + " " + i.Digest
	}
	if i.Of != "" {
		s += " (" + i.Role + " of manifest " + i.Of + ")"
	} else if i.Role != "" {
		s += " (" + i.Role + ")"
	}
	if i.Detail != "" {
		s += ": " + i.Detail
	}
	return s
}

// Image is one broken tag and why its pull fails.
type Image struct {
	Repo string `json:"repository"`
	Tag  string `json:"tag"`
	// Digest is the manifest the tag resolves to; empty when it resolves to none.
	Digest string  `json:"digest,omitempty"`
	Issues []Issue `json:"issues"`
}

func (im Image) String() string { return im.Repo + ":" + im.Tag }

// Result is what a check found.
type Result struct {
	Storage string `json:"storage"`
	// Images counts the tags checked; Manifests, Blobs and Bytes what they reference
	// (each once, manifests among the blobs).
	Images    int   `json:"images"`
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	// Verified counts the blobs re-hashed (--verify-digests), and their bytes.
	Verified      int     `json:"verified_blobs"`
	VerifiedBytes int64   `json:"verified_bytes"`
	Broken        []Image `json:"broken"`
	// Warnings name what was not checked, or what only some registries refuse.
	Warnings []string `json:"warnings"`
}

// node is a manifest as the check read it.
type node struct {
	m     *manifest.Manifest
	descs []manifest.Descriptor
	err   error
}

// Run checks the selected tags of the storage behind b. Its error is one that makes
// the answer unreliable (the storage cannot be listed or read) or a selection the
// storage does not hold (ErrUnknown); what is broken is in the Result.
func Run(ctx context.Context, b storage.Backend, opts Options) (*Result, error) {
	jobs := max(opts.Jobs, 1)
	inv, err := inventory.ScanTracked(ctx, b, jobs, opts.Progress)
	if err != nil {
		return nil, err
	}
	tags, err := selectTags(inv, opts.Select)
	if err != nil {
		return nil, err
	}
	nodes, err := readManifests(ctx, b, inv, tags, jobs)
	if err != nil {
		return nil, err
	}
	c := newChecker(inv, nodes)
	// Sizes first, from the listing where it told them: only the rest is stat'ed.
	st := opts.Progress.Begin("reading blob sizes", "blobs", -1)
	if err := inv.CompleteTracked(ctx, b, blobRefs(c.referenced()), jobs, st); err != nil {
		return nil, fmt.Errorf("reading blob sizes in %s: %w", b, err)
	}
	if opts.VerifyDigests {
		corrupt, err := verify(ctx, b, inv, c.referenced(), jobs, opts.Progress)
		if err != nil {
			return nil, err
		}
		c.corrupt = corrupt
	}
	res := c.evaluate(tags)
	res.Storage = b.String()
	if opts.VerifyDigests {
		res.Verified, res.VerifiedBytes = res.Blobs, res.Bytes
	}
	return res, nil
}

// tagRef is one tag to check.
type tagRef struct {
	repo *inventory.Repo
	tag  string
}

// selectTags lists the selected tags, sorted; a name the storage does not hold is
// an error, as for a cleaning.
func selectTags(inv *inventory.Inventory, sel []Selector) ([]tagRef, error) {
	var out []tagRef
	add := func(r *inventory.Repo, tag string) { out = append(out, tagRef{r, tag}) }
	if len(sel) == 0 {
		for _, r := range inv.Repos {
			for t := range r.Tags {
				add(r, t)
			}
		}
	}
	seen := map[string]bool{}
	var unknown []string
	for _, s := range sel {
		r := inv.Repos[s.Repo]
		switch {
		case r == nil:
			unknown = append(unknown, "repository "+s.Repo)
		case s.Tag == "":
			for t := range r.Tags {
				if !seen[s.Repo+":"+t] {
					seen[s.Repo+":"+t] = true
					add(r, t)
				}
			}
		case r.Tags[s.Tag] == nil:
			unknown = append(unknown, "tag "+s.String())
		case !seen[s.String()]:
			seen[s.String()] = true
			add(r, s.Tag)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(unknown, ", "), ErrUnknown)
	}
	sort.Slice(out, func(i, k int) bool {
		if out[i].repo.Name != out[k].repo.Name {
			return out[i].repo.Name < out[k].repo.Name
		}
		return out[i].tag < out[k].tag
	})
	return out, nil
}

// readManifests reads, once each, the manifests the tags resolve to and, level by
// level, the children of indexes, with their descriptors (the inventory keeps only
// the digests). A manifest whose blob is not stored is not read.
func readManifests(ctx context.Context, b storage.Backend, inv *inventory.Inventory, tags []tagRef, jobs int) (map[inventory.ID]*node, error) {
	nodes := map[inventory.ID]*node{}
	var todo []inventory.ID
	want := func(id inventory.ID) {
		if _, ok := nodes[id]; !ok && inv.IsBlob(id) {
			nodes[id] = nil
			todo = append(todo, id)
		}
	}
	for _, t := range tags {
		if tg := t.repo.Tags[t.tag]; tg.HasCurrent {
			want(tg.Current)
		}
	}
	for len(todo) > 0 {
		batch := todo
		todo = nil
		read := make([]*node, len(batch))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(jobs)
		for i, id := range batch {
			g.Go(func() error {
				n := &node{}
				read[i] = n
				if size := inv.Blobs[id].Size; size > layout.MaxManifestSize {
					n.err = &storage.TooLargeError{Path: layout.BlobData(inv.Blobs[id].Digest), Limit: layout.MaxManifestSize}
					return nil
				}
				data, err := b.ReadFile(gctx, layout.BlobData(inv.Blobs[id].Digest), layout.MaxManifestSize)
				switch {
				case err != nil && !storage.IsNotExist(err) && !storage.IsTooLarge(err):
					return fmt.Errorf("reading manifest %s: %w", inv.Blobs[id].Digest, err)
				case err != nil:
					n.err = err
				default:
					n.m, n.descs, n.err = manifest.ParseDescriptors(data)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for i, id := range batch {
			nodes[id] = read[i]
			for _, d := range read[i].descs {
				if d.Role != manifest.RoleChild {
					continue
				}
				if cid, ok := lookup(inv, d.Digest); ok {
					want(cid)
				}
			}
		}
	}
	return nodes, nil
}

// lookup finds a sha256 digest of a descriptor in the inventory.
func lookup(inv *inventory.Inventory, dg godigest.Digest) (inventory.ID, bool) {
	if dg.Algorithm() != godigest.SHA256 {
		return 0, false
	}
	d, err := layout.ParseHex(dg.Encoded())
	if err != nil {
		return 0, false
	}
	return inv.Lookup(d)
}

func blobRefs(ids []inventory.ID) iter.Seq[inventory.Ref] {
	return func(yield func(inventory.Ref) bool) {
		for _, id := range ids {
			if !yield(inventory.Ref{Kind: layout.KindBlobData, ID: id}) {
				return
			}
		}
	}
}
