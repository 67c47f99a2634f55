package online

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

func dg(n byte) layout.Digest { return layout.Digest{n} }

func TestNeeded(t *testing.T) {
	since := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	before, after := since.Add(-time.Hour), since.Add(time.Minute)
	// Manifests: 10 = config 1 + layers 2, 3; 20 = index of 10 and 11; 11 = config 4;
	// 30 = garbage.
	manifests := map[layout.Digest]*manifest.Manifest{
		dg(10): {Blobs: []layout.Digest{dg(1), dg(2), dg(3)}},
		dg(11): {Blobs: []layout.Digest{dg(4)}},
		dg(20): {Children: []layout.Digest{dg(10), dg(11)}},
	}
	read := func(d layout.Digest) (*manifest.Manifest, error) {
		if d == dg(30) {
			return nil, manifest.ErrUnknown
		}
		if m, ok := manifests[d]; ok {
			return m, nil
		}
		return nil, storage.ErrNotExist
	}
	type q struct {
		blobs     []byte
		revisions []string // "repo:n"
		layers    []string
		tags      []string // "repo:tag"
	}
	rd := func(s string) repoDigest {
		var repo string
		var n byte
		fmt.Sscanf(s, "%1s:%d", &repo, &n)
		return repoDigest{repo, dg(n)}
	}
	cases := []struct {
		name    string
		q       q
		revs    map[string]time.Time
		tags    map[string]time.Time // "repo:tag" -> time; targets below
		targets map[string]byte
		layers  []string
		// written: tags the run moved whose current link a push wrote after the
		// scan, with the targets of those links in the quarantine.
		written      []string
		movedTargets map[string]byte
		want         []string // "kind subject"
		blind        bool
	}{
		{name: "nothing new", q: q{blobs: []byte{2, 3}, layers: []string{"a:2"}},
			revs: map[string]time.Time{"a:10": before}},
		{name: "new revision needs quarantined layers and their links",
			q:    q{blobs: []byte{2, 3}, layers: []string{"a:2", "a:3"}},
			revs: map[string]time.Time{"a:10": after},
			want: []string{"blob 2", "layer-link a:2", "blob 3", "layer-link a:3"}},
		{name: "a live layer link keeps its own link; only the blob comes back",
			q:      q{blobs: []byte{2}, layers: []string{"a:2"}},
			revs:   map[string]time.Time{"a:10": after},
			layers: []string{"a:2"},
			want:   []string{"blob 2"}},
		{name: "tag moved onto a quarantined revision",
			q:       q{blobs: []byte{10, 1, 2, 3}, revisions: []string{"a:10"}, layers: []string{"a:1", "a:2", "a:3"}},
			tags:    map[string]time.Time{"a:t": after},
			targets: map[string]byte{"a:t": 10},
			want:    []string{"revision a:10", "blob 10", "blob 1", "layer-link a:1", "blob 2", "layer-link a:2", "blob 3", "layer-link a:3"}},
		{name: "old tag is not a root",
			q:       q{blobs: []byte{10}, revisions: []string{"a:10"}},
			tags:    map[string]time.Time{"a:t": before},
			targets: map[string]byte{"a:t": 10}},
		{name: "revision written again after the move (old time kept by a rename)",
			q:    q{blobs: []byte{1}, revisions: []string{"a:10"}},
			revs: map[string]time.Time{"a:10": before},
			want: []string{"blob 1"}},
		{name: "revision of a quarantined manifest blob",
			q:    q{blobs: []byte{10}},
			revs: map[string]time.Time{"b:10": before},
			want: []string{"blob 10"}},
		{name: "index brings its children's revisions",
			q:    q{blobs: []byte{11, 4}, revisions: []string{"a:11"}, layers: []string{"a:4"}},
			revs: map[string]time.Time{"a:20": after, "a:10": before},
			want: []string{"revision a:11", "blob 11", "blob 4", "layer-link a:4"}},
		{name: "a live layer link to a quarantined blob: a push under way",
			q:      q{blobs: []byte{7}},
			layers: []string{"c:7"},
			want:   []string{"blob 7"}},
		{name: "a manifest that cannot be understood", q: q{blobs: []byte{1}},
			revs: map[string]time.Time{"a:30": after}, blind: true},
		{name: "a garbled tag", q: q{blobs: []byte{1}},
			tags: map[string]time.Time{"a:bad": after}, targets: map[string]byte{"a:bad": 0}, blind: true},
		{name: "a tag deleted meanwhile",
			tags: map[string]time.Time{"a:gone": after}},
		{name: "a tag the run moved after a push wrote it comes back with its image",
			q:            q{blobs: []byte{10, 1}, revisions: []string{"a:10"}, layers: []string{"a:1"}, tags: []string{"a:t"}},
			written:      []string{"a:t"},
			movedTargets: map[string]byte{"a:t": 10},
			want:         []string{"tag a:t", "revision a:10", "blob 10", "blob 1", "layer-link a:1"}},
		{name: "a moved tag written again since: the live one stands",
			q:            q{blobs: []byte{10}, revisions: []string{"a:10"}, tags: []string{"a:t"}},
			tags:         map[string]time.Time{"a:t": after},
			targets:      map[string]byte{"a:t": 10},
			written:      []string{"a:t"},
			movedTargets: map[string]byte{"a:t": 11},
			want:         []string{"revision a:10", "blob 10"}},
		{name: "a garbled moved tag", q: q{tags: []string{"a:t"}},
			written: []string{"a:t"}, movedTargets: map[string]byte{"a:t": 0}, blind: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			qc := &contents{blobs: map[layout.Digest]bool{}, revisions: map[repoDigest]bool{}, layers: map[repoDigest]bool{}, tags: map[repoTag]bool{}}
			for _, b := range c.q.blobs {
				qc.blobs[dg(b)] = true
			}
			for _, s := range c.q.revisions {
				qc.revisions[rd(s)] = true
			}
			for _, s := range c.q.layers {
				qc.layers[rd(s)] = true
			}
			lv := &live{revisions: map[repoDigest]time.Time{}, tags: map[repoTag]time.Time{}, layers: map[repoDigest]bool{}}
			for s, tm := range c.revs {
				lv.revisions[rd(s)] = tm
			}
			for s, tm := range c.tags {
				lv.tags[repoTag{s[:1], s[2:]}] = tm
			}
			for _, s := range c.layers {
				lv.layers[rd(s)] = true
			}
			for _, s := range c.q.tags {
				qc.tags[repoTag{s[:1], s[2:]}] = true
			}
			written := map[repoTag]bool{}
			for _, s := range c.written {
				written[repoTag{s[:1], s[2:]}] = true
			}
			targetIn := func(targets map[string]byte) func(repoTag) (layout.Digest, error) {
				return func(rt repoTag) (layout.Digest, error) {
					n, ok := targets[rt.repo+":"+rt.tag]
					switch {
					case !ok:
						return layout.Digest{}, storage.ErrNotExist
					case n == 0:
						return layout.Digest{}, errors.New("garbled")
					}
					return dg(n), nil
				}
			}
			items, err := needed(qc, lv, since, written, targetIn(c.targets), targetIn(c.movedTargets), read)
			if c.blind {
				if !errors.Is(err, ErrBlind) {
					t.Fatalf("got %v, want ErrBlind", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				s := it.KindName() + " "
				if it.Repo != "" {
					s += it.Repo + ":"
				}
				if it.Tag != "" {
					got = append(got, s+it.Tag)
				} else {
					got = append(got, s+fmt.Sprint(it.Digest[0]))
				}
				if it.Why == "" {
					t.Errorf("%s has no reason", s)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("put back %q\nwant     %q", got, c.want)
			}
		})
	}
}
