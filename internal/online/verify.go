package online

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"golang.org/x/sync/errgroup"
)

type repoDigest struct {
	repo string
	d    layout.Digest
}

type repoTag struct{ repo, tag string }

// contents is what a quarantine holds, by kind.
type contents struct {
	blobs     map[layout.Digest]bool
	revisions map[repoDigest]bool
	layers    map[repoDigest]bool
	tags      map[repoTag]bool
}

func newContents(files []storage.File) *contents {
	c := &contents{blobs: map[layout.Digest]bool{}, revisions: map[repoDigest]bool{},
		layers: map[repoDigest]bool{}, tags: map[repoTag]bool{}}
	for _, f := range files {
		info := layout.Classify(f.Path)
		switch info.Kind {
		case layout.KindBlobData:
			c.blobs[info.Digest] = true
		case layout.KindRevisionLink:
			c.revisions[repoDigest{info.Repo, info.Digest}] = true
		case layout.KindLayerLink:
			c.layers[repoDigest{info.Repo, info.Digest}] = true
		case layout.KindTagCurrentLink:
			c.tags[repoTag{info.Repo, info.Tag}] = true
		}
	}
	return c
}

// live is what the registry serves now, as far as a verification needs it.
type live struct {
	// revisions and tags (their current links) with their times; a zero time is
	// not known yet.
	revisions map[repoDigest]time.Time
	tags      map[repoTag]time.Time
	// layers are the live layer links that name a quarantined blob or stand where a
	// quarantined layer link stood.
	layers map[repoDigest]bool
}

// Item is one file to put back, and why.
type Item struct {
	Kind   layout.Kind
	Repo   string
	Tag    string
	Digest layout.Digest
	Why    string
	// path is set for items that are whole files of the quarantine (a blind
	// verification's), whatever their kind.
	path string
}

// Path is the item's storage path.
func (it Item) Path() string {
	if it.path != "" {
		return it.path
	}
	switch it.Kind {
	case layout.KindBlobData:
		return layout.BlobData(it.Digest)
	case layout.KindRevisionLink:
		return layout.RevisionLink(it.Repo, it.Digest)
	case layout.KindLayerLink:
		return layout.LayerLink(it.Repo, it.Digest)
	case layout.KindTagCurrentLink:
		return layout.TagCurrentLink(it.Repo, it.Tag)
	}
	return ""
}

// Subject names the item for humans, as deletions are named.
func (it Item) Subject() string {
	switch it.Kind {
	case layout.KindBlobData:
		return it.Digest.String()
	case layout.KindTagCurrentLink:
		return it.Repo + ":" + it.Tag
	}
	return it.Repo + "@" + it.Digest.String()
}

// KindName is the item's kind as the plan names deletions.
func (it Item) KindName() string {
	switch it.Kind {
	case layout.KindBlobData:
		return "blob"
	case layout.KindRevisionLink:
		return "revision"
	case layout.KindLayerLink:
		return "layer-link"
	case layout.KindTagCurrentLink:
		return "tag"
	}
	return "file"
}

// needed decides what of a quarantine the live registry needs back: everything a
// manifest needs for a pull (its revision link, its blob, its config and layers with
// their layer links, its children, recursively), for every manifest the registry
// may have acknowledged since the run began: revisions written since, revisions and
// tags written again after the run moved them, manifests whose blob the run moved,
// tags that point somewhere new. A live layer link to a quarantined blob brings the
// blob back too: a push is under way. target reads a tag's current link; read
// reads a manifest (live or from the quarantine). A tag the run moved although a
// push wrote it after the scan (written; movedTarget reads it in the quarantine)
// comes back too, unless the tag was written again since. A manifest or tag that
// cannot be read or understood makes the answer ErrBlind: the caller puts
// everything back.
func needed(q *contents, lv *live, since time.Time, written map[repoTag]bool,
	target, movedTarget func(repoTag) (layout.Digest, error),
	read func(layout.Digest) (*manifest.Manifest, error)) ([]Item, error) {

	var out []Item
	seen := map[Item]bool{}
	add := func(it Item) {
		key := it
		key.Why = ""
		if !seen[key] {
			seen[key] = true
			out = append(out, it)
		}
	}
	visited := map[repoDigest]bool{}
	var visit func(rd repoDigest, why string) error
	visit = func(rd repoDigest, why string) error {
		if visited[rd] {
			return nil
		}
		visited[rd] = true
		if _, ok := lv.revisions[rd]; !ok && q.revisions[rd] {
			add(Item{Kind: layout.KindRevisionLink, Repo: rd.repo, Digest: rd.d, Why: why})
		}
		if q.blobs[rd.d] {
			add(Item{Kind: layout.KindBlobData, Digest: rd.d, Why: why})
		}
		m, err := read(rd.d)
		if storage.IsNotExist(err) {
			return nil // nothing of it anywhere: a push that failed, or damage the scan reports
		}
		if err != nil {
			return fmt.Errorf("%w: manifest %s of %s: %v", ErrBlind, rd.d, rd.repo, err)
		}
		for _, b := range m.Blobs {
			if q.blobs[b] {
				add(Item{Kind: layout.KindBlobData, Digest: b, Why: why})
			}
			if l := (repoDigest{rd.repo, b}); q.layers[l] && !lv.layers[l] {
				add(Item{Kind: layout.KindLayerLink, Repo: rd.repo, Digest: b, Why: why})
			}
		}
		for _, c := range m.Children {
			if err := visit(repoDigest{rd.repo, c}, why); err != nil {
				return err
			}
		}
		return nil
	}

	// Roots in a fixed order, so that the same state gives the same answer.
	revs := sortedKeys(lv.revisions, func(a, b repoDigest) int { return cmpRepoDigest(a, b) })
	for _, rd := range revs {
		t := lv.revisions[rd]
		var why string
		switch {
		case t.IsZero() || !t.Before(since):
			why = "needed by " + rd.repo + "@" + rd.d.String() + ", pushed during the run"
		case q.revisions[rd]:
			why = "needed by " + rd.repo + "@" + rd.d.String() + ", pushed again during the run"
		case q.blobs[rd.d]:
			why = "needed by " + rd.repo + "@" + rd.d.String() + ", whose manifest the run had moved"
		default:
			continue
		}
		if err := visit(rd, why); err != nil {
			return nil, err
		}
	}
	cmpTag := func(a, b repoTag) int {
		if a.repo != b.repo {
			return cmpString(a.repo, b.repo)
		}
		return cmpString(a.tag, b.tag)
	}
	for _, rt := range sortedKeys(written, cmpTag) {
		if _, ok := lv.tags[rt]; ok {
			continue // written again after the move: the live tag stands (below)
		}
		d, err := movedTarget(rt)
		if storage.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: tag %s:%s moved into the quarantine: %v", ErrBlind, rt.repo, rt.tag, err)
		}
		why := "tag " + rt.repo + ":" + rt.tag + " written during the run, after the scan"
		add(Item{Kind: layout.KindTagCurrentLink, Repo: rt.repo, Tag: rt.tag, Why: why})
		if err := visit(repoDigest{rt.repo, d}, "needed by "+rt.repo+":"+rt.tag+", written during the run, after the scan"); err != nil {
			return nil, err
		}
	}
	tags := sortedKeys(lv.tags, cmpTag)
	for _, rt := range tags {
		t := lv.tags[rt]
		if !t.IsZero() && t.Before(since) && !q.tags[rt] {
			continue
		}
		d, err := target(rt)
		if storage.IsNotExist(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("%w: tag %s:%s: %v", ErrBlind, rt.repo, rt.tag, err)
		}
		if err := visit(repoDigest{rt.repo, d}, "needed by "+rt.repo+":"+rt.tag+", pushed during the run"); err != nil {
			return nil, err
		}
	}
	layers := sortedKeys(lv.layers, func(a, b repoDigest) int { return cmpRepoDigest(a, b) })
	for _, l := range layers {
		if q.blobs[l.d] {
			add(Item{Kind: layout.KindBlobData, Digest: l.d, Why: "linked into " + l.repo + " during the run: a push is under way"})
		}
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpRepoDigest(a, b repoDigest) int {
	if a.repo != b.repo {
		return cmpString(a.repo, b.repo)
	}
	return slices.Compare(a.d[:], b.d[:])
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

// scanLive lists what the registry serves now: every revision and tag, and the layer
// links that matter to q, with their times where the listing gives them (see
// readTimes). st counts the files listed.
func scanLive(ctx context.Context, b storage.Backend, q *contents, st *progress.Stage) (*live, error) {
	lv := &live{revisions: map[repoDigest]time.Time{}, tags: map[repoTag]time.Time{}, layers: map[repoDigest]bool{}}
	var mu sync.Mutex
	var listed int64 // files not yet added to st: counted under mu, added in batches
	const batch = 1024
	visit := func(f storage.File) error {
		if f.BadName || f.Irregular || f.EmptyDir {
			return nil
		}
		info := layout.Classify(f.Path)
		mu.Lock()
		defer mu.Unlock()
		if listed++; listed == batch {
			st.Add(listed)
			listed = 0
		}
		switch info.Kind {
		case layout.KindRevisionLink:
			lv.revisions[repoDigest{info.Repo, info.Digest}] = f.ModTime
		case layout.KindTagCurrentLink:
			lv.tags[repoTag{info.Repo, info.Tag}] = f.ModTime
		case layout.KindLayerLink:
			if rd := (repoDigest{info.Repo, info.Digest}); q.blobs[info.Digest] || q.layers[rd] {
				lv.layers[rd] = true
			}
		}
		return nil
	}
	var err error
	if lw, ok := b.(storage.LeafWalker); ok {
		err = lw.WalkLeaves(ctx, layout.RepositoriesDir, layout.LeafFile, visit)
	} else {
		err = b.Walk(ctx, layout.RepositoriesDir, visit)
	}
	st.Add(listed)
	if err != nil {
		return nil, fmt.Errorf("listing the repositories: %w", err)
	}
	return lv, nil
}

// readTimes completes lv's times, with which the verification compares since.
// st counts the links stat'ed.
func (lv *live) readTimes(ctx context.Context, b storage.Backend, since time.Time, jobs int, st *progress.Stage) error {
	// A filesystem walk gives no times: stat what decides. A new revision is a new
	// directory, which changes its parent's time: a repository whose revisions
	// directory is older than since has no new revision, and one stat tells. Tags are
	// rewritten in place, so each current link is stat'ed. A revision link gone
	// meanwhile counts as new (being written), a tag gone as deleted.
	repos := map[string]bool{}
	for rd, t := range lv.revisions {
		if t.IsZero() {
			repos[rd.repo] = true
		}
	}
	repoList := make([]string, 0, len(repos))
	dirs := make([]string, 0, len(repos))
	for repo := range repos {
		repoList = append(repoList, repo)
		dirs = append(dirs, layout.RevisionsDir(repo)+"/sha256")
	}
	dirTimes, _, err := statAll(ctx, b, dirs, jobs, st)
	if err != nil {
		return err
	}
	quiet := map[string]time.Time{}
	for i, repo := range repoList {
		if !dirTimes[i].IsZero() && dirTimes[i].Before(since) {
			quiet[repo] = dirTimes[i]
		}
	}
	var revs []repoDigest
	var paths []string
	for rd, t := range lv.revisions {
		switch {
		case !t.IsZero():
		case !quiet[rd.repo].IsZero():
			lv.revisions[rd] = quiet[rd.repo]
		default:
			revs = append(revs, rd)
			paths = append(paths, layout.RevisionLink(rd.repo, rd.d))
		}
	}
	var tags []repoTag
	for rt, t := range lv.tags {
		if t.IsZero() {
			tags = append(tags, rt)
			paths = append(paths, layout.TagCurrentLink(rt.repo, rt.tag))
		}
	}
	times, gone, err := statAll(ctx, b, paths, jobs, st)
	if err != nil {
		return err
	}
	for i, rd := range revs {
		lv.revisions[rd] = times[i] // zero when gone: counts as new
	}
	for i, rt := range tags {
		if j := len(revs) + i; gone[j] {
			delete(lv.tags, rt)
		} else {
			lv.tags[rt] = times[j]
		}
	}
	return nil
}

// statAll stats paths in parallel: their times, and which are gone. They are added
// to st's total, and each counted once stat'ed.
func statAll(ctx context.Context, b storage.Backend, paths []string, jobs int, st *progress.Stage) ([]time.Time, []bool, error) {
	st.AddTotal(int64(len(paths)))
	times := make([]time.Time, len(paths))
	gone := make([]bool, len(paths))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for i, p := range paths {
		g.Go(func() error {
			f, err := b.Stat(gctx, p)
			switch {
			case storage.IsNotExist(err):
				gone[i] = true
			case err != nil:
				return err
			default:
				times[i] = f.ModTime
			}
			st.Add(1) // a stat each: the count costs nothing beside it
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, fmt.Errorf("reading the times of links: %w", err)
	}
	return times, gone, nil
}
