package check

import (
	"fmt"
	"slices"
	"sort"

	godigest "github.com/opencontainers/go-digest"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// verdict is what re-hashing a blob found wrong.
type verdict struct {
	gone   bool   // deleted since the scan
	actual string // the digest its content has
}

// checker decides, from what was read, which tags pull whole. It does no I/O.
type checker struct {
	inv   *inventory.Inventory
	nodes map[inventory.ID]*node
	// badLinks are the revision and layer links the scan found garbled, naming
	// another digest, or missing from their directory: the registry follows none.
	badLinks map[string]string
	corrupt  map[inventory.ID]verdict

	memo     map[memoKey][]Issue
	warnings map[string]bool
}

// memoKey is a manifest as reached: its issues name the parent that names it.
type memoKey struct {
	repo *inventory.Repo
	id   inventory.ID
	of   string
}

func newChecker(inv *inventory.Inventory, nodes map[inventory.ID]*node) *checker {
	c := &checker{inv: inv, nodes: nodes, badLinks: map[string]string{}, memo: map[memoKey][]Issue{}, warnings: map[string]bool{}}
	for _, p := range inv.Problems {
		if p.Kind == inventory.GarbledLink || p.Kind == inventory.MissingLink {
			c.badLinks[p.Path] = p.Detail
		}
	}
	return c
}

// referenced lists, sorted, every stored blob the read manifests reference: the
// manifests themselves, their configs and layers.
func (c *checker) referenced() []inventory.ID {
	seen := c.inv.NewIDSet()
	var ids []inventory.ID
	add := func(id inventory.ID) {
		if c.inv.IsBlob(id) && !seen.Has(id) {
			seen.Add(id)
			ids = append(ids, id)
		}
	}
	for id, n := range c.nodes {
		add(id)
		if n == nil {
			continue
		}
		for _, d := range n.descs {
			if d.Role == manifest.RoleChild {
				continue
			}
			if id, ok := lookup(c.inv, d.Digest); ok {
				add(id)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

func (c *checker) warn(format string, args ...any) { c.warnings[fmt.Sprintf(format, args...)] = true }

// evaluate checks every tag; sizes must be known by now (Complete).
func (c *checker) evaluate(tags []tagRef) *Result {
	res := &Result{Images: len(tags), Broken: []Image{}, Warnings: []string{}}
	for _, t := range tags {
		im := c.tag(t.repo, t.tag)
		if len(im.Issues) > 0 {
			res.Broken = append(res.Broken, im)
		}
	}
	if n := len(c.inv.Blind); n > 0 {
		// The scan does not follow them; the registry's driver might.
		c.warn("%d entries the scan cannot read (symbolic links, bad names), e.g. %s: what lies behind them was not seen", n, c.inv.Blind[0])
	}
	ids := c.referenced()
	res.Manifests, res.Blobs = len(c.nodes), len(ids)
	for _, id := range ids {
		res.Bytes += max(c.inv.Blobs[id].Size, 0)
	}
	for w := range c.warnings {
		res.Warnings = append(res.Warnings, w)
	}
	sort.Strings(res.Warnings)
	return res
}

// tag checks what a pull of repo:tag fetches.
func (c *checker) tag(r *inventory.Repo, name string) Image {
	im := Image{Repo: r.Name, Tag: name}
	t := r.Tags[name]
	path := layout.TagCurrentLink(r.Name, name)
	switch {
	case t.CurrentBad:
		// Also a digest of another algorithm: sha256 is what registries write.
		im.Issues = []Issue{{Kind: BadTagLink, Path: path, Detail: "its content is no sha256 digest"}}
	case !t.HasCurrent:
		im.Issues = []Issue{{Kind: NoTagLink, Path: path}}
	default:
		im.Digest = c.inv.Digest(t.Current).String()
		im.Issues = c.manifest(r, t.Current, nil, "", nil)
	}
	im.Issues = dedupe(im.Issues)
	return im
}

// manifest checks manifest id of repository r, reached from the tag (desc nil) or
// as a child of manifest of; stack guards against an index that names itself.
func (c *checker) manifest(r *inventory.Repo, id inventory.ID, desc *manifest.Descriptor, of string, stack []inventory.ID) []Issue {
	d := c.inv.Digest(id)
	role := "manifest"
	if desc != nil {
		role = manifest.RoleChild.String()
	}
	var issues []Issue
	if desc != nil && c.inv.IsBlob(id) {
		if size := c.inv.Blobs[id].Size; size >= 0 && desc.Size != size {
			issues = append(issues, Issue{Kind: WrongSize, Digest: d.String(), Role: role, Of: of, Path: layout.BlobData(d),
				Detail: fmt.Sprintf("%d bytes stored, the descriptor says %d", size, desc.Size)})
		}
	}
	if slices.Contains(stack, id) {
		return issues
	}
	key := memoKey{r, id, of}
	own, done := c.memo[key]
	if !done {
		own = c.manifestOwn(r, id, role, of, append(stack, id))
		c.memo[key] = own
	}
	return append(issues, own...)
}

// manifestOwn is what a manifest's pull needs whatever names it: its revision link,
// its blob, and what it references.
func (c *checker) manifestOwn(r *inventory.Repo, id inventory.ID, role, of string, stack []inventory.ID) []Issue {
	d := c.inv.Digest(id)
	ds := d.String()
	var issues []Issue
	link := layout.RevisionLink(r.Name, d)
	if detail, bad := c.badLinks[link]; bad && r.Revisions.Has(id) {
		issues = append(issues, Issue{Kind: BadLink, Digest: ds, Role: role, Of: of, Path: link, Detail: detail})
	} else if !r.Revisions.Has(id) {
		issues = append(issues, Issue{Kind: MissingRevisionLink, Digest: ds, Role: role, Of: of, Path: link})
	}
	n := c.nodes[id]
	if !c.inv.IsBlob(id) || n == nil || storage.IsNotExist(n.err) {
		return append(issues, Issue{Kind: MissingBlob, Digest: ds, Role: role, Of: of, Path: layout.BlobData(d)})
	}
	if v, ok := c.corrupt[id]; ok {
		issues = append(issues, c.corruptIssue(v, d, role, of))
	}
	if storage.IsTooLarge(n.err) {
		c.warn("%s@%s: manifest larger than %d bytes: not read, its references not checked", r.Name, ds, layout.MaxManifestSize)
		return issues
	}
	if n.err != nil {
		// The registry's GET parses it too, and refuses what it cannot (manifeststore.go).
		return append(issues, Issue{Kind: UnreadableManifest, Digest: ds, Role: role, Of: of, Path: layout.BlobData(d), Detail: n.err.Error()})
	}
	if n.m.Type == manifest.DockerSchema1 {
		c.warn("%s@%s: schema1 manifest: registry 2.x serves it, v3 refuses it (its blobs were checked)", r.Name, ds)
	}
	for i := range n.descs {
		desc := &n.descs[i]
		if desc.Digest.Algorithm() != godigest.SHA256 {
			c.warn("%s@%s: %s %s not checked: only sha256 content is", r.Name, ds, desc.Role, desc.Digest)
			continue
		}
		cid, known := lookup(c.inv, desc.Digest)
		if desc.Role == manifest.RoleChild {
			if !known {
				// Neither stored nor linked anywhere: the child cannot be fetched.
				cp, _ := layout.ParseHex(desc.Digest.Encoded())
				issues = append(issues,
					Issue{Kind: MissingRevisionLink, Digest: desc.Digest.String(), Role: desc.Role.String(), Of: ds, Path: layout.RevisionLink(r.Name, cp)},
					Issue{Kind: MissingBlob, Digest: desc.Digest.String(), Role: desc.Role.String(), Of: ds, Path: layout.BlobData(cp)})
				continue
			}
			issues = append(issues, c.manifest(r, cid, desc, ds, stack)...)
			continue
		}
		issues = append(issues, c.blob(r, cid, known, desc, ds)...)
	}
	return issues
}

// blob checks a config or layer: stored, of the descriptor's size (and digest, when
// verified), and linked into the repository.
func (c *checker) blob(r *inventory.Repo, id inventory.ID, known bool, desc *manifest.Descriptor, of string) []Issue {
	bd, _ := layout.ParseHex(desc.Digest.Encoded())
	ds, role := desc.Digest.String(), desc.Role.String()
	stored := known && c.inv.IsBlob(id)
	if len(desc.URLs) > 0 && !stored {
		// A non-distributable layer: clients fetch it from its URLs.
		return nil
	}
	var issues []Issue
	if !stored {
		issues = append(issues, Issue{Kind: MissingBlob, Digest: ds, Role: role, Of: of, Path: layout.BlobData(bd)})
	} else {
		if size := c.inv.Blobs[id].Size; size >= 0 && desc.Size >= 0 && size != desc.Size {
			issues = append(issues, Issue{Kind: WrongSize, Digest: ds, Role: role, Of: of, Path: layout.BlobData(bd),
				Detail: fmt.Sprintf("%d bytes stored, the descriptor says %d", size, desc.Size)})
		}
		if v, ok := c.corrupt[id]; ok {
			issues = append(issues, c.corruptIssue(v, bd, role, of))
		}
	}
	if len(desc.URLs) > 0 {
		return issues
	}
	link := layout.LayerLink(r.Name, bd)
	linked := known && r.Layers.Has(id)
	if detail, bad := c.badLinks[link]; bad && linked {
		issues = append(issues, Issue{Kind: BadLink, Digest: ds, Role: role, Of: of, Path: link, Detail: detail})
	} else if !linked {
		issues = append(issues, Issue{Kind: MissingLayerLink, Digest: ds, Role: role, Of: of, Path: link})
	}
	return issues
}

func (c *checker) corruptIssue(v verdict, d layout.Digest, role, of string) Issue {
	if v.gone {
		return Issue{Kind: MissingBlob, Digest: d.String(), Role: role, Of: of, Path: layout.BlobData(d), Detail: "deleted while checked"}
	}
	return Issue{Kind: WrongDigest, Digest: d.String(), Role: role, Of: of, Path: layout.BlobData(d), Detail: "its content hashes to " + v.actual}
}

// dedupe drops repeated issues (a layer two children of an index share), keeping
// the first's order.
func dedupe(issues []Issue) []Issue {
	seen := map[Issue]bool{}
	out := issues[:0]
	for _, i := range issues {
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}
