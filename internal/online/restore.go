package online

import (
	"context"
	"fmt"
	"strings"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Selector names what to restore from a trash: a repository, or one tag of it.
type Selector = layout.Selector

// RestorePlan is what a restore puts back.
type RestorePlan struct {
	Items []Item
	// Kept are tags pushed again since the run deleted them: their current link is
	// not overwritten.
	Kept []Item
	// Missing are selectors the trash holds nothing of.
	Missing []Selector
}

// PlanRestore decides what of q comes back: everything, or what the selectors name
// with all it needs to pull (manifests, index children, referrers and signature
// tags of the manifests it brings back, blobs and layer links). q must be listed.
// tr's stage "planning the restore" counts the files taken, of all q's for a whole
// restore (their total not known for a part).
func PlanRestore(ctx context.Context, b storage.Backend, q *Quarantine, sel []Selector, tr *progress.Tracker) (RestorePlan, error) {
	var plan RestorePlan
	total := int64(-1)
	if len(sel) == 0 {
		total = int64(len(q.Files))
	}
	st := tr.Begin("planning the restore", "files", total)
	defer st.End()
	var files []trashFile
	for _, f := range q.Files {
		info := layout.Classify(f.Path)
		files = append(files, trashFile{Item{Kind: info.Kind, Repo: info.Repo, Tag: info.Tag, Digest: info.Digest, path: f.Path}, info})
	}
	c := newContents(q.Files)
	seen := map[string]bool{}
	add := func(it Item, why string) error {
		if seen[it.Path()] {
			return nil
		}
		seen[it.Path()] = true
		st.Add(1) // a file each, where a tag costs a stat
		it.Why = why
		if it.Kind == layout.KindTagCurrentLink {
			_, err := b.Stat(ctx, layout.TagCurrentLink(it.Repo, it.Tag))
			switch {
			case err == nil:
				it.Why = "pushed again since the run: kept as it is"
				plan.Kept = append(plan.Kept, it)
				return nil
			case !storage.IsNotExist(err):
				return err
			}
		}
		plan.Items = append(plan.Items, it)
		return nil
	}
	read := func(d layout.Digest) (*manifest.Manifest, error) {
		data, err := b.ReadFile(ctx, layout.BlobData(d), layout.MaxManifestSize)
		if storage.IsNotExist(err) {
			data, err = b.ReadFile(ctx, layout.Quarantined(q.Run, layout.BlobData(d)), layout.MaxManifestSize)
		}
		if err != nil {
			return nil, err
		}
		return manifest.Parse(data)
	}
	if len(sel) == 0 {
		for _, f := range files {
			if err := add(f.item, "restored with the whole run"); err != nil {
				return plan, err
			}
		}
		return plan, nil
	}

	visited := map[repoDigest]bool{}
	var needs func(rd repoDigest, why string) error
	needs = func(rd repoDigest, why string) error {
		if visited[rd] {
			return nil
		}
		visited[rd] = true
		if c.revisions[rd] {
			if err := add(Item{Kind: layout.KindRevisionLink, Repo: rd.repo, Digest: rd.d}, why); err != nil {
				return err
			}
		}
		if c.blobs[rd.d] {
			if err := add(Item{Kind: layout.KindBlobData, Digest: rd.d}, why); err != nil {
				return err
			}
		}
		m, err := read(rd.d)
		if storage.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("manifest %s of %s cannot be read (%v): restore the whole run", rd.d, rd.repo, err)
		}
		for _, bl := range m.Blobs {
			if c.blobs[bl] {
				if err := add(Item{Kind: layout.KindBlobData, Digest: bl}, why); err != nil {
					return err
				}
			}
			if c.layers[repoDigest{rd.repo, bl}] {
				if err := add(Item{Kind: layout.KindLayerLink, Repo: rd.repo, Digest: bl}, why); err != nil {
					return err
				}
			}
		}
		for _, ch := range m.Children {
			if err := needs(repoDigest{rd.repo, ch}, why); err != nil {
				return err
			}
		}
		// What is about it comes back with it: signature tags and OCI referrers.
		for _, f := range files {
			if f.info.Repo != rd.repo {
				continue
			}
			switch {
			case f.info.Kind == layout.KindTagCurrentLink && strings.HasPrefix(f.info.Tag, "sha256-"+rd.d.Hex()):
				if err := tagNeeds(ctx, b, q, f.info.Repo, f.info.Tag, files2items(files, f.info.Repo, f.info.Tag), add, needs, "signature of "+rd.d.String()); err != nil {
					return err
				}
			case f.info.Kind == layout.KindRevisionLink:
				if rm, err := read(f.info.Digest); err == nil && rm.Subject == rd.d {
					if err := needs(repoDigest{rd.repo, f.info.Digest}, "referrer of "+rd.d.String()); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}

	for _, s := range sel {
		found := false
		for _, f := range files {
			if f.info.Repo != s.Repo || (s.Tag != "" && f.info.Tag != s.Tag) {
				continue
			}
			found = true
			if s.Tag != "" {
				continue // the tag is taken whole below
			}
			switch f.info.Kind {
			case layout.KindRevisionLink:
				if err := needs(repoDigest{f.info.Repo, f.info.Digest}, "restored with "+s.String()); err != nil {
					return plan, err
				}
			case layout.KindLayerLink, layout.KindTagIndexLink, layout.KindTagCurrentLink:
				if err := add(f.item, "restored with "+s.String()); err != nil {
					return plan, err
				}
			}
		}
		if s.Tag != "" && found {
			if err := tagNeeds(ctx, b, q, s.Repo, s.Tag, files2items(files, s.Repo, s.Tag), add, needs, "restored with "+s.String()); err != nil {
				return plan, err
			}
		}
		if s.Tag == "" && found {
			// The repository's tags point at manifests that may have gone with the run
			// as well (a revision of the trash was taken above; its blob may be there).
			for _, f := range files {
				if f.info.Repo == s.Repo && f.info.Kind == layout.KindTagCurrentLink {
					if err := tagNeeds(ctx, b, q, s.Repo, f.info.Tag, nil, add, needs, "restored with "+s.String()); err != nil {
						return plan, err
					}
				}
			}
		}
		if !found {
			plan.Missing = append(plan.Missing, s)
		}
	}
	return plan, nil
}

type trashFile struct {
	item Item
	info layout.PathInfo
}

// files2items are the trash's files of one tag.
func files2items(files []trashFile, repo, tag string) []Item {
	var out []Item
	for _, f := range files {
		if f.info.Repo == repo && f.info.Tag == tag {
			out = append(out, f.item)
		}
	}
	return out
}

// tagNeeds adds a tag's own files and what its target needs.
func tagNeeds(ctx context.Context, b storage.Backend, q *Quarantine, repo, tag string, own []Item,
	add func(Item, string) error, needs func(repoDigest, string) error, why string) error {
	for _, it := range own {
		if err := add(it, why); err != nil {
			return err
		}
	}
	data, err := b.ReadFile(ctx, layout.Quarantined(q.Run, layout.TagCurrentLink(repo, tag)), layout.MaxLinkSize)
	if storage.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	d, err := layout.ParseLink(data)
	if err != nil {
		return fmt.Errorf("tag %s:%s in the trash: %v", repo, tag, err)
	}
	return needs(repoDigest{repo, d}, why)
}

// PutBack moves items from q back into the registry's storage, blobs first, tags
// last; then removes q when nothing is left of it. Already there counts as done.
// tr counts the files put back (see restore).
func PutBack(ctx context.Context, b storage.Backend, q *Quarantine, items []Item, jobs int, tr *progress.Tracker) error {
	mover, ok := b.(storage.Mover)
	if !ok {
		return fmt.Errorf("%s: this storage cannot move files back from the trash", b)
	}
	if err := restore(ctx, mover, q.Run, items, tr); err != nil {
		return err
	}
	l, err := LoadRun(ctx, b, q.Run)
	if err != nil {
		return err
	}
	if len(l.Files) == 0 {
		return Purge(ctx, b, l, jobs, tr)
	}
	return nil
}
