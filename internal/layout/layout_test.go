package layout

import (
	"strings"
	"testing"
)

const hexA = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

func TestClassify(t *testing.T) {
	d, _ := ParseHex(hexA)
	r := RepositoriesDir + "/"
	tests := []struct {
		path string
		want PathInfo
	}{
		{BlobsDir + "/sha256/a3/" + hexA + "/data", PathInfo{Kind: KindBlobData, Digest: d}},
		{BlobsDir + "/sha256/ff/" + hexA + "/data", PathInfo{}},                         // wrong fan-out dir
		{BlobsDir + "/sha256/a3/" + hexA + "/other", PathInfo{}},                        // not data
		{BlobsDir + "/sha512/a3/" + hexA + "/data", PathInfo{Kind: KindOtherAlgorithm}}, // kept
		{r + "a/b/_layers/sha256/" + hexA + "/link", PathInfo{Kind: KindLayerLink, Repo: "a/b", Digest: d}},
		{r + "a/_manifests/revisions/sha256/" + hexA + "/link", PathInfo{Kind: KindRevisionLink, Repo: "a", Digest: d}},
		{r + "a/_manifests/tags/v1.0/current/link", PathInfo{Kind: KindTagCurrentLink, Repo: "a", Tag: "v1.0"}},
		{r + "a/_manifests/tags/v1/index/sha256/" + hexA + "/link", PathInfo{Kind: KindTagIndexLink, Repo: "a", Tag: "v1", Digest: d}},
		{r + "a/_uploads/0f3c-11/startedat", PathInfo{Kind: KindUploadFile, Repo: "a", UploadID: "0f3c-11", Rest: "startedat"}},
		{r + "a/_uploads/0f3c-11/hashstates/sha256/0", PathInfo{Kind: KindUploadFile, Repo: "a", UploadID: "0f3c-11", Rest: "hashstates/sha256/0"}},
		{r + "a/_layers/sha256/" + hexA + "/link.1234.tmp", PathInfo{Kind: KindTransient, Repo: "a"}},
		{r + "a/_layers/sha384/" + hexA + "/link", PathInfo{Kind: KindOtherAlgorithm, Repo: "a"}},
		{r + "a/_manifests/tags/-bad/current/link", PathInfo{Repo: "a"}},
		{r + "Bad/_manifests/tags/t/current/link", PathInfo{}}, // invalid repository name
		{r + "../_manifests/tags/t/current/link", PathInfo{}},
		{r + "_manifests/tags/t/current/link", PathInfo{}},
		{r + "a/random", PathInfo{}},
		{"elsewhere/file", PathInfo{}},
	}
	for _, tt := range tests {
		if got := Classify(tt.path); got != tt.want {
			t.Errorf("Classify(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

func TestPathsRoundTrip(t *testing.T) {
	d, _ := ParseHex(hexA)
	for _, p := range []struct {
		path string
		kind Kind
	}{
		{BlobData(d), KindBlobData},
		{LayerDir("x/y", d) + "/link", KindLayerLink},
		{RevisionDir("x/y", d) + "/link", KindRevisionLink},
		{TagCurrentLink("x/y", "t"), KindTagCurrentLink},
		{TagIndexDir("x/y", "t", d) + "/link", KindTagIndexLink},
	} {
		if got := Classify(p.path); got.Kind != p.kind {
			t.Errorf("Classify(%q).Kind = %v, want %v", p.path, got.Kind, p.kind)
		}
	}
}

func TestParseLink(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"sha256:" + hexA, true},
		{"sha256:" + hexA + "\n", true},
		{"", false},
		{"garbage", false},
		{"sha256:" + strings.ToUpper(hexA), false},
		{"sha256:" + hexA[:63], false},
		{"sha512:" + hexA + hexA, false},
		{"md5:abc", false},
	} {
		_, err := ParseLink([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("ParseLink(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func TestParseReference(t *testing.T) {
	for _, tt := range []struct {
		in        string
		repo, tag string
		ok        bool
	}{
		{"alpine", "alpine", "", true},
		{"library/alpine:3.19", "library/alpine", "3.19", true},
		{"a__b/c-d---e:_x", "a__b/c-d---e", "_x", true},
		{"a.b_c/d", "a.b_c/d", "", true},
		{"Alpine", "", "", false},
		{"a/../b", "", "", false},
		{"a//b", "", "", false},
		{"/a", "", "", false},
		{"a:", "", "", false},
		{"a:-x", "", "", false},
		{"a:.x", "", "", false},
		{"a___b", "", "", false},
		{"a:" + strings.Repeat("t", 129), "", "", false},
		{"a:" + strings.Repeat("t", 128), "a", strings.Repeat("t", 128), true},
		{strings.Repeat("a", 256), "", "", false},
		{"a:b:c", "", "", false},
	} {
		repo, tag, err := ParseReference(tt.in)
		if (err == nil) != tt.ok || repo != tt.repo || tag != tt.tag {
			t.Errorf("ParseReference(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, repo, tag, err, tt.repo, tt.tag, tt.ok)
		}
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add([]byte("sha256:" + hexA))
	f.Add([]byte(""))
	f.Add([]byte("sha256:"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseLink(data)
		if err != nil {
			return
		}
		// What parses must print back to what it was, white space aside.
		if d.String() != strings.TrimSpace(string(data)) {
			t.Fatalf("ParseLink(%q) = %s", data, d)
		}
	})
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"a", "a/b:c", "a__b", "a/../b", "a:b:c", "", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		repo, _, err := ParseReference(s)
		if err != nil {
			return
		}
		// A valid name can never leave the repositories directory or name a reserved one.
		for _, c := range strings.Split(repo, "/") {
			if c == "" || c == "." || c == ".." || strings.HasPrefix(c, "_") {
				t.Fatalf("ParseReference(%q) accepted repository %q", s, repo)
			}
		}
	})
}

func FuzzClassify(f *testing.F) {
	f.Add(RepositoriesDir + "/a/_layers/sha256/" + hexA + "/link")
	f.Add(BlobsDir + "/sha256/a3/" + hexA + "/data")
	f.Add(RepositoriesDir + "/a/_manifests/tags/t/index/sha256/" + hexA + "/link")
	f.Fuzz(func(t *testing.T, p string) {
		info := Classify(p)
		if info.Repo != "" && ValidRepository(info.Repo) != nil {
			t.Fatalf("Classify(%q) gave invalid repository %q", p, info.Repo)
		}
		switch info.Kind {
		case KindBlobData:
			if BlobData(info.Digest) != p {
				t.Fatalf("Classify(%q): blob path does not round-trip", p)
			}
		case KindRevisionLink:
			if RevisionDir(info.Repo, info.Digest)+"/link" != p {
				t.Fatalf("Classify(%q): revision path does not round-trip", p)
			}
		case KindLayerLink:
			if LayerDir(info.Repo, info.Digest)+"/link" != p {
				t.Fatalf("Classify(%q): layer path does not round-trip", p)
			}
		}
	})
}

func TestLeafFile(t *testing.T) {
	d, _ := ParseHex(hexA)
	for dir, want := range map[string]string{
		BlobDir(d):                         "data",
		LayerDir("a/b", d):                 "link",
		RevisionDir("a", d):                "link",
		TagIndexDir("a", "t", d):           "link",
		TagDir("a", "t") + "/current":      "link",
		TagDir("a", "t"):                   "",
		TagDir("a", "t") + "/index":        "",
		RepoDir("a") + "/_layers/sha256":   "",
		Sha256BlobsDir + "/a3":             "",
		Sha256BlobsDir + "/ff/" + hexA:     "",
		RepoDir("current"):                 "",
		RepoDir("x") + "/_uploads/" + hexA: "",
		BlobsDir + "/sha512/a3/" + hexA:    "",
		// Repositories whose names look like reserved paths are no leaves.
		RepoDir("x/revisions/sha256/" + hexA): "",
		RepoDir("a/tags/v1/current"):          "",
		RepoDir("a/b/_layers/sha256/" + hexA): "link",
	} {
		if got := LeafFile(dir); got != want {
			t.Errorf("LeafFile(%q) = %q, want %q", dir, got, want)
		}
	}
}
