package layout

import "strings"

// Paths are relative to the storage root (the filesystem driver's rootdirectory or the
// object store's root prefix), slash-separated, without a leading slash.
const (
	V2Dir           = "docker/registry/v2"
	BlobsDir        = V2Dir + "/blobs"
	Sha256BlobsDir  = BlobsDir + "/sha256"
	RepositoriesDir = V2Dir + "/repositories"
)

// Reserved directory names inside a repository.
const (
	ManifestsDir = "_manifests"
	LayersDir    = "_layers"
	UploadsDir   = "_uploads"
)

// BlobDir is blobs/sha256/<first two hex>/<hex>: everything of one blob.
func BlobDir(d Digest) string {
	h := d.Hex()
	return Sha256BlobsDir + "/" + h[:2] + "/" + h
}

// BlobData is the blob's content file.
func BlobData(d Digest) string { return BlobDir(d) + "/data" }

// RepoDir is the directory of a repository; nested repositories live below it.
func RepoDir(repo string) string { return RepositoriesDir + "/" + repo }

// RevisionDir holds the link that makes manifest d exist in repo.
func RevisionDir(repo string, d Digest) string {
	return RepoDir(repo) + "/_manifests/revisions/sha256/" + d.Hex()
}

// LayerDir holds the link that makes blob d part of repo.
func LayerDir(repo string, d Digest) string {
	return RepoDir(repo) + "/_layers/sha256/" + d.Hex()
}

// TagsDir holds every tag of repo.
func TagsDir(repo string) string { return RepoDir(repo) + "/_manifests/tags" }

// TagDir holds one tag: its current link and its history index.
func TagDir(repo, tag string) string { return TagsDir(repo) + "/" + tag }

// TagCurrentLink is the file naming the manifest a tag points at now.
func TagCurrentLink(repo, tag string) string { return TagDir(repo, tag) + "/current/link" }

// TagIndexDir holds the history entry recording that tag once pointed at d.
func TagIndexDir(repo, tag string, d Digest) string {
	return TagDir(repo, tag) + "/index/sha256/" + d.Hex()
}

// UploadDir holds one upload in progress.
func UploadDir(repo, id string) string { return RepoDir(repo) + "/_uploads/" + id }

// Link is the file name inside revision, layer and tag index directories.
const Link = "link"

// Kind says what a storage path is.
type Kind uint8

const (
	KindUnknown        Kind = iota // not part of the layout: reported, never deleted on its own
	KindTransient                  // a "*.tmp" file the v3.1 filesystem driver writes before a rename
	KindBlobData                   // blobs/sha256/xx/<hex>/data
	KindLayerLink                  // <repo>/_layers/sha256/<hex>/link
	KindRevisionLink               // <repo>/_manifests/revisions/sha256/<hex>/link
	KindTagCurrentLink             // <repo>/_manifests/tags/<tag>/current/link
	KindTagIndexLink               // <repo>/_manifests/tags/<tag>/index/sha256/<hex>/link
	KindUploadFile                 // <repo>/_uploads/<id>/...
	KindOtherAlgorithm             // a blob or link under an algorithm other than sha256
)

// PathInfo is what Classify reads out of a path.
type PathInfo struct {
	Kind     Kind
	Repo     string // for repository paths, when the name is valid
	Tag      string // for tag paths
	Digest   Digest // for blob and link paths
	UploadID string // for upload paths
	Rest     string // for uploads: the path inside the upload directory
}

// Classify reads a file path relative to the storage root. It never fails: what it
// does not recognise is Unknown (or Transient for "*.tmp"), with Repo set when the
// path lies inside a recognisable repository.
func Classify(p string) PathInfo {
	if strings.HasSuffix(p, ".tmp") {
		info := PathInfo{Kind: KindTransient}
		if rest, ok := strings.CutPrefix(p, RepositoriesDir+"/"); ok {
			info.Repo, _, _ = splitRepo(rest)
		}
		return info
	}
	return classify(p)
}

func classify(p string) PathInfo {
	if rest, ok := strings.CutPrefix(p, BlobsDir+"/"); ok {
		return classifyBlob(rest)
	}
	rest, ok := strings.CutPrefix(p, RepositoriesDir+"/")
	if !ok {
		return PathInfo{}
	}
	repo, inside, ok := splitRepo(rest)
	if !ok {
		return PathInfo{}
	}
	info := classifyInRepo(inside)
	info.Repo = repo
	return info
}

func classifyBlob(rest string) PathInfo {
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[3] != "data" {
		return PathInfo{}
	}
	if parts[0] != "sha256" {
		return PathInfo{Kind: KindOtherAlgorithm}
	}
	d, err := ParseHex(parts[2])
	if err != nil || parts[1] != parts[2][:2] {
		return PathInfo{}
	}
	return PathInfo{Kind: KindBlobData, Digest: d}
}

// splitRepo splits "a/b/_manifests/..." into the repository name "a/b" and the
// path inside it. The first component starting with "_" ends the name, as in upstream.
func splitRepo(rest string) (repo, inside string, ok bool) {
	parts := strings.Split(rest, "/")
	for i, c := range parts {
		if strings.HasPrefix(c, "_") {
			if i == 0 {
				return "", "", false
			}
			repo = strings.Join(parts[:i], "/")
			if ValidRepository(repo) != nil {
				return "", "", false
			}
			return repo, strings.Join(parts[i:], "/"), true
		}
	}
	return "", "", false
}

func classifyInRepo(inside string) PathInfo {
	parts := strings.Split(inside, "/")
	switch parts[0] {
	case LayersDir:
		// _layers/sha256/<hex>/link
		if len(parts) == 4 && parts[3] == Link {
			return digestLink(KindLayerLink, parts[1], parts[2])
		}
	case ManifestsDir:
		if len(parts) == 5 && parts[1] == "revisions" && parts[4] == Link {
			return digestLink(KindRevisionLink, parts[2], parts[3])
		}
		if len(parts) >= 4 && parts[1] == "tags" && ValidTag(parts[2]) == nil {
			tag := parts[2]
			if len(parts) == 5 && parts[3] == "current" && parts[4] == Link {
				return PathInfo{Kind: KindTagCurrentLink, Tag: tag}
			}
			if len(parts) == 7 && parts[3] == "index" && parts[6] == Link {
				info := digestLink(KindTagIndexLink, parts[4], parts[5])
				info.Tag = tag
				return info
			}
		}
	case UploadsDir:
		if len(parts) >= 3 && parts[1] != "" && !strings.ContainsAny(parts[1], ".") {
			return PathInfo{Kind: KindUploadFile, UploadID: parts[1], Rest: strings.Join(parts[2:], "/")}
		}
	}
	return PathInfo{}
}

func digestLink(kind Kind, alg, h string) PathInfo {
	if alg != "sha256" {
		return PathInfo{Kind: KindOtherAlgorithm}
	}
	d, err := ParseHex(h)
	if err != nil {
		return PathInfo{}
	}
	return PathInfo{Kind: kind, Digest: d}
}

// ParseLink reads a link file's content: a digest string with no newline. Surrounding
// white space, which some tools leave, is tolerated; anything else is an error.
func ParseLink(content []byte) (Digest, error) {
	return ParseDigest(strings.TrimSpace(string(content)))
}

// LeafFile names the one file a directory of the layout holds, when its path tells:
// "data" in a blob directory, "link" in a revision, layer or tag index directory or
// a tag's current directory; "" for any other directory. A walk uses it to read that
// file without listing the directory. Only the reserved part of a repository path
// (from its first "_" component) decides: a repository may well be named
// "a/revisions/sha256/<hex>", and its directory is no leaf.
func LeafFile(dir string) string {
	if rest, ok := strings.CutPrefix(dir, Sha256BlobsDir+"/"); ok {
		fan, h, ok := strings.Cut(rest, "/")
		if ok && len(fan) == 2 && len(h) == 64 && h[:2] == fan {
			return "data"
		}
		return ""
	}
	rest, ok := strings.CutPrefix(dir, RepositoriesDir+"/")
	if !ok {
		return ""
	}
	i := strings.Index(rest, "/_")
	if i < 0 {
		return ""
	}
	parts := strings.Split(rest[i+1:], "/")
	switch {
	case len(parts) == 3 && parts[0] == LayersDir && parts[1] == "sha256" && len(parts[2]) == 64,
		len(parts) == 4 && parts[0] == ManifestsDir && parts[1] == "revisions" && parts[2] == "sha256" && len(parts[3]) == 64,
		len(parts) == 4 && parts[0] == ManifestsDir && parts[1] == "tags" && parts[3] == "current",
		len(parts) == 6 && parts[0] == ManifestsDir && parts[1] == "tags" && parts[3] == "index" && parts[4] == "sha256" && len(parts[5]) == 64:
		return Link
	}
	return ""
}

// Read limits: what the registry itself writes never comes near them, so a larger
// file is garbage (or hostile) and is not read on.
const (
	// MaxManifestSize is the largest manifest distribution accepts in a PUT
	// (maxManifestBodySize in registry/handlers/manifests.go, v3): a larger blob was
	// not pushed as a manifest.
	MaxManifestSize = 4 << 20
	// MaxLinkSize bounds a link file ("sha256:" and 64 hex digits) or an upload's
	// startedat, with room for the white space some tools leave.
	MaxLinkSize = 1 << 10
)

// CanHideReference reports whether an entry the scan cannot read or understand at
// path p (a symbolic link, a device, a name that is no valid path) could hide what
// keeps a blob: a manifest, a revision, a tag's current link, or a whole repository.
// Inside _layers and _uploads, in a tag's history index and beside a blob's data it
// cannot (those hold no manifest reference; a tag's history matters only for a tag
// without current link, which the scan tells apart), so such an entry is reported
// and otherwise ignored. Anywhere else it hides content from the scan.
func CanHideReference(p string) bool {
	if rest, ok := strings.CutPrefix(p, BlobsDir+"/"); ok {
		// blobs/<alg>/<fan>/<hex>/<name>: only "data" is content.
		parts := strings.Split(rest, "/")
		return len(parts) != 4 || parts[3] == "data"
	}
	rest, ok := strings.CutPrefix(p, RepositoriesDir+"/")
	if !ok {
		return true
	}
	parts := strings.Split(rest, "/")
	for i, c := range parts {
		if !strings.HasPrefix(c, "_") {
			continue
		}
		if i == 0 {
			return true // no repository name: the tree above every repository
		}
		inside := parts[i:]
		switch inside[0] {
		case LayersDir, UploadsDir:
			return false
		case ManifestsDir:
			// _manifests/tags/<tag>/index/...
			return !(len(inside) >= 4 && inside[1] == "tags" && inside[3] == "index")
		}
		return true
	}
	return true // the repository tree above _manifests
}

// TagOfPath reports whether p is a tag's directory or lies below it, and names the
// repository and the tag (a valid tag name: the registry lists only those).
func TagOfPath(p string) (repo, tag string, ok bool) {
	repo, tag, _, ok = cutTag(p)
	return repo, tag, ok
}

// IsTagIndexPath reports whether p lies inside a tag's history index, and names
// the repository and the tag.
func IsTagIndexPath(p string) (repo, tag string, ok bool) {
	repo, tag, inside, ok := cutTag(p)
	return repo, tag, ok && (inside == "index" || strings.HasPrefix(inside, "index/"))
}

// cutTag splits a path at or below <repo>/_manifests/tags/<tag> into the repository,
// the tag and the path inside the tag's directory.
func cutTag(p string) (repo, tag, inside string, ok bool) {
	rest, found := strings.CutPrefix(p, RepositoriesDir+"/")
	if !found {
		return "", "", "", false
	}
	repo, rest, found = splitRepo(rest)
	if !found {
		return "", "", "", false
	}
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 3 || parts[0] != ManifestsDir || parts[1] != "tags" || ValidTag(parts[2]) != nil {
		return "", "", "", false
	}
	if len(parts) == 4 {
		inside = parts[3]
	}
	return repo, parts[2], inside, true
}
