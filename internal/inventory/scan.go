package inventory

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/clean-registry/clean-registry/internal/layout"
	"github.com/clean-registry/clean-registry/internal/manifest"
	"github.com/clean-registry/clean-registry/internal/storage"
	"golang.org/x/sync/errgroup"
)

// ErrNotRegistry reports a storage root without docker/registry/v2.
var ErrNotRegistry = errors.New("not a registry storage root")

// Scan builds the inventory of the storage behind b, with at most jobs concurrent
// reads. Only I/O errors that make the picture unreliable (a listing that fails) are
// returned; everything odd about the content becomes a Problem.
func Scan(ctx context.Context, b storage.Backend, jobs int) (*Inventory, error) {
	ok, err := b.DirExists(ctx, layout.V2Dir)
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", b, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotRegistry, b, layout.V2Dir)
	}
	s := &scanner{b: b, inv: &Inventory{
		Storage:   b.String(),
		Repos:     map[string]*Repo{},
		Blobs:     map[layout.Digest]Blob{},
		Manifests: map[layout.Digest]*Manifest{},
	}}
	walk := b.Walk
	if lw, ok := b.(storage.LeafWalker); ok {
		// Blob and link directories hold one known file each: read it, don't list them.
		walk = func(ctx context.Context, dir string, fn func(storage.File) error) error {
			return lw.WalkLeaves(ctx, dir, layout.LeafFile, fn)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	visit := func(f storage.File) error { return s.visit(gctx, f) }
	g.Go(func() error { return walk(gctx, layout.RepositoriesDir, visit) })
	g.Go(func() error { return walk(gctx, layout.BlobsDir, visit) })
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("scanning %s: %w", b, err)
	}
	if err := s.readManifests(ctx, jobs); err != nil {
		return nil, err
	}
	s.checkConsistency()
	return s.inv, nil
}

type scanner struct {
	b   storage.Backend
	mu  sync.Mutex
	inv *Inventory
}

func (s *scanner) problem(p Problem) {
	s.inv.Problems = append(s.inv.Problems, p)
}

func (s *scanner) repo(name string) *Repo {
	r := s.inv.Repos[name]
	if r == nil {
		r = newRepo(name)
		s.inv.Repos[name] = r
	}
	return r
}

// visit records one file. It runs on the walk's goroutines: reads happen outside the
// lock, recording inside it.
func (s *scanner) visit(ctx context.Context, f storage.File) error {
	if f.EmptyDir {
		s.emptyDir(f.Path)
		return nil
	}
	info := layout.Classify(f.Path)
	mt := ToTime(f.ModTime)
	if f.Irregular {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inv.Files++
		s.problem(Problem{Kind: Irregular, Path: f.Path, Repo: info.Repo,
			Detail: "not a regular file: never followed; blob deletion is disabled because content behind it is invisible"})
		s.inv.Blind = append(s.inv.Blind, f.Path)
		if info.Repo != "" {
			r := s.repo(info.Repo)
			r.Unknown++
			r.markOpaque("holds a non-regular file " + f.Path)
		}
		return nil
	}

	// Reads first, without the lock.
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
		data, linkErr = s.b.ReadFile(ctx, f.Path)
		if linkErr == nil {
			current, linkErr = layout.ParseLink(data)
		}
	case layout.KindUploadFile:
		if info.Rest == "startedat" {
			if data, err := s.b.ReadFile(ctx, f.Path); err == nil {
				startedAt, _ = time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var r *Repo
	if info.Repo != "" {
		r = s.repo(info.Repo)
	}
	if storage.IsNotExist(linkErr) {
		// A leaf directory read without listing has no link file: what a crash between
		// a link's unlink and its directory's removal leaves (or a file vanished under
		// the scan). The registry sees no link there; the directory is recorded like a
		// link all the same, so that the plan removes it when nothing needs it.
		if info.Kind == layout.KindTagCurrentLink {
			r.tag(info.Tag) // a tag without current link: its history is kept
			return nil
		}
		s.problem(Problem{Kind: MissingLink, Path: f.Path, Repo: info.Repo, Detail: "directory without its link file"})
		linkErr = nil
	} else {
		s.inv.Files++
	}
	switch info.Kind {
	case layout.KindBlobData:
		s.inv.Blobs[info.Digest] = Blob{Size: f.Size, ModTime: mt}
	case layout.KindLayerLink:
		r.Layers[info.Digest] = Link{ModTime: mt}
		if linkErr != nil {
			s.problem(Problem{Kind: GarbledLink, Path: f.Path, Repo: r.Name, Detail: linkErr.Error()})
		}
	case layout.KindRevisionLink:
		r.Revisions[info.Digest] = Link{ModTime: mt}
		if linkErr != nil {
			s.problem(Problem{Kind: GarbledLink, Path: f.Path, Repo: r.Name, Detail: linkErr.Error()})
		}
	case layout.KindTagIndexLink:
		r.tag(info.Tag).Index[info.Digest] = Link{ModTime: mt}
		if linkErr != nil {
			s.problem(Problem{Kind: GarbledLink, Path: f.Path, Repo: r.Name, Detail: linkErr.Error()})
		}
	case layout.KindTagCurrentLink:
		t := r.tag(info.Tag)
		t.CurrentModTime = mt
		if linkErr != nil {
			t.CurrentBad = true
			r.markOpaque("tag " + info.Tag + " has an unreadable current link")
			s.problem(Problem{Kind: GarbledLink, Path: f.Path, Repo: r.Name,
				Detail: linkErr.Error() + "; every manifest of the repository is kept"})
		} else {
			t.Current, t.HasCurrent = current, true
		}
	case layout.KindUploadFile:
		u := r.Uploads[info.UploadID]
		if u == nil {
			u = &Upload{}
			r.Uploads[info.UploadID] = u
		}
		u.Files = append(u.Files, info.Rest)
		if !startedAt.IsZero() {
			u.StartedAt = startedAt
		}
	case layout.KindTransient:
		if r != nil {
			r.Unknown++
		}
		s.problem(Problem{Kind: TransientFile, Path: f.Path, Repo: info.Repo, Detail: "left by an interrupted write"})
	case layout.KindOtherAlgorithm:
		if r != nil {
			r.Unknown++
			r.markOpaque("holds links of another digest algorithm")
		} else {
			s.inv.OtherBlobs++
		}
		s.problem(Problem{Kind: OtherAlgorithm, Path: f.Path, Repo: info.Repo, Detail: "only sha256 is cleaned; kept"})
	default:
		if r != nil {
			r.Unknown++
			s.problem(Problem{Kind: UnknownFile, Path: f.Path, Repo: r.Name, Detail: "not part of the registry layout; left alone"})
		} else if strings.HasPrefix(f.Path, layout.RepositoriesDir+"/") && !strings.Contains(f.Path, "/_") {
			s.problem(Problem{Kind: UnknownFile, Path: f.Path, Detail: "not part of the registry layout; left alone"})
		} else if strings.HasPrefix(f.Path, layout.RepositoriesDir+"/") {
			// Inside something that looks like a repository but whose name is invalid: the
			// registry cannot serve it, yet its links may name blobs; keep them all.
			s.inv.Blind = append(s.inv.Blind, f.Path)
			s.problem(Problem{Kind: InvalidRepoName, Path: f.Path,
				Detail: "inside a directory that is not a valid repository name; blob deletion is disabled"})
		} else {
			s.problem(Problem{Kind: UnknownFile, Path: f.Path, Detail: "not part of the registry layout; left alone"})
		}
	}
	return nil
}

// emptyDir records an empty directory below the repositories: the repository it
// belongs to (the path up to its first reserved "_" component, or the whole path)
// then exists in the inventory, and a plan removes it when it holds nothing else.
func (s *scanner) emptyDir(p string) {
	rest, ok := strings.CutPrefix(p, layout.RepositoriesDir+"/")
	if !ok {
		return
	}
	if i := strings.Index(rest, "/_"); i >= 0 {
		rest = rest[:i]
	}
	if layout.ValidRepository(rest) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repo(rest)
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
	data, err := s.b.ReadFile(ctx, f.Path)
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
func (s *scanner) readManifests(ctx context.Context, jobs int) error {
	want := map[layout.Digest]bool{}
	for _, r := range s.inv.Repos {
		for d := range r.Revisions {
			want[d] = true
		}
		for _, t := range r.Tags {
			if t.HasCurrent {
				want[t.Current] = true
			}
		}
	}
	for len(want) > 0 {
		todo := make([]layout.Digest, 0, len(want))
		for d := range want {
			if _, done := s.inv.Manifests[d]; !done {
				todo = append(todo, d)
			}
		}
		if len(todo) == 0 {
			break
		}
		results := make([]*Manifest, len(todo))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(jobs, 1))
		for i, d := range todo {
			if _, ok := s.inv.Blobs[d]; !ok {
				results[i] = &Manifest{Err: fmt.Errorf("%w: %s", storage.ErrNotExist, layout.BlobData(d))}
				continue
			}
			g.Go(func() error {
				data, err := s.b.ReadFile(gctx, layout.BlobData(d))
				if err != nil {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					results[i] = &Manifest{Err: err}
					return nil
				}
				m, err := manifest.Parse(data)
				results[i] = &Manifest{Manifest: m, Err: err, Size: int64(len(data))}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		want = map[layout.Digest]bool{}
		for i, d := range todo {
			m := results[i]
			s.inv.Manifests[d] = m
			if m.Err == nil {
				if b := s.inv.Blobs[d]; b.Size < 0 {
					b.Size = m.Size
					s.inv.Blobs[d] = b
				}
				for _, c := range m.Children {
					want[c] = true
				}
			}
		}
	}
	return nil
}

// checkConsistency records what is wrong between the pieces: unreadable manifests
// (which make their repository opaque), tags without a current link, and links to
// blobs that do not exist.
func (s *scanner) checkConsistency() {
	inv := s.inv
	for _, r := range inv.Repos {
		for d := range r.Revisions {
			m := inv.Manifests[d]
			switch {
			case m == nil:
			case storage.IsNotExist(m.Err):
				s.problem(Problem{Kind: MissingBlob, Path: layout.RevisionDir(r.Name, d), Repo: r.Name,
					Detail: "revision of a manifest whose blob is missing"})
			case m.Err != nil:
				r.markOpaque("manifest " + d.String() + " cannot be understood")
				s.problem(Problem{Kind: BadManifest, Path: layout.BlobData(d), Repo: r.Name,
					Detail: m.Err.Error() + "; kept, with every blob linked into the repository"})
			}
		}
		for name, t := range r.Tags {
			switch {
			case t.CurrentBad:
			case !t.HasCurrent:
				s.problem(Problem{Kind: MissingLink, Path: layout.TagDir(r.Name, name), Repo: r.Name,
					Detail: "tag without current link; its history is kept"})
			default:
				if _, ok := r.Revisions[t.Current]; !ok {
					s.problem(Problem{Kind: DanglingTag, Path: layout.TagCurrentLink(r.Name, name), Repo: r.Name,
						Detail: "points at " + t.Current.String() + ", which the repository does not link"})
				}
			}
		}
		for d := range r.Layers {
			if _, ok := inv.Blobs[d]; !ok {
				s.problem(Problem{Kind: MissingBlob, Path: layout.LayerDir(r.Name, d), Repo: r.Name,
					Detail: "layer link to a missing blob"})
			}
		}
		for id, u := range r.Uploads {
			if u.StartedAt.IsZero() {
				s.problem(Problem{Kind: BadUpload, Path: layout.UploadDir(r.Name, id), Repo: r.Name,
					Detail: "no readable startedat; kept"})
			}
		}
	}
}
