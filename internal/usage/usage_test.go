package usage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
)

// dg is a digest named by a small number.
func dg(n int) layout.Digest {
	var d layout.Digest
	d[0], d[1] = byte(n>>8), byte(n)
	return d
}

// spec describes a storage tersely; blob n is n bytes unless sizes says otherwise.
type spec struct {
	stored    map[int]int64 // blob -> size
	manifests map[int]*manifest.Manifest
	bad       map[int]bool // manifests that cannot be understood
	revisions map[string][]int
	layers    map[string][]int
	tags      map[string]map[string]int
	opaque    map[string]string
	blind     []string
}

func newSpec() *spec {
	return &spec{stored: map[int]int64{}, manifests: map[int]*manifest.Manifest{}, bad: map[int]bool{},
		revisions: map[string][]int{}, layers: map[string][]int{}, tags: map[string]map[string]int{}, opaque: map[string]string{}}
}

func (s *spec) blob(ns ...int) *spec {
	for _, n := range ns {
		s.stored[n] = int64(n)
	}
	return s
}

// image stores manifest m referencing blobs, a revision of repo with its layer links.
func (s *spec) image(repo string, m int, blobs ...int) *spec {
	mf := &manifest.Manifest{Type: manifest.OCIManifest}
	for _, b := range blobs {
		mf.Blobs = append(mf.Blobs, dg(b))
		s.blob(b)
		s.layers[repo] = append(s.layers[repo], b)
	}
	s.manifests[m] = mf
	s.blob(m)
	s.revisions[repo] = append(s.revisions[repo], m)
	return s
}

func (s *spec) index(repo string, m int, children ...int) *spec {
	mf := &manifest.Manifest{Type: manifest.OCIIndex}
	for _, c := range children {
		mf.Children = append(mf.Children, dg(c))
	}
	s.manifests[m] = mf
	s.blob(m)
	s.revisions[repo] = append(s.revisions[repo], m)
	return s
}

func (s *spec) tag(repo, tag string, m int) *spec {
	if s.tags[repo] == nil {
		s.tags[repo] = map[string]int{}
	}
	s.tags[repo][tag] = m
	return s
}

func (s *spec) build() *inventory.Inventory {
	b := inventory.NewBuilder("test")
	for n, size := range s.stored {
		b.Blob(dg(n), size, 1)
	}
	b.BlobsDone()
	repos := map[string]bool{}
	for r := range s.revisions {
		repos[r] = true
	}
	for r := range s.layers {
		repos[r] = true
	}
	for r := range s.tags {
		repos[r] = true
	}
	for r := range repos {
		b.Repo(r, func(ir *inventory.Repo) { ir.Opaque = s.opaque[r] })
		for _, m := range s.revisions[r] {
			b.Revision(r, dg(m), 1)
		}
		for _, l := range s.layers[r] {
			b.Layer(r, dg(l), 1)
		}
		for t, m := range s.tags[r] {
			b.TagCurrent(r, t, dg(m), 1)
			b.TagIndex(r, t, dg(m), 1)
		}
	}
	for _, p := range s.blind {
		b.Blind(p)
	}
	inv := b.Build()
	for n, m := range s.manifests {
		if s.bad[n] {
			inv.SetManifest(dg(n), nil, errors.New("unknown media type"))
			continue
		}
		inv.SetManifest(dg(n), m, nil)
	}
	return inv
}

// rows renders the figures as "name tags/manifests/blobs bytes=B unique=U shared=S [lower bound]".
func rows(u *Usage) []string {
	var out []string
	for _, r := range u.Repos {
		s := fmt.Sprintf("%s %d/%d/%d bytes=%d unique=%d shared=%d", r.Name, r.Tags, r.Manifests, r.Blobs, r.Bytes, r.UniqueBytes, r.SharedBytes)
		if r.LowerBound != "" {
			s += " (lower bound)"
		}
		out = append(out, s)
	}
	return out
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name   string
		spec   func() *spec
		want   []string
		totals Totals
		notes  []string // substrings
	}{
		{
			name: "two repositories share a layer; sorted by unique bytes",
			spec: func() *spec {
				return newSpec().
					image("a", 100, 1, 10, 50).tag("a", "v1", 100).
					image("b", 200, 2, 20, 50).tag("b", "v1", 200).tag("b", "latest", 200)
			},
			want: []string{
				"b 2/1/4 bytes=272 unique=222 shared=50",
				"a 1/1/4 bytes=161 unique=111 shared=50",
			},
			totals: Totals{Repositories: 2, Blobs: 7, Bytes: 383, ReferencedBlobs: 7, ReferencedBytes: 383},
		},
		{
			name: "an index counts its children and their blobs once; an untagged revision counts",
			spec: func() *spec {
				return newSpec().
					image("a", 100, 1, 10).image("a", 101, 1, 11).index("a", 300, 100, 101).tag("a", "multi", 300).
					image("a", 102, 3, 12). // untagged
					image("b", 101, 1, 11).tag("b", "arm", 101)
			},
			want: []string{
				"a 1/4/9 bytes=640 unique=527 shared=113",
				"b 1/1/3 bytes=113 unique=0 shared=113",
			},
			totals: Totals{Repositories: 2, Blobs: 9, Bytes: 640, ReferencedBlobs: 9, ReferencedBytes: 640},
		},
		{
			name: "a blob another repository only links is not freed by -x; it is referenced by nobody else",
			spec: func() *spec {
				s := newSpec().image("a", 100, 1, 10).tag("a", "v1", 100).blob(7)
				s.layers["b"] = []int{10, 7} // b links a's layer and a blob no manifest names
				return s
			},
			want: []string{
				"a 1/1/3 bytes=111 unique=101 shared=10",
				"b 0/0/0 bytes=0 unique=0 shared=0",
			},
			totals: Totals{Repositories: 2, Blobs: 4, Bytes: 118, ReferencedBlobs: 3, ReferencedBytes: 111, UnreferencedBlobs: 1, UnreferencedBytes: 7},
		},
		{
			name: "garbage: an untagged image's blobs count for its repository, a blob nobody names does not",
			spec: func() *spec {
				return newSpec().image("a", 100, 1, 10).blob(5, 6)
			},
			want:   []string{"a 0/1/3 bytes=111 unique=111 shared=0"},
			totals: Totals{Repositories: 1, Blobs: 5, Bytes: 122, ReferencedBlobs: 3, ReferencedBytes: 111, UnreferencedBlobs: 2, UnreferencedBytes: 11},
		},
		{
			name: "a manifest that cannot be understood: its repository's links count, as a lower bound",
			spec: func() *spec {
				s := newSpec().image("a", 100, 1, 10).image("a", 101, 2, 20).tag("a", "v1", 100).
					image("b", 200, 3, 20).tag("b", "v1", 200)
				s.bad[101] = true // its references 2 and 20 are known only by a's links
				return s
			},
			want: []string{
				"a 1/2/6 bytes=234 unique=214 shared=20 (lower bound)",
				"b 1/1/3 bytes=223 unique=203 shared=20",
			},
			totals: Totals{Repositories: 2, Blobs: 8, Bytes: 437, ReferencedBlobs: 8, ReferencedBytes: 437},
		},
		{
			name: "an opaque repository is a lower bound",
			spec: func() *spec {
				s := newSpec().image("a", 100, 1, 10).tag("a", "v1", 100)
				s.opaque["a"] = "tag x has an unreadable current link"
				return s
			},
			want:   []string{"a 1/1/3 bytes=111 unique=111 shared=0 (lower bound)"},
			totals: Totals{Repositories: 1, Blobs: 3, Bytes: 111, ReferencedBlobs: 3, ReferencedBytes: 111},
		},
		{
			name: "a blob of unknown size counts 0 and makes a lower bound",
			spec: func() *spec {
				s := newSpec().image("a", 100, 1, 10).tag("a", "v1", 100)
				s.stored[10] = -1
				return s
			},
			want:   []string{"a 1/1/3 bytes=101 unique=101 shared=0 (lower bound)"},
			totals: Totals{Repositories: 1, Blobs: 3, Bytes: 101, ReferencedBlobs: 3, ReferencedBytes: 101, UnknownSizes: 1},
			notes:  []string{"size of 1 blobs could not be read"},
		},
		{
			name: "a missing blob takes no space and is no lower bound; a blind scan is noted",
			spec: func() *spec {
				s := newSpec().image("a", 100, 1, 10).tag("a", "v1", 100)
				delete(s.stored, 10)
				s.blind = []string{"docker/registry/v2/repositories/x/link"}
				return s
			},
			want:   []string{"a 1/1/2 bytes=101 unique=101 shared=0"},
			totals: Totals{Repositories: 1, Blobs: 2, Bytes: 101, ReferencedBlobs: 2, ReferencedBytes: 101},
			notes:  []string{"cannot see behind 1 entries"},
		},
		{
			name: "a manifest that is also another's blob is still followed",
			spec: func() *spec {
				s := newSpec().image("a", 100, 1, 10).image("a", 200, 100, 2).tag("a", "v1", 200)
				return s
			},
			want:   []string{"a 1/2/5 bytes=313 unique=313 shared=0"},
			totals: Totals{Repositories: 1, Blobs: 5, Bytes: 313, ReferencedBlobs: 5, ReferencedBytes: 313},
		},
		{
			name: "an index child the repository does not link still counts, with its blobs",
			spec: func() *spec {
				s := newSpec().index("a", 300, 100).tag("a", "multi", 300).blob(100, 1, 10)
				s.manifests[100] = &manifest.Manifest{Type: manifest.OCIManifest, Blobs: []layout.Digest{dg(1), dg(10)}}
				return s
			},
			want:   []string{"a 1/1/4 bytes=411 unique=411 shared=0"},
			totals: Totals{Repositories: 1, Blobs: 4, Bytes: 411, ReferencedBlobs: 4, ReferencedBytes: 411},
		},
		{
			name:   "empty storage",
			spec:   newSpec,
			totals: Totals{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := Compute(tc.spec().build())
			if got := rows(u); !slices.Equal(got, tc.want) {
				t.Errorf("rows:\n got %q\nwant %q", got, tc.want)
			}
			if u.Totals != tc.totals {
				t.Errorf("totals:\n got %+v\nwant %+v", u.Totals, tc.totals)
			}
			all := strings.Join(u.Notes, "\n")
			for _, n := range tc.notes {
				if !strings.Contains(all, n) {
					t.Errorf("notes %q lack %q", u.Notes, n)
				}
			}
			if len(tc.notes) == 0 && len(u.Notes) > 0 {
				t.Errorf("notes %q, want none", u.Notes)
			}
		})
	}
}

// TestUniqueIsWhatRemoveFrees checks, on random storages, that a repository's
// unique bytes are exactly what the plan of "-x REPOSITORY --grace 0" deletes,
// garbage (blobs nobody references or links) aside.
func TestUniqueIsWhatRemoveFrees(t *testing.T) {
	now := time.Unix(1e9, 0)
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newSpec()
		repos := []string{"a", "b", "c", "d/e"}
		pool := 40 + rng.IntN(40)
		next := 1000
		for _, r := range repos {
			var images []int
			for range rng.IntN(4) {
				var blobs []int
				for range 1 + rng.IntN(4) {
					blobs = append(blobs, 1+rng.IntN(pool)) // layers shared at random
				}
				next++
				s.image(r, next, blobs...)
				images = append(images, next)
				if rng.IntN(3) > 0 {
					s.tag(r, fmt.Sprint("t", next), next)
				}
			}
			if len(images) > 1 && rng.IntN(2) == 0 {
				next++
				s.index(r, next, images[:2]...).tag(r, "multi", next)
			}
			if len(images) > 0 && rng.IntN(4) == 0 {
				// Another repository's manifest, linked here too (a cross mount).
				o := repos[rng.IntN(len(repos))]
				if len(s.revisions[o]) > 0 && o != r {
					m := s.revisions[o][0]
					s.revisions[r] = append(s.revisions[r], m)
					for _, b := range s.manifests[m].Blobs {
						s.layers[r] = append(s.layers[r], int(b[0])<<8|int(b[1]))
					}
				}
			}
		}
		for range rng.IntN(3) {
			s.blob(500 + rng.IntN(100)) // garbage
		}
		inv := s.build()
		u := Compute(inv)
		for _, r := range u.Repos {
			p := plan.Make(inv, plan.Policy{Select: []plan.Selector{{Repo: r.Name}}, Remove: true, Now: now, UploadAge: time.Hour})
			var freed int64
			for d := range p.All() {
				if d.Kind == plan.Blob {
					freed += d.Bytes
				}
			}
			if want := r.UniqueBytes + u.Totals.UnreferencedBytes; freed != want {
				t.Fatalf("seed %d: -x %s frees %d bytes; unique %d + unreferenced %d = %d", seed, r.Name, freed,
					r.UniqueBytes, u.Totals.UnreferencedBytes, want)
			}
		}
		var sum int64
		for _, r := range u.Repos {
			if r.Bytes != r.UniqueBytes+r.SharedBytes || r.UniqueBytes < 0 || r.SharedBytes < 0 {
				t.Fatalf("seed %d: %+v does not add up", seed, r)
			}
			sum += r.UniqueBytes
		}
		if tt := u.Totals; sum > tt.ReferencedBytes || tt.ReferencedBytes+tt.UnreferencedBytes != tt.Bytes {
			t.Fatalf("seed %d: totals %+v, unique sum %d", seed, tt, sum)
		}
	}
}
