package inventory

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"golang.org/x/sync/errgroup"
)

// ErrNotRegistry reports a storage root without docker/registry/v2.
var ErrNotRegistry = errors.New("not a registry storage root")

// Scan builds the inventory of the storage behind b, with at most jobs concurrent
// reads. Only I/O errors that make the picture unreliable (a listing that fails) are
// returned; everything odd about the content becomes a Problem.
func Scan(ctx context.Context, b storage.Backend, jobs int) (*Inventory, error) {
	return ScanTracked(ctx, b, jobs, nil)
}

// ScanTracked is Scan reporting its progress to tr (nil: none): a stage "scanning"
// that counts the entries found, read from the count the scan keeps anyway, then a
// stage "reading manifests".
func ScanTracked(ctx context.Context, b storage.Backend, jobs int, tr *progress.Tracker) (*Inventory, error) {
	ok, err := b.DirExists(ctx, layout.V2Dir)
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", b, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotRegistry, b, layout.V2Dir)
	}
	s := &scanner{b: b, build: NewBuilder(b.String())}
	tr.Begin("scanning", "entries", -1).Follow(&s.build.files)
	walk := b.Walk
	if lw, ok := b.(storage.LeafWalker); ok {
		// Blob and link directories hold one known file each: read it, don't list them.
		walk = func(ctx context.Context, dir string, fn func(storage.File) error) error {
			return lw.WalkLeaves(ctx, dir, layout.LeafFile, fn)
		}
	}
	// Blobs first (a few hundred directory listings): with the digest table known,
	// every link is recorded by ID as it is found.
	visit := func(f storage.File) error { return s.visit(ctx, f) }
	for _, dir := range []string{layout.BlobsDir, layout.RepositoriesDir} {
		if err := walk(ctx, dir, visit); err != nil {
			return nil, fmt.Errorf("scanning %s: %w", b, err)
		}
		if dir == layout.BlobsDir {
			s.build.BlobsDone()
		}
	}
	s.inv, s.build = s.build.Build(), nil
	if err := s.readManifests(ctx, jobs, tr); err != nil {
		return nil, err
	}
	s.checkConsistency()
	return s.inv, nil
}

type scanner struct {
	b     storage.Backend
	build *Builder   // while walking
	inv   *Inventory // then
}

func (s *scanner) problem(p Problem) {
	if s.build != nil {
		s.build.Problem(p)
	} else {
		s.inv.Problems = append(s.inv.Problems, p)
	}
}

// visit records one file. It runs on the walk's goroutines: reads happen first, then
// the record, under the lock of the repository (or blob stripe) it belongs to.
func (s *scanner) visit(ctx context.Context, f storage.File) error {
	if f.EmptyDir {
		s.emptyDir(f.Path)
		return nil
	}
	info := layout.Classify(f.Path)
	mt := ToTime(f.ModTime)
	bld := s.build
	if f.Irregular || f.BadName {
		s.unreadable(f, info)
		return nil
	}

	var (
		linkErr   error
		current   layout.Digest
		startedAt time.Time
	)
	switch info.Kind {
	case layout.KindLayerLink, layout.KindRevisionLink, layout.KindTagIndexLink:
		linkErr = s.verifyLink(ctx, f, info.Digest)
	case layout.KindTagCurrentLink:
		var data []byte
		data, linkErr = s.b.ReadFile(ctx, f.Path, layout.MaxLinkSize)
		if linkErr == nil {
			current, linkErr = layout.ParseLink(data)
		}
	case layout.KindUploadFile:
		if info.Rest == layout.StartedAt {
			data, err := s.b.ReadFile(ctx, f.Path, layout.MaxLinkSize)
			switch {
			case err == nil:
				startedAt, _ = time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
			case storage.IsNotExist(err):
				// Removed under the scan (the registry finishing the upload): taken as
				// it is now, gone. The rest of the upload, if still listed, is kept.
				return nil
			}
		}
	}

	if storage.IsNotExist(linkErr) && s.vanished(ctx, f.Path) {
		// Deleted under the scan (a live registry's API, an upload completing): taken
		// as it is now, gone.
		return nil
	}
	if storage.IsNotExist(linkErr) {
		// A leaf directory read without listing has no link file: what a crash between
		// a link's unlink and its directory's removal leaves (or a file vanished under
		// the scan). The registry sees no link there; the directory is recorded like a
		// link all the same, so that the plan removes it when nothing needs it.
		if info.Kind == layout.KindTagCurrentLink {
			bld.Tag(info.Repo, info.Tag, false, 0) // a tag without current link: its history is kept
			return nil
		}
		s.problem(Problem{Kind: MissingLink, Path: f.Path, Repo: info.Repo, Detail: "directory without its link file",
			Settle: Settle{Path: f.Path, Appears: true, DirGone: true}})
		linkErr = nil
		if info.Kind == layout.KindTagIndexLink {
			bld.Repo(info.Repo, func(r *Repo) { r.tag(info.Tag).IndexMissing++ })
		}
	} else {
		bld.File()
	}
	garbled := func() {
		if linkErr != nil {
			s.problem(Problem{Kind: GarbledLink, Path: f.Path, Repo: info.Repo, Detail: linkErr.Error()})
		}
	}
	switch info.Kind {
	case layout.KindBlobData:
		bld.Blob(info.Digest, f.Size, mt)
	case layout.KindLayerLink:
		bld.Layer(info.Repo, info.Digest, mt)
		garbled()
	case layout.KindRevisionLink:
		bld.Revision(info.Repo, info.Digest, mt)
		garbled()
	case layout.KindTagIndexLink:
		bld.TagIndex(info.Repo, info.Tag, info.Digest, mt)
		garbled()
	case layout.KindTagCurrentLink:
		if linkErr != nil {
			bld.Tag(info.Repo, info.Tag, true, mt)
			bld.Repo(info.Repo, func(r *Repo) { r.markOpaque("tag " + info.Tag + " has an unreadable current link") })
			s.problem(Problem{Kind: GarbledLink, Path: f.Path, Repo: info.Repo,
				Detail: linkErr.Error() + "; every manifest of the repository is kept"})
		} else {
			bld.TagCurrent(info.Repo, info.Tag, current, mt)
		}
	case layout.KindUploadFile:
		bld.Upload(info.Repo, info.UploadID, info.Rest, startedAt)
	case layout.KindTransient:
		if info.Repo != "" {
			bld.Repo(info.Repo, func(r *Repo) { r.Unknown++ })
		}
		s.problem(Problem{Kind: TransientFile, Path: f.Path, Repo: info.Repo, Detail: "left by an interrupted write",
			Settle: Settle{Path: f.Path}})
	case layout.KindOtherAlgorithm:
		if info.Repo != "" {
			bld.Repo(info.Repo, func(r *Repo) {
				r.Unknown++
				r.markOpaque("holds links of another digest algorithm")
			})
		} else {
			bld.OtherBlob()
		}
		s.problem(Problem{Kind: OtherAlgorithm, Path: f.Path, Repo: info.Repo, Detail: "only sha256 is cleaned; kept"})
	default:
		if info.Repo != "" {
			bld.Repo(info.Repo, func(r *Repo) { r.Unknown++ })
			s.problem(Problem{Kind: UnknownFile, Path: f.Path, Repo: info.Repo, Detail: "not part of the registry layout; left alone"})
		} else if _, inside, ok := layout.CutRepository(f.Path); ok && inside == "" {
			s.problem(Problem{Kind: UnknownFile, Path: f.Path, Detail: "not part of the registry layout; left alone"})
		} else if ok {
			// Inside something that looks like a repository but whose name is invalid: the
			// registry cannot serve it, yet its links may name blobs; keep them all.
			bld.Blind(f.Path)
			s.problem(Problem{Kind: InvalidRepoName, Path: f.Path,
				Detail: "inside a directory that is not a valid repository name; blob deletion is disabled"})
		} else {
			s.problem(Problem{Kind: UnknownFile, Path: f.Path, Detail: "not part of the registry layout; left alone"})
		}
	}
	return nil
}

// unreadable records an entry the scan cannot look into: a symbolic link, a device,
// a name that is no valid path. Where it could hide what keeps a blob, it disables
// blob deletion and keeps its repository whole; where it cannot (layout.CanHideReference),
// it is reported and otherwise ignored, so that one stray entry does not stop the
// cleaning of a whole registry.
// vanished reports whether the directory of a file that could not be read is gone
// too: the file was deleted while the scan ran, not left half-deleted by a crash.
func (s *scanner) vanished(ctx context.Context, file string) bool {
	ok, err := s.b.DirExists(ctx, path.Dir(file))
	return err == nil && !ok
}

func (s *scanner) unreadable(f storage.File, info layout.PathInfo) {
	bld := s.build
	bld.File()
	kind, what, shown := Irregular, "not a regular file", f.Path
	if f.BadName {
		kind, what, shown = BadName, "a name that is no valid path (not UTF-8)", escapePath(f.Path)
	}
	if !layout.CanHideReference(f.Path) {
		if repo, tag, ok := layout.IsTagIndexPath(f.Path); ok {
			// A tag's history protects manifests only when the tag has no current link:
			// checkConsistency decides once every tag is known.
			bld.Repo(repo, func(r *Repo) { r.tag(tag).IndexHidden = true })
		}
		if info.Repo != "" {
			bld.Repo(info.Repo, func(r *Repo) { r.Unknown++ })
		}
		s.problem(Problem{Kind: kind, Path: shown, Repo: info.Repo,
			Detail: what + ": never followed; where it lies it cannot hide a manifest reference, so it is ignored"})
		return
	}
	bld.Blind(shown)
	if info.Repo != "" {
		bld.Repo(info.Repo, func(r *Repo) {
			r.Unknown++
			r.markOpaque("holds an entry it cannot read: " + shown)
		})
	}
	s.problem(Problem{Kind: kind, Path: shown, Repo: info.Repo,
		Detail: what + ": never followed; blob deletion is disabled because content behind it is invisible"})
}

// escapePath shows a path whose bytes may not be UTF-8, escaped as in a Go string.
func escapePath(p string) string {
	q := strconv.Quote(p)
	return q[1 : len(q)-1]
}

// emptyDir records an empty directory below the repositories: the repository it
// belongs to (the path up to its first reserved "_" component, or the whole path)
// then exists in the inventory, and a plan removes it when it holds nothing else.
func (s *scanner) emptyDir(p string) {
	name, _, ok := layout.CutRepository(p)
	if !ok || layout.ValidRepository(name) != nil {
		return
	}
	if repo, tag, ok := layout.TagOfPath(p); ok {
		// Left of a tag by an interrupted deletion, and listed by the registry as a
		// tag all the same: recorded, it is a remnant the plan removes.
		s.build.Repo(repo, func(r *Repo) { r.tag(tag) })
		return
	}
	s.build.Repo(name, nil)
}

// verifyLink checks that a revision, layer or tag-index link says what its path says.
// An object store's listing ETag (the MD5 of a single-part object) confirms it without
// a read; otherwise the file is read.
func (s *scanner) verifyLink(ctx context.Context, f storage.File, d layout.Digest) error {
	want := d.String()
	if f.ETag != "" {
		sum := md5.Sum([]byte(want))
		if strings.EqualFold(f.ETag, hex.EncodeToString(sum[:])) {
			return nil
		}
	}
	data, err := s.b.ReadFile(ctx, f.Path, layout.MaxLinkSize)
	if err != nil {
		return err
	}
	got, err := layout.ParseLink(data)
	if err != nil {
		return err
	}
	if got != d {
		return fmt.Errorf("link names %s, its path %s", got, d)
	}
	return nil
}

// readManifests reads, once each, every manifest a repository links or a tag names,
// then the children of indexes until none is left unread.
func (s *scanner) readManifests(ctx context.Context, jobs int, tr *progress.Tracker) error {
	inv := s.inv
	var todo []ID
	seen := newIDSet(inv.NumBlobs())
	want := func(id ID) {
		if !seen.Has(id) {
			seen.Add(id)
			todo = append(todo, id)
		}
	}
	for _, r := range inv.Repos {
		for _, l := range r.Revisions {
			want(l.ID)
		}
		for _, t := range r.Tags {
			if t.HasCurrent {
				want(t.Current)
			}
		}
	}
	st := tr.Begin("reading manifests", "manifests", int64(len(todo)))
	defer st.End()
	var total int64
	for len(todo) > 0 {
		batch := todo
		todo = nil
		total += int64(len(batch))
		st.SetTotal(total)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(jobs, 1))
		for _, id := range batch {
			if !inv.IsBlob(id) {
				d := inv.Digest(id)
				inv.SetManifest(d, nil, fmt.Errorf("%w: %s", storage.ErrNotExist, layout.BlobData(d)))
				st.Add(1)
				continue
			}
			if size := inv.Blobs[id].Size; size > layout.MaxManifestSize {
				// The listing told: no read at all.
				d := inv.Blobs[id].Digest
				inv.SetManifest(d, nil, &storage.TooLargeError{Path: layout.BlobData(d), Limit: layout.MaxManifestSize})
				st.Add(1)
				continue
			}
			g.Go(func() error {
				defer st.Add(1)
				d := inv.Blobs[id].Digest
				data, err := s.b.ReadFile(gctx, layout.BlobData(d), layout.MaxManifestSize)
				if err != nil {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					inv.SetManifest(d, nil, err)
					return nil
				}
				m, err := manifest.Parse(data)
				inv.SetManifest(d, m, err)
				if err == nil && inv.Blobs[id].Size < 0 {
					inv.Blobs[id].Size = int64(len(data)) // each ID is read once: no other writer
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for _, id := range batch {
			if m, ok := inv.Manifest(id); ok && m.Err == nil {
				for _, c := range m.Children {
					want(c)
				}
			}
		}
	}
	return nil
}

// blobAppears settles a reference to a missing blob: a push writes the blob first,
// so a scan that listed the blobs before it saw the link, not the blob.
func blobAppears(d layout.Digest) Settle { return Settle{Path: layout.BlobData(d), Appears: true} }

// checkConsistency records what is wrong between the pieces: unreadable manifests
// (which make their repository opaque), tags without a current link, and links to
// blobs that do not exist.
func (s *scanner) checkConsistency() {
	inv := s.inv
	for _, r := range inv.Repos {
		for _, l := range r.Revisions {
			m, ok := inv.Manifest(l.ID)
			switch {
			case !ok:
			case storage.IsNotExist(m.Err):
				s.problem(Problem{Kind: MissingBlob, Path: layout.RevisionDir(r.Name, inv.Digest(l.ID)), Repo: r.Name,
					Detail: "revision of a manifest whose blob is missing", Settle: blobAppears(inv.Digest(l.ID))})
			case m.Err != nil:
				d := inv.Digest(l.ID)
				r.markOpaque("manifest " + d.String() + " cannot be understood")
				s.problem(Problem{Kind: BadManifest, Path: layout.BlobData(d), Repo: r.Name,
					Detail: m.Err.Error() + "; kept, with every blob linked into the repository"})
			}
		}
		for name, t := range r.Tags {
			if t.IndexHidden && !t.HasCurrent && !t.CurrentBad {
				r.markOpaque("tag " + name + " has no current link and its history holds an entry that cannot be read")
			}
			switch {
			case t.CurrentBad:
			case !t.HasCurrent:
				s.problem(Problem{Kind: MissingLink, Path: layout.TagDir(r.Name, name), Repo: r.Name,
					Detail: "tag without current link; its history is kept",
					Settle: Settle{Path: layout.TagCurrentLink(r.Name, name), Appears: true}})
			default:
				if !r.Revisions.Has(t.Current) {
					s.problem(Problem{Kind: DanglingTag, Path: layout.TagCurrentLink(r.Name, name), Repo: r.Name,
						Detail: "points at " + inv.Digest(t.Current).String() + ", which the repository does not link",
						Settle: Settle{Path: layout.RevisionLink(r.Name, inv.Digest(t.Current)), Appears: true}})
				}
			}
		}
		for _, l := range r.Layers {
			if !inv.IsBlob(l.ID) {
				s.problem(Problem{Kind: MissingBlob, Path: layout.LayerDir(r.Name, inv.Digest(l.ID)), Repo: r.Name,
					Detail: "layer link to a missing blob", Settle: blobAppears(inv.Digest(l.ID))})
			}
		}
		for id, u := range r.Uploads {
			if u.StartedAt.IsZero() {
				var settle Settle
				if !slices.Contains(u.Files, layout.StartedAt) {
					// A finished upload the registry was removing file by file: it
					// goes whole. (A garbled startedat is damage.)
					settle.Path = layout.UploadDir(r.Name, id) + "/" + u.Files[0]
				}
				s.problem(Problem{Kind: BadUpload, Path: layout.UploadDir(r.Name, id), Repo: r.Name,
					Detail: "no readable startedat; kept", Settle: settle})
			}
		}
	}
}

// IDSet is a set of IDs as a bitmap: an eighth of a byte per digest of the inventory.
type IDSet struct{ bits []uint64 }

func newIDSet(n int) IDSet { return IDSet{bits: make([]uint64, (n+63)/64)} }

// NewIDSet returns a set sized for the inventory's IDs (it grows for later ones).
func (inv *Inventory) NewIDSet() IDSet { return newIDSet(inv.NumIDs()) }

// Add puts id into the set.
func (s *IDSet) Add(id ID) {
	w := int(id / 64)
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, w+1-len(s.bits))...)
	}
	s.bits[w] |= 1 << (id % 64)
}

// Has reports whether id is in the set.
func (s IDSet) Has(id ID) bool {
	w := int(id / 64)
	return w < len(s.bits) && s.bits[w]&(1<<(id%64)) != 0
}
