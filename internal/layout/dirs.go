package layout

import (
	"path"
	"strings"
)

// The fixed names below a repository's reserved directories and in leaf directories.
// Every storage path other packages need is built from them here, never by hand.
const (
	revisionsName = "revisions"
	tagsName      = "tags"
	currentName   = "current"
	indexName     = "index"
	sha256Name    = "sha256"
)

// File names inside the layout's directories (Link, in link directories, is in paths.go).
const (
	// Data is the content file of a blob, inside its BlobDir.
	Data = "data"
	// StartedAt is the file of an upload directory (UploadDir) recording when the
	// upload began.
	StartedAt = "startedat"
	// TagCurrentFile is a tag's current link, relative to its TagDir.
	TagCurrentFile = currentName + "/" + Link
)

// TagIndexFile is the link of the tag history entry for d, relative to the tag's
// TagDir.
func TagIndexFile(d Digest) string {
	return indexName + "/" + sha256Name + "/" + d.Hex() + "/" + Link
}

// LayerLink is the link file that makes blob d part of repo.
func LayerLink(repo string, d Digest) string { return LayerDir(repo, d) + "/" + Link }

// RevisionLink is the link file that makes manifest d exist in repo.
func RevisionLink(repo string, d Digest) string { return RevisionDir(repo, d) + "/" + Link }

// TagIndexLink is the link file recording that tag once pointed at d.
func TagIndexLink(repo, tag string, d Digest) string {
	return TagIndexDir(repo, tag, d) + "/" + Link
}

// RepoManifestsDir is a repository's _manifests directory: its revisions and tags.
func RepoManifestsDir(repo string) string { return RepoDir(repo) + "/" + ManifestsDir }

// RepoLayersDir is a repository's _layers directory: its layer links.
func RepoLayersDir(repo string) string { return RepoDir(repo) + "/" + LayersDir }

// RepoUploadsDir is a repository's _uploads directory: its uploads in progress.
func RepoUploadsDir(repo string) string { return RepoDir(repo) + "/" + UploadsDir }

// RevisionsDir holds a repository's revisions, by digest algorithm.
func RevisionsDir(repo string) string { return RepoManifestsDir(repo) + "/" + revisionsName }

// ReservedDirs are a repository's own directories, which its removal deletes whole:
// _uploads, _layers, then _manifests. A nested repository lives beside them, in the
// repository's directory, never inside them.
func ReservedDirs(repo string) []string {
	return []string{RepoUploadsDir(repo), RepoLayersDir(repo), RepoManifestsDir(repo)}
}

// SkeletonDirs are the fixed directories of a repository's reserved part, deepest
// first: what stays of a repository once its links, tags and uploads are gone.
func SkeletonDirs(repo string) []string {
	return []string{
		RevisionsDir(repo) + "/" + sha256Name,
		RevisionsDir(repo),
		RepoManifestsDir(repo) + "/" + tagsName,
		RepoManifestsDir(repo),
		RepoLayersDir(repo) + "/" + sha256Name,
		RepoLayersDir(repo),
		RepoUploadsDir(repo),
	}
}

// RepoDirAndParents is the repository's directory, then each parent directory up to,
// not including, RepositoriesDir: "a/b" gives RepoDir("a/b") and RepoDir("a").
func RepoDirAndParents(repo string) []string {
	var dirs []string
	for dir := RepoDir(repo); dir != RepositoriesDir && strings.HasPrefix(dir, RepositoriesDir+"/"); dir = path.Dir(dir) {
		dirs = append(dirs, dir)
	}
	return dirs
}

// CutRepository splits a path below RepositoriesDir at its first reserved component
// (one starting with "_", as _manifests, _layers and _uploads do): name is what comes
// before it, the repository the path belongs to when that is a valid name (which is
// not checked here), and inside is the rest from the reserved component on, "" when
// the path has none (it lies in the tree of repository directories itself). ok is
// false for a path not below RepositoriesDir.
func CutRepository(p string) (name, inside string, ok bool) {
	rest, ok := strings.CutPrefix(p, RepositoriesDir+"/")
	if !ok {
		return "", "", false
	}
	if strings.HasPrefix(rest, "_") {
		return "", rest, true
	}
	if i := strings.Index(rest, "/_"); i >= 0 {
		return rest[:i], rest[i+1:], true
	}
	return rest, "", true
}
