package layout

import (
	"strings"
	"testing"
)

func TestCanHideReference(t *testing.T) {
	h := strings.Repeat("ab", 32)
	repo := RepositoriesDir + "/team/app"
	tests := []struct {
		path string
		want bool
	}{
		{repo + "/_layers/sha256/" + h, false},
		{repo + "/_layers", false},
		{repo + "/_uploads/u1/data", false},
		{repo + "/_manifests/tags/v1/index/sha256/" + h, false},
		{BlobsDir + "/sha256/ab/" + h + "/other", false},
		{BlobsDir + "/sha256/ab/" + h + "/data", true},
		{BlobsDir + "/sha256/ab", true},
		{repo + "/_manifests/revisions/sha256/" + h, true},
		{repo + "/_manifests/tags/v1/current", true},
		{repo + "/_manifests/tags/v1", true},
		{repo + "/_manifests", true},
		{repo + "/_other", true},
		{repo, true},
		{RepositoriesDir + "/team/bad\xff", true},
		{RepositoriesDir + "/_x", true},
	}
	for _, tt := range tests {
		if got := CanHideReference(tt.path); got != tt.want {
			t.Errorf("CanHideReference(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestTagPaths(t *testing.T) {
	tags := RepositoriesDir + "/a/b/_manifests/tags/"
	tests := []struct {
		path       string
		repo, tag  string
		tagOK, idx bool
	}{
		{tags + "v1", "a/b", "v1", true, false},
		{tags + "v1/current", "a/b", "v1", true, false},
		{tags + "v1/index", "a/b", "v1", true, true},
		{tags + "v1/index/sha256/x", "a/b", "v1", true, true},
		{tags + "v1/indexes", "a/b", "v1", true, false},
		{tags + "-bad", "", "", false, false},
		{RepositoriesDir + "/a/_manifests/revisions", "", "", false, false},
		{BlobsDir + "/sha256", "", "", false, false},
	}
	for _, tt := range tests {
		repo, tag, ok := TagOfPath(tt.path)
		if ok != tt.tagOK || (ok && (repo != tt.repo || tag != tt.tag)) {
			t.Errorf("TagOfPath(%q) = %q, %q, %v", tt.path, repo, tag, ok)
		}
		if _, _, ok := IsTagIndexPath(tt.path); ok != tt.idx {
			t.Errorf("IsTagIndexPath(%q) = %v, want %v", tt.path, ok, tt.idx)
		}
	}
}
