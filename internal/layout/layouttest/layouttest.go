// Package layouttest writes registry storage trees on a local disk for the
// unit tests of the packages that read them: files at the paths package layout
// builds, content-addressed blobs, links, and small images as a registry
// would leave them after a push.
package layouttest

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
)

// Tree is a registry root on the local disk; every method fails the test on
// an error.
type Tree struct {
	T    testing.TB
	Root string
}

// New returns a Tree in a new temporary directory.
func New(t testing.TB) Tree {
	t.Helper()
	return Tree{T: t, Root: t.TempDir()}
}

// Write writes content at p (slash-separated, relative to the root), making
// its directories.
func (tr Tree) Write(p string, content []byte) {
	tr.T.Helper()
	full := filepath.Join(tr.Root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		tr.T.Fatal(err)
	}
	if err := os.WriteFile(full, content, 0o644); err != nil {
		tr.T.Fatal(err)
	}
}

// Blob writes content as a blob and returns its digest.
func (tr Tree) Blob(content []byte) layout.Digest {
	tr.T.Helper()
	return tr.BlobAt(layout.BlobData, content)
}

// BlobAt writes content at at(its digest) and returns the digest: a blob
// somewhere else than in the blob store, in a quarantine say.
func (tr Tree) BlobAt(at func(layout.Digest) string, content []byte) layout.Digest {
	tr.T.Helper()
	d := layout.Digest(sha256.Sum256(content))
	tr.Write(at(d), content)
	return d
}

// Link writes a link file at p naming d.
func (tr Tree) Link(p string, d layout.Digest) {
	tr.T.Helper()
	tr.Write(p, []byte(d.String()))
}

// Image pushes an OCI image to repo: a layer holding layer, a config, and a
// manifest naming both, with the repository's layer links and the manifest's
// revision link, and no tag. It returns the manifest's digest.
func (tr Tree) Image(repo, layer string) layout.Digest {
	tr.T.Helper()
	l, c := tr.Blob([]byte(layer)), tr.Blob([]byte("config "+layer))
	m := tr.Blob([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"` +
		c.String() + `"},"layers":[{"digest":"` + l.String() + `"}]}`))
	tr.Link(layout.LayerLink(repo, l), l)
	tr.Link(layout.LayerLink(repo, c), c)
	tr.Link(layout.RevisionLink(repo, m), m)
	return m
}

// Tag points repo:tag at m, with the tag's index entry, as a push by tag does.
func (tr Tree) Tag(repo, tag string, m layout.Digest) {
	tr.T.Helper()
	tr.Link(layout.TagCurrentLink(repo, tag), m)
	tr.Link(layout.TagIndexLink(repo, tag, m), m)
}
