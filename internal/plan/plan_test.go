package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/manifest"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// dg is a digest named by a small number, printed back as "#n" in expectations.
func dg(n int) layout.Digest {
	var d layout.Digest
	d[0], d[1] = byte(n>>8), byte(n)
	return d
}

func name(d layout.Digest) string { return fmt.Sprintf("#%d", int(d[0])<<8|int(d[1])) }

// inv builds inventories tersely, as maps a test case can still edit; build turns
// them into a real inventory. Times are ages before now; 0 means "old" (a day).
type inv struct{ *spec }

type spec struct {
	Repos     map[string]*specRepo
	Blobs     map[layout.Digest]inventory.Blob
	Manifests map[layout.Digest]*specManifest
	Blind     []string
}

type link struct{ ModTime inventory.Time }

type specRepo struct {
	Revisions, Layers map[layout.Digest]link
	Tags              map[string]*specTag
	Uploads           map[string]*inventory.Upload
	Opaque            string
	Unknown           int
}

type specTag struct {
	Current        layout.Digest
	HasCurrent     bool
	CurrentModTime inventory.Time
	Index          map[layout.Digest]link
}

type specManifest struct {
	*manifest.Manifest
	Err error
}

func newInv() inv {
	return inv{&spec{
		Repos:     map[string]*specRepo{},
		Blobs:     map[layout.Digest]inventory.Blob{},
		Manifests: map[layout.Digest]*specManifest{},
	}}
}

// build records the spec through the inventory's builder, as a scan does.
func (b inv) build() *inventory.Inventory {
	bl := inventory.NewBuilder("test")
	for d, x := range b.Blobs {
		bl.Blob(d, x.Size, x.ModTime)
	}
	bl.BlobsDone()
	for name, r := range b.Repos {
		bl.Repo(name, func(ir *inventory.Repo) {
			ir.Opaque, ir.Unknown = r.Opaque, r.Unknown
			for id, u := range r.Uploads {
				ir.Uploads[id] = u
			}
		})
		for d, l := range r.Revisions {
			bl.Revision(name, d, l.ModTime)
		}
		for d, l := range r.Layers {
			bl.Layer(name, d, l.ModTime)
		}
		for tn, t := range r.Tags {
			bl.Tag(name, tn, false, 0)
			if t.HasCurrent {
				bl.TagCurrent(name, tn, t.Current, t.CurrentModTime)
			}
			for d, l := range t.Index {
				bl.TagIndex(name, tn, d, l.ModTime)
			}
		}
	}
	for _, p := range b.Blind {
		bl.Blind(p)
	}
	iv := bl.Build()
	for d, m := range b.Manifests {
		iv.SetManifest(d, m.Manifest, m.Err)
	}
	return iv
}

func old() inventory.Time { return inventory.ToTime(now.Add(-24 * time.Hour)) }

func (b inv) repo(name string) *specRepo {
	r := b.Repos[name]
	if r == nil {
		r = &specRepo{Revisions: map[layout.Digest]link{}, Layers: map[layout.Digest]link{},
			Tags: map[string]*specTag{}, Uploads: map[string]*inventory.Upload{}}
		b.Repos[name] = r
	}
	return r
}

func (b inv) blob(ns ...int) inv {
	for _, n := range ns {
		b.Blobs[dg(n)] = inventory.Blob{Size: int64(n), ModTime: old()}
	}
	return b
}

// image stores manifest m with config+layers blobs, linked into repo as a revision
// with its layer links.
func (b inv) image(repo string, m int, blobs ...int) inv {
	mf := &manifest.Manifest{Type: manifest.OCIManifest}
	for _, n := range blobs {
		mf.Blobs = append(mf.Blobs, dg(n))
		b.blob(n)
		b.repo(repo).Layers[dg(n)] = link{ModTime: old()}
	}
	return b.put(repo, m, mf)
}

func (b inv) index(repo string, m int, children ...int) inv {
	mf := &manifest.Manifest{Type: manifest.OCIIndex}
	for _, c := range children {
		mf.Children = append(mf.Children, dg(c))
	}
	return b.put(repo, m, mf)
}

func (b inv) referrer(repo string, m, subject int, blobs ...int) inv {
	b.image(repo, m, blobs...)
	b.Manifests[dg(m)].Subject = dg(subject)
	return b
}

func (b inv) put(repo string, m int, mf *manifest.Manifest) inv {
	b.blob(m)
	b.Manifests[dg(m)] = &specManifest{Manifest: mf}
	b.repo(repo).Revisions[dg(m)] = link{ModTime: old()}
	return b
}

func (b inv) tag(repo, tag string, current int, history ...int) inv {
	t := &specTag{Current: dg(current), HasCurrent: true, CurrentModTime: old(),
		Index: map[layout.Digest]link{dg(current): {ModTime: old()}}}
	for _, h := range history {
		t.Index[dg(h)] = link{ModTime: old()}
	}
	b.repo(repo).Tags[tag] = t
	return b
}

// render turns a plan into sorted lines like "revision a #3".
func render(p *Plan) []string {
	var out []string
	for d := range p.All() {
		s := d.Kind.String()
		if d.Repo != "" {
			s += " " + d.Repo
		}
		if d.Tag != "" {
			s += ":" + d.Tag
		}
		if d.Upload != "" {
			s += " " + d.Upload
		}
		if !d.Digest.IsZero() {
			s += " " + name(d.Digest)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestMake(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name     string
		inv      func() inv
		pol      Policy
		want     []string
		failures []string
	}{{
		name: "tagged image kept, untagged revision and its unique blobs deleted, shared blob kept",
		inv: func() inv {
			return newInv().image("a", 1, 10, 11).tag("a", "latest", 1).image("a", 2, 10, 12)
		},
		want: []string{"blob #12", "blob #2", "layer-link a #12", "revision a #2"},
	}, {
		name: "overwritten tag: history entry and old revision go",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 11).tag("a", "v1", 2, 1)
		},
		want: []string{"blob #1", "blob #10", "layer-link a #10", "revision a #1", "tag-history a:v1 #1"},
	}, {
		name: "untagged children of a tagged index are kept, to any depth",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 11).index("a", 3, 1).index("a", 4, 3, 2).tag("a", "multi", 4)
		},
		want: nil,
	}, {
		name: "untagged index goes with its children",
		inv: func() inv {
			return newInv().image("a", 1, 10).index("a", 3, 1).image("a", 5, 11).tag("a", "t", 5)
		},
		want: []string{"blob #1", "blob #10", "blob #3", "layer-link a #10", "revision a #1", "revision a #3"},
	}, {
		name: "referrers of kept subjects are kept, transitively; of deleted subjects deleted",
		inv: func() inv {
			return newInv().image("a", 1, 10).tag("a", "t", 1).
				referrer("a", 2, 1, 20).referrer("a", 3, 2, 30).
				image("a", 4, 40).referrer("a", 5, 4, 50)
		},
		want: []string{"blob #4", "blob #40", "blob #5", "blob #50", "layer-link a #40", "layer-link a #50",
			"revision a #4", "revision a #5"},
	}, {
		name: "a tagged referrer does not keep its untagged subject",
		inv: func() inv {
			return newInv().image("a", 1, 10).referrer("a", 2, 1, 20).tag("a", "sig", 2)
		},
		want: []string{"blob #1", "blob #10", "layer-link a #10", "revision a #1"},
	}, {
		name: "manifest tagged in one repository, untagged in another: deleted only from the other",
		inv: func() inv {
			return newInv().image("a", 1, 10).tag("a", "t", 1).image("b", 1, 10).image("b", 2, 11).tag("b", "t", 2)
		},
		want: []string{"layer-link b #10", "revision b #1"},
	}, {
		name: "an unreadable manifest keeps its repository whole",
		inv: func() inv {
			b := newInv().image("a", 1, 10).image("a", 2, 11).tag("a", "t", 1).image("a", 3, 12)
			b.Manifests[dg(3)] = &specManifest{Err: manifest.ErrUnknown}
			b.repo("a").Opaque = "manifest cannot be understood"
			return b
		},
		want: nil,
	}, {
		name: "a kept index whose child cannot be understood keeps the repository whole",
		inv: func() inv {
			b := newInv().image("a", 1, 10).index("a", 3, 1, 7).tag("a", "t", 3).image("a", 2, 11).blob(7)
			b.Manifests[dg(7)] = &specManifest{Err: errors.New("bad json")}
			return b
		},
		want: nil,
	}, {
		name: "grace keeps fresh revisions with their blobs, fresh links and fresh blobs",
		inv: func() inv {
			b := newInv().image("a", 1, 10).tag("a", "t", 1).image("a", 2, 11).image("a", 3, 12).blob(99, 98)
			b.repo("a").Revisions[dg(2)] = link{ModTime: inventory.ToTime(now.Add(-time.Minute))}
			b.Blobs[dg(99)] = inventory.Blob{Size: 99, ModTime: inventory.ToTime(now.Add(-time.Minute))}
			b.Blobs[dg(98)] = inventory.Blob{Size: 98} // time unknown: kept under a grace
			return b
		},
		pol:  Policy{Grace: time.Hour},
		want: []string{"blob #12", "blob #3", "layer-link a #12", "revision a #3"},
	}, {
		name: "without grace, unknown times do not protect",
		inv: func() inv {
			b := newInv().image("a", 1, 10).tag("a", "t", 1).blob(98)
			b.Blobs[dg(98)] = inventory.Blob{Size: 98}
			return b
		},
		want: []string{"blob #98"},
	}, {
		name: "-x repo removes everything of it but not a nested repository",
		inv: func() inv {
			return newInv().image("a", 1, 10).tag("a", "t", 1).image("a/b", 2, 10).tag("a/b", "t", 2)
		},
		pol:  Policy{Remove: true, Select: []Selector{{Repo: "a"}}},
		want: []string{"blob #1", "layer-link a #10", "repository a", "revision a #1", "tag a:t"},
	}, {
		name: "-x repo:tag keeps other tags on the same digest",
		inv: func() inv {
			return newInv().image("a", 1, 10).tag("a", "t1", 1).tag("a", "t2", 1)
		},
		pol:  Policy{Remove: true, Select: []Selector{{Repo: "a", Tag: "t1"}}},
		want: []string{"tag a:t1"},
	}, {
		name: "-x repo:tag of the last tag removes the repository",
		inv: func() inv {
			return newInv().image("a", 1, 10).tag("a", "t1", 1)
		},
		pol:  Policy{Remove: true, Select: []Selector{{Repo: "a", Tag: "t1"}}},
		want: []string{"blob #1", "blob #10", "layer-link a #10", "repository a", "revision a #1", "tag a:t1"},
	}, {
		name: "-x ignores the grace period",
		inv: func() inv {
			return newInv().image("a", 1, 10).tag("a", "t1", 1)
		},
		pol:  Policy{Remove: true, Grace: 1000 * day, Select: []Selector{{Repo: "a"}}},
		want: []string{"layer-link a #10", "repository a", "revision a #1", "tag a:t1"},
	}, {
		name: "a selection purges only the named repositories; blobs still swept everywhere",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 11).tag("a", "t", 1).
				image("b", 3, 12).image("b", 4, 13).tag("b", "t", 3).blob(77)
		},
		pol:  Policy{Select: []Selector{{Repo: "a"}}},
		want: []string{"blob #11", "blob #2", "blob #77", "layer-link a #11", "revision a #2"},
	}, {
		name: "unknown names are failures, the rest goes on",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("a", 2, 11).tag("a", "t", 1)
		},
		pol:      Policy{Select: []Selector{{Repo: "a"}, {Repo: "nope"}, {Repo: "a", Tag: "nope"}}},
		want:     []string{"blob #11", "blob #2", "layer-link a #11", "revision a #2"},
		failures: []string{"No such repository: nope", "No such tag: nope in repository a"},
	}, {
		name: "-x of a tag already gone is a failure; its repository is still cleaned (a rerun after a crash converges)",
		inv: func() inv {
			b := newInv().image("a", 1, 10).image("a", 2, 11).tag("a", "t", 2).image("b", 3, 12)
			return b
		},
		pol:      Policy{Remove: true, Select: []Selector{{Repo: "a", Tag: "gone"}}},
		want:     []string{"blob #1", "blob #10", "layer-link a #10", "revision a #1"},
		failures: []string{"No such tag: gone in repository a"},
	}, {
		name: "dangling links and revisions of missing blobs go",
		inv: func() inv {
			b := newInv().image("a", 1, 10).tag("a", "t", 1)
			b.repo("a").Layers[dg(50)] = link{ModTime: old()}
			b.repo("a").Revisions[dg(51)] = link{ModTime: old()}
			b.Manifests[dg(51)] = &specManifest{Err: fs.ErrNotExist}
			return b
		},
		want: []string{"layer-link a #50", "revision a #51"},
	}, {
		name: "a blind scan deletes no blob and no needed link to a blob it cannot see",
		inv: func() inv {
			b := newInv().image("a", 1, 10, 50).tag("a", "t", 1).image("a", 2, 11).blob(77)
			delete(b.Blobs, dg(50))
			b.Blind = []string{"docker/registry/v2/blobs/sha256/ab"}
			return b
		},
		want: []string{"layer-link a #11", "revision a #2"},
	}, {
		name: "a needed link to a missing blob is dangling when the scan sees everything",
		inv: func() inv {
			b := newInv().image("a", 1, 10, 50).tag("a", "t", 1)
			delete(b.Blobs, dg(50))
			return b
		},
		want: []string{"layer-link a #50"},
	}, {
		name: "a repository left with nothing is removed",
		inv: func() inv {
			return newInv().image("a", 1, 10).image("b", 2, 10).tag("b", "t", 2)
		},
		want: []string{"blob #1", "layer-link a #10", "repository a", "revision a #1"},
	}, {
		name: "a repository with unknown files is never removed as empty",
		inv: func() inv {
			b := newInv().image("a", 1, 10)
			b.repo("a").Unknown = 1
			return b
		},
		want: []string{"blob #1", "blob #10", "layer-link a #10", "revision a #1"},
	}, {
		name: "old uploads go; fresh ones and those without startedat stay",
		inv: func() inv {
			b := newInv().image("a", 1, 10).tag("a", "t", 1)
			r := b.repo("a")
			r.Uploads["old"] = &inventory.Upload{Files: []string{"data", "startedat"}, StartedAt: now.Add(-48 * time.Hour)}
			r.Uploads["new"] = &inventory.Upload{Files: []string{"data", "startedat"}, StartedAt: now.Add(-time.Minute)}
			r.Uploads["bad"] = &inventory.Upload{Files: []string{"data"}}
			return b
		},
		pol:  Policy{UploadAge: 24 * time.Hour},
		want: []string{"upload a old"},
	}, {
		name: "a tag without current link keeps its whole history",
		inv: func() inv {
			b := newInv().image("a", 1, 10).image("a", 2, 11).image("a", 3, 12).tag("a", "t", 3)
			b.repo("a").Tags["husk"] = &specTag{Index: map[layout.Digest]link{dg(1): {ModTime: old()}}}
			return b
		},
		want: []string{"blob #11", "blob #2", "layer-link a #11", "revision a #2"},
	}, {
		name: "a tag pointing at a manifest the repository does not link keeps that manifest's blobs",
		inv: func() inv {
			b := newInv().image("a", 1, 10).tag("a", "t", 1).image("b", 2, 11).tag("b", "t", 9)
			b.put("c", 9, &manifest.Manifest{Type: manifest.OCIManifest, Blobs: []layout.Digest{dg(11)}})
			delete(b.repo("c").Revisions, dg(9))
			return b
		},
		want: []string{"blob #2", "repository c", "revision b #2"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := tt.pol
			pol.Now = now
			p := Make(tt.inv().build(), pol)
			got := render(p)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("deletions:\n got: %q\nwant: %q", got, tt.want)
			}
			if strings.Join(p.Failures, "\n") != strings.Join(tt.failures, "\n") {
				t.Errorf("failures: got %q, want %q", p.Failures, tt.failures)
			}
			again := render(Make(tt.inv().build(), pol))
			if strings.Join(got, "\n") != strings.Join(again, "\n") {
				t.Errorf("plan is not deterministic")
			}
		})
	}
}

// TestPhaseOrder: what names an object is always deleted before the object.
func TestPhaseOrder(t *testing.T) {
	b := newInv().image("a", 1, 10).image("a", 2, 11).tag("a", "t", 1, 2)
	p := Make(b.build(), Policy{Now: now, Remove: true, Select: []Selector{{Repo: "a"}}})
	for i := 1; i < p.Len(); i++ {
		if p.At(i-1).Kind > p.At(i).Kind {
			t.Fatalf("deletion %d (%s) comes after %s", i, p.At(i).Kind, p.At(i-1).Kind)
		}
	}
	// Phase gives each kind's range: together they cover the plan, in Kinds order.
	next := 0
	for _, k := range Kinds {
		start, end := p.Phase(k)
		if start != next {
			t.Fatalf("phase %s starts at %d, want %d", k, start, next)
		}
		for i := start; i < end; i++ {
			if p.At(i).Kind != k {
				t.Fatalf("deletion %d in phase %s is a %s", i, k, p.At(i).Kind)
			}
		}
		next = end
	}
	if next != p.Len() || p.Len() == 0 {
		t.Fatalf("phases cover %d of %d deletions", next, p.Len())
	}
}

// What remains is weighed: a kept blob by its stored size where the storage told it,
// else by the size its manifests declare (the largest claim); a blob neither tells
// (a schema1 layer on a filesystem) is counted apart. Deleted blobs do not count.
func TestKeptBytes(t *testing.T) {
	b := newInv()
	b.put("a", 1, &manifest.Manifest{Type: manifest.OCIManifest,
		Blobs: []layout.Digest{dg(10), dg(11), dg(12)}, Sizes: []int64{999, 700, -1}})
	b.put("a", 2, &manifest.Manifest{Type: manifest.OCIManifest, // a smaller claim on 11
		Blobs: []layout.Digest{dg(11)}, Sizes: []int64{5}})
	b.tag("a", "t", 1)
	b.tag("a", "u", 2)
	b.Blobs[dg(10)] = inventory.Blob{Size: 100, ModTime: old()} // listed: the stored size, not the claim
	b.Blobs[dg(11)] = inventory.Blob{Size: -1, ModTime: old()}  // not stat'ed: a manifest's claim
	b.Blobs[dg(12)] = inventory.Blob{Size: -1, ModTime: old()}  // no claim: unknown
	b.blob(50)                                                  // unreferenced: deleted, not kept
	for _, id := range []int{10, 11, 12} {
		b.repo("a").Layers[dg(id)] = link{ModTime: old()}
	}
	p := Make(b.build(), Policy{Now: now})
	// Manifests 1 and 2 weigh their own sizes (1 and 2, as blob() records them).
	if p.KeptBlobs != 5 || p.KeptUnsized != 1 {
		t.Fatalf("kept %d blobs, %d of unknown size; want 5 and 1", p.KeptBlobs, p.KeptUnsized)
	}
	if p.KeptBytes != 1+2+100+700 {
		t.Fatalf("kept %d bytes, want 803", p.KeptBytes)
	}
}
