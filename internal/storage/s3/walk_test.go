package s3

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

func TestGroupPrefixesHex(t *testing.T) {
	const parent = "reg/docker/registry/v2/blobs/sha256/"
	var dirs []string
	for i := 255; i >= 0; i-- {
		dirs = append(dirs, fmt.Sprintf("%s%02x/", parent, i))
	}
	got := groupPrefixes(parent, dirs, 16)
	var want []string
	for _, c := range "0123456789abcdef" {
		want = append(want, parent+string(c))
	}
	if !slices.Equal(got, want) {
		t.Errorf("groupPrefixes(256 hex dirs, 16) = %q, want %q", got, want)
	}
	checkGroups(t, parent, dirs, got)
	// 64 jobs: no group of 16 directories next to single ones.
	if got := groupPrefixes(parent, dirs, 64); len(got) != 256 {
		t.Errorf("groupPrefixes(256 hex dirs, 64) = %d groups, want 256", len(got))
	}
}

func TestGroupPrefixesSmall(t *testing.T) {
	for _, tt := range []struct {
		dirs []string
		want int
		out  []string
	}{
		{[]string{"p/a/"}, 1, []string{"p/a/"}},
		{[]string{"p/a/"}, 16, []string{"p/a/"}},
		{[]string{"p/a/", "p/b/"}, 1, []string{"p/"}},
		{[]string{"p/a/", "p/b/"}, 2, []string{"p/a/", "p/b/"}},
		{[]string{"p/a/", "p/ab/", "p/abc/", "p/b/"}, 1, []string{"p/"}},
		{[]string{"p/a/", "p/ab/", "p/abc/", "p/b/"}, 2, []string{"p/a/", "p/ab", "p/b/"}},
		{[]string{"p/a/", "p/ab/", "p/abc/", "p/b/"}, 3, []string{"p/a/", "p/ab", "p/b/"}},
		{[]string{"p/a/", "p/ab/", "p/abc/", "p/b/"}, 9, []string{"p/a/", "p/ab/", "p/abc/", "p/b/"}},
		{nil, 4, nil},
	} {
		got := groupPrefixes("p/", tt.dirs, tt.want)
		if !slices.Equal(got, tt.out) {
			t.Errorf("groupPrefixes(%q, %d) = %q, want %q", tt.dirs, tt.want, got, tt.out)
		}
		checkGroups(t, "p/", tt.dirs, got)
	}
}

// TestGroupPrefixesRandom: whatever the names, the groups cover each directory once and
// never a name of another group.
func TestGroupPrefixesRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const parent = "r/repositories/"
	for round := 0; round < 300; round++ {
		seen := map[string]bool{}
		var dirs []string
		for n := rng.Intn(60); len(dirs) < n; {
			var b strings.Builder
			for l := 1 + rng.Intn(6); l > 0; l-- {
				b.WriteByte("ab-_0.9z"[rng.Intn(8)])
			}
			d := parent + b.String() + "/"
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
		want := 1 + rng.Intn(40)
		got := groupPrefixes(parent, dirs, want)
		checkGroups(t, parent, dirs, got)
		limit := (len(dirs) + want - 1) / want
		for _, g := range got {
			n := 0
			for _, d := range dirs {
				if strings.HasPrefix(d, g) {
					n++
				}
			}
			if n > limit {
				t.Errorf("group %q holds %d of %d dirs, want at most %d (%d groups wanted)", g, n, len(dirs), limit, want)
			}
		}
	}
}

func checkGroups(t *testing.T, parent string, dirs, groups []string) {
	t.Helper()
	for i, g := range groups {
		if !strings.HasPrefix(g, parent) {
			t.Errorf("group %q outside %q", g, parent)
		}
		for j, h := range groups {
			if i != j && strings.HasPrefix(h, g) {
				t.Errorf("group %q contains group %q", g, h)
			}
		}
	}
	for _, d := range dirs {
		n := 0
		for _, g := range groups {
			if strings.HasPrefix(d, g) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s is in %d groups of %q", d, n, groups)
		}
	}
}

func TestGroupLevel(t *testing.T) {
	level := map[string][]string{
		"p/x/": {"p/x/a/", "p/x/b/", "p/x/c/", "p/x/d/"},
		"p/y/": {"p/y/a/"},
	}
	got := groupLevel(level, 4)
	want := []shard{
		{prefix: "p/x/a/", parent: "p/x/"}, {prefix: "p/x/b/", parent: "p/x/"},
		{prefix: "p/x/c/", parent: "p/x/"}, {prefix: "p/x/d/", parent: "p/x/"},
		{prefix: "p/y/a/", parent: "p/y/"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("groupLevel = %+v, want %+v", got, want)
	}
	got = groupLevel(level, 1)
	want = []shard{{prefix: "p/x/", parent: "p/x/", group: true}, {prefix: "p/y/a/", parent: "p/y/"}}
	if !slices.Equal(got, want) {
		t.Errorf("groupLevel(1) = %+v, want %+v", got, want)
	}
}
