package plan

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
)

// tagAt tags current in repo, pushed age ago (a negative age: time unknown).
func (b inv) tagAt(repo, tag string, current int, age time.Duration) inv {
	b.tag(repo, tag, current)
	t := b.Repos[repo].Tags[tag]
	t.CurrentModTime = inventory.ToTime(now.Add(-age))
	if age < 0 {
		t.CurrentModTime = 0
	}
	return b
}

// sig is the cosign signature tag of manifest n.
func sig(n int, suffix string) string { return "sha256-" + dg(n).Hex() + suffix }

func mustPolicy(t *testing.T, yml string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("policy.yml", []byte(yml))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

func keepLast(t *testing.T, n int) *policy.Policy {
	t.Helper()
	p, err := policy.FromFlags(policy.Flags{KeepLast: &n})
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

func TestRetention(t *testing.T) {
	h, d := time.Hour, 24*time.Hour
	tests := []struct {
		name   string
		inv    func() inv
		policy func(t *testing.T) *policy.Policy
		grace  time.Duration
		orphan bool
		want   []string
	}{{
		name: "keep-last 2 of 4: the two oldest tags go, with what only they kept",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).image("a", 3, 30).image("a", 4, 40, 10).
				tagAt("a", "t1", 1, 4*d).tagAt("a", "t2", 2, 3*d).tagAt("a", "t3", 3, 2*d).tagAt("a", "t4", 4, d)
		},
		policy: func(t *testing.T) *policy.Policy { return keepLast(t, 2) },
		want: []string{"blob #1", "blob #2", "blob #20", "layer-link a #20",
			"revision a #1", "revision a #2", "tag a:t1", "tag a:t2"},
	}, {
		name: "equal push times: the name decides, descending",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).image("a", 3, 30).
				tagAt("a", "x", 1, d).tagAt("a", "y", 2, d).tagAt("a", "z", 3, d)
		},
		policy: func(t *testing.T) *policy.Policy { return keepLast(t, 2) },
		want:   []string{"blob #1", "blob #10", "layer-link a #10", "revision a #1", "tag a:x"},
	}, {
		name: "N larger than the tag count: nothing goes",
		inv: func() inv {
			return newInv().image("a", 1, 10).tagAt("a", "t", 1, 100*d)
		},
		policy: func(t *testing.T) *policy.Policy { return keepLast(t, 5) },
		want:   nil,
	}, {
		name: "a sibling tag on the same digest keeps the manifest",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).
				tagAt("a", "old", 1, 10*d).tagAt("a", "latest", 1, 10*d).tagAt("a", "new", 2, h)
		},
		policy: func(t *testing.T) *policy.Policy {
			return mustPolicy(t, "rules:\n  - repositories: [\"**\"]\n    keep-last: 1\n    keep-tags: [latest]\n")
		},
		want: []string{"tag a:old"},
	}, {
		name: "selection: unselected tags stay, keep-tags keeps a selected one",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).image("a", 3, 30).image("a", 4, 40).
				tagAt("a", "main", 1, 30*d).tagAt("a", "pr-1", 2, 20*d).tagAt("a", "pr-keep", 3, 10*d).tagAt("a", "pr-3", 4, d)
		},
		policy: func(t *testing.T) *policy.Policy {
			return mustPolicy(t, "rules:\n  - repositories: [\"**\"]\n    tags: \"pr-.*\"\n    keep-last: 1\n    keep-tags: [pr-keep]\n")
		},
		want: []string{"blob #2", "blob #20", "layer-link a #20", "revision a #2", "tag a:pr-1"},
	}, {
		name: "keep-within, and an unknown push time counts as now",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).image("a", 3, 30).
				tagAt("a", "old", 1, 40*d).tagAt("a", "recent", 2, 2*d).tagAt("a", "unknown", 3, -1)
		},
		policy: func(t *testing.T) *policy.Policy {
			return mustPolicy(t, "rules:\n  - repositories: [\"**\"]\n    keep-within: 30d\n")
		},
		want: []string{"blob #1", "blob #10", "layer-link a #10", "revision a #1", "tag a:old"},
	}, {
		name: "the grace period keeps a young tag the rule would delete",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).
				tagAt("a", "young", 1, 10*time.Minute).tagAt("a", "younger", 2, time.Minute)
		},
		policy: func(t *testing.T) *policy.Policy { return keepLast(t, 0) },
		grace:  h,
		want:   nil,
	}, {
		name: "a deleted multi-arch tag takes its children; a kept one keeps them",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).index("a", 3, 1, 2).
				image("a", 4, 40).image("a", 5, 50).index("a", 6, 4, 5).
				tagAt("a", "old", 3, 2*d).tagAt("a", "new", 6, d)
		},
		policy: func(t *testing.T) *policy.Policy { return keepLast(t, 1) },
		want: []string{"blob #1", "blob #10", "blob #2", "blob #20", "blob #3", "layer-link a #10", "layer-link a #20",
			"revision a #1", "revision a #2", "revision a #3", "tag a:old"},
	}, {
		name: "signature tags: never counted, gone with a deleted subject, kept with a kept one",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).image("a", 7, 70).image("a", 8, 80).
				tagAt("a", "old", 1, 2*d).tagAt("a", "new", 2, d).
				tagAt("a", sig(1, ".sig"), 7, h).tagAt("a", sig(2, ".sig"), 8, h)
		},
		policy: func(t *testing.T) *policy.Policy { return keepLast(t, 1) },
		want: []string{"blob #1", "blob #10", "blob #7", "blob #70", "layer-link a #10", "layer-link a #70",
			"revision a #1", "revision a #7", "tag a:" + sig(1, ".sig"), "tag a:old"},
	}, {
		name: "the untagged purge takes the signatures of what it deletes, also without retention",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).image("a", 7, 70).
				tagAt("a", "t", 2, d).tagAt("a", sig(1, ""), 7, d)
		},
		want: []string{"blob #1", "blob #10", "blob #7", "blob #70", "layer-link a #10", "layer-link a #70",
			"revision a #1", "revision a #7", "tag a:" + sig(1, "")},
	}, {
		name: "signature of a signature: both go",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).image("a", 7, 70).image("a", 8, 80).
				tagAt("a", "old", 1, 2*d).tagAt("a", "new", 2, d).
				tagAt("a", sig(1, ".sig"), 7, h).tagAt("a", sig(7, ".att"), 8, h)
		},
		policy: func(t *testing.T) *policy.Policy { return keepLast(t, 1) },
		want: []string{"blob #1", "blob #10", "blob #7", "blob #70", "blob #8", "blob #80",
			"layer-link a #10", "layer-link a #70", "layer-link a #80",
			"revision a #1", "revision a #7", "revision a #8", "tag a:" + sig(1, ".sig"), "tag a:" + sig(7, ".att"), "tag a:old"},
	}, {
		name: "orphan signatures stay by default",
		inv: func() inv {
			return newInv().image("sigs", 7, 70).tagAt("sigs", sig(99, ".sig"), 7, d)
		},
		want: nil,
	}, {
		name: "orphan signatures go on request, unless another repository holds the subject",
		inv: func() inv {
			return newInv().image("sigs", 7, 70).image("sigs", 8, 80).image("app", 5, 50).tagAt("app", "t", 5, d).
				tagAt("sigs", sig(99, ".sig"), 7, d).tagAt("sigs", sig(5, ".sig"), 8, d)
		},
		orphan: true,
		want:   []string{"blob #7", "blob #70", "layer-link sigs #70", "revision sigs #7", "tag sigs:" + sig(99, ".sig")},
	}, {
		name: "nested repositories are repositories of their own; the first matching rule applies",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 20).tagAt("a", "x", 1, 2*d).tagAt("a", "y", 2, d).
				image("a/b", 3, 30).image("a/b", 4, 40).tagAt("a/b", "x", 3, 2*d).tagAt("a/b", "y", 4, d).
				image("c", 5, 50).image("c", 6, 60).tagAt("c", "x", 5, 2*d).tagAt("c", "y", 6, d)
		},
		policy: func(t *testing.T) *policy.Policy {
			return mustPolicy(t, "rules:\n  - repositories: [\"a/*\"]\n    keep-last: 1\n  - repositories: [\"c\", \"a/**\"]\n    keep-last: 5\n")
		},
		want: []string{"blob #3", "blob #30", "layer-link a/b #30", "revision a/b #3", "tag a/b:x"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := Policy{Now: now, Grace: tt.grace, DeleteOrphanSignatures: tt.orphan}
			if tt.policy != nil {
				pol.Retention = tt.policy(t)
			}
			p := Make(tt.inv().build(), pol)
			got := render(p)
			sort.Strings(tt.want)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			for del := range p.All() {
				if del.Reason == Retention && !strings.Contains(del.Why(), "pushed") && !strings.Contains(del.Why(), "unknown") {
					t.Errorf("retention deletion %s says no push time: %q", del.Subject(), del.Why())
				}
			}
		})
	}
}

// Retention reasons name the rule and what the tag missed.
func TestRetentionReason(t *testing.T) {
	d := 24 * time.Hour
	b := newInv().image("a", 1, 10).image("a", 2, 20).tagAt("a", "old", 1, 45*d).tagAt("a", "new", 2, d)
	pol := mustPolicy(t, "rules:\n  - repositories: [\"**\"]\n    keep-last: 1\n    keep-within: 30d\n")
	p := Make(b.build(), Policy{Now: now, Retention: pol})
	for del := range p.All() {
		if del.Kind != Tag {
			continue
		}
		why := del.Why()
		for _, want := range []string{"rule 1", "not the most recent", "pushed 45d ago", "not within 30d"} {
			if !strings.Contains(why, want) {
				t.Errorf("reason %q lacks %q", why, want)
			}
		}
		if p.KeptTags["a"] != 1 {
			t.Errorf("kept tags of a = %d, want 1", p.KeptTags["a"])
		}
		return
	}
	t.Fatal("no tag deleted")
}

// A tag left without current link or history by an interrupted deletion (which the
// registry still lists) is removed, unless it is young: a tag being created looks
// the same for an instant.
func TestTagRemnant(t *testing.T) {
	h := time.Hour
	for _, tt := range []struct {
		name  string
		age   time.Duration // of its directory; negative: unknown
		grace time.Duration
		gone  bool
	}{
		{"quiesced", -1, 0, true},
		{"old, with a grace period", 2 * h, h, true},
		{"young, with a grace period", time.Minute, h, false},
		{"unknown time, with a grace period", -1, h, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newInv().image("a", 1, 10).tag("a", "t", 1)
			b.repo("a").Tags["ghost"] = &specTag{}
			iv := b.build()
			if tt.age >= 0 {
				// Its directory's time, as Complete records it.
				iv.Repos["a"].Tags["ghost"].CurrentModTime = inventory.ToTime(now.Add(-tt.age))
			}
			got := strings.Join(render(Make(iv, Policy{Now: now, Grace: tt.grace})), ", ")
			if want := map[bool]string{true: "tag a:ghost", false: ""}[tt.gone]; got != want {
				t.Errorf("plan %q, want %q", got, want)
			}
		})
	}
}
