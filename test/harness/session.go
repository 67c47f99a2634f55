package harness

import (
	"context"
	"errors"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// StartT starts a registry for a test (skipping it when no registry binary can be
// had), stops it when the test ends, and prints its log when the test failed.
func StartT(t testing.TB, cfg Config) *Registry {
	t.Helper()
	RegistryBinaryT(t)
	r, err := Start(context.Background(), cfg, t.TempDir())
	if err != nil {
		t.Fatalf("starting the registry: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry log (%s):\n%s", r.Addr(), tail(r.Logs(), 8000))
		}
		r.Close()
	})
	return r
}

// StartFS starts a registry on the filesystem root for a test.
func StartFS(t testing.TB, root string) *Registry {
	t.Helper()
	return StartT(t, Config{Root: root})
}

// StopT stops the registry or fails the test.
func (r *Registry) StopT(t testing.TB) {
	t.Helper()
	if err := r.Stop(); err != nil {
		t.Fatalf("stopping the registry: %v", err)
	}
}

// RestartT restarts the registry or fails the test.
func (r *Registry) RestartT(t testing.TB) {
	t.Helper()
	if err := r.Restart(context.Background()); err != nil {
		t.Fatalf("restarting the registry: %v", err)
	}
}

// Session is a client of the registry at Host for one test: every call fails the
// test on error.
func (r *Registry) Session(t testing.TB) *Session { return NewSession(t, r.Addr()) }

// GarbageCollectT runs `registry garbage-collect` or fails the test.
func GarbageCollectT(t testing.TB, configPath string, args ...string) string {
	t.Helper()
	RegistryBinaryT(t)
	out, err := GarbageCollect(context.Background(), configPath, args...)
	if err != nil {
		t.Fatalf("registry garbage-collect %s %v: %v", configPath, args, err)
	}
	return out
}

// Session is a registry client bound to a test.
type Session struct {
	T    testing.TB
	Host string
	Ctx  context.Context
}

// NewSession is a client of the registry at host (host:port) for t.
func NewSession(t testing.TB, host string) *Session {
	return &Session{T: t, Host: host, Ctx: context.Background()}
}

// check fails the test on err, naming the operation (a format and its arguments)
// and the registry.
func (s *Session) check(err error, format string, args ...any) {
	s.T.Helper()
	if err != nil {
		s.T.Fatalf("%s at %s: %v", fmt.Sprintf(format, args...), s.Host, err)
	}
}

// PushImage pushes img to "repo:tag", or by digest to a bare "repo"; returns its digest.
func (s *Session) PushImage(ref string, img v1.Image) string {
	s.T.Helper()
	d, err := PushImage(s.Ctx, s.Host, ref, img)
	s.check(err, "push of image %s", ref)
	return d
}

// PushIndex pushes idx and its children (by digest) to ref; returns its digest.
func (s *Session) PushIndex(ref string, idx v1.ImageIndex) string {
	s.T.Helper()
	d, err := PushIndex(s.Ctx, s.Host, ref, idx)
	s.check(err, "push of index %s", ref)
	return d
}

// PushImageTo pushes img to every ref; returns its digest.
func (s *Session) PushImageTo(img v1.Image, refs ...string) string {
	s.T.Helper()
	d, err := PushImageTo(s.Ctx, s.Host, img, refs...)
	s.check(err, "push of an image to %v", refs)
	return d
}

// Tag points repo:tag at a manifest already in repo.
func (s *Session) Tag(repo, digest, tag string) {
	s.T.Helper()
	s.check(Tag(s.Ctx, s.Host, repo, digest, tag), "tagging %s@%s as %s", repo, digest, tag)
}

// PushBlob uploads content to repo; returns its digest.
func (s *Session) PushBlob(repo string, content []byte) string {
	s.T.Helper()
	d, err := PushBlob(s.Ctx, s.Host, repo, content)
	s.check(err, "push of a %d-byte blob to %s", len(content), repo)
	return d
}

// PutManifest PUTs a raw manifest; returns its digest.
func (s *Session) PutManifest(ref, mediaType string, body []byte) string {
	s.T.Helper()
	d, err := PutManifest(s.Ctx, s.Host, ref, mediaType, body)
	s.check(err, "PUT of manifest %s (%s)", ref, mediaType)
	return d
}

// PushReferrer pushes an OCI 1.1 artifact about subjectDigest in repo; returns its digest.
func (s *Session) PushReferrer(repo, subjectDigest, artifactType string, seed uint64) string {
	s.T.Helper()
	d, err := PushReferrer(s.Ctx, s.Host, repo, subjectDigest, artifactType, seed)
	s.check(err, "push of a %s referrer of %s@%s", artifactType, repo, subjectDigest)
	return d
}

// Pull pulls ref with every digest verified, or fails the test.
func (s *Session) Pull(ref string) *Pulled {
	s.T.Helper()
	p, err := Pull(s.Ctx, s.Host, ref)
	s.check(err, "verified pull of %s", ref)
	return p
}

// PullAll pulls every ref (see Pull).
func (s *Session) PullAll(refs ...string) {
	s.T.Helper()
	for _, ref := range refs {
		s.Pull(ref)
	}
}

// ManifestStatus is the status of a HEAD on ref's manifest.
func (s *Session) ManifestStatus(ref string) int {
	s.T.Helper()
	code, err := ManifestStatus(s.Ctx, s.Host, ref)
	s.check(err, "HEAD of manifest %s", ref)
	return code
}

// Gone fails the test unless every ref's manifest answers 404.
func (s *Session) Gone(refs ...string) {
	s.T.Helper()
	for _, ref := range refs {
		if code := s.ManifestStatus(ref); code != 404 {
			s.T.Errorf("manifest %s: status %d, want 404 (deleted)", ref, code)
		}
	}
}

// Tags lists repo's tags; nil when the registry does not know the repository.
func (s *Session) Tags(repo string) []string {
	s.T.Helper()
	tags, err := Tags(s.Ctx, s.Host, repo)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	s.check(err, "listing the tags of %s", repo)
	return tags
}

// Catalog lists the registry's repositories.
func (s *Session) Catalog() []string {
	s.T.Helper()
	repos, err := Catalog(s.Ctx, s.Host)
	s.check(err, "listing the catalog")
	return repos
}
