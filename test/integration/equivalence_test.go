package integration

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// generated is what generate pushed.
type generated struct {
	// tagged are the repo:tag references alive at the end.
	tagged []string
	// keptReferrers are untagged referrers whose subject stays tagged: clean-registry
	// keeps them, upstream (which knows no subjects) deletes them.
	keptReferrers []string // repo@digest
	// referrerBlobs are those referrers' own blobs.
	referrerBlobs []string
}

// generate pushes a random registry, determined by seed: nested repositories, Docker
// and OCI images, overwritten tags, several tags on one digest, untagged pushes,
// indexes and manifest lists (some overwritten), layers shared across repositories,
// referrers of kept and of untagged images. A manifest is never pushed to two
// repositories: there clean-registry deliberately differs from upstream.
func generate(t *testing.T, s *harness.Session, seed uint64) generated {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var g generated
	next := seed << 20 // a fresh seed for every image
	fresh := func() uint64 { next++; return next }
	formats := []harness.Format{harness.Docker, harness.OCI}
	pool := map[harness.Format][]v1.Layer{}
	for _, f := range formats {
		for i := range 8 {
			pool[f] = append(pool[f], harness.Layer(harness.Derive(seed, "pool-"+f.String(), i), f))
		}
	}
	image := func(f harness.Format) v1.Image {
		var layers []v1.Layer
		for range 1 + rng.IntN(3) {
			if rng.IntN(10) < 4 {
				layers = append(layers, pool[f][rng.IntN(len(pool[f]))])
			} else {
				layers = append(layers, harness.Layer(fresh(), f))
			}
		}
		return harness.ImageWithLayers(fresh(), f, layers...)
	}
	type referrer struct {
		repo, digest, subject string
		seed                  uint64
	}
	var refs []referrer
	currents := map[string]bool{}
	repos := []string{"app", "app/api", "app/api/v2", "tools", "team/web", "team/web-cache", "base", "ci/build"}
	for _, repo := range repos {
		f := formats[rng.IntN(2)]
		for ti := range 1 + rng.IntN(3) {
			tag := fmt.Sprintf("t%d", ti)
			var current string
			for range 1 + rng.IntN(3) { // the last push wins, the others are overwritten
				switch rng.IntN(5) {
				case 0:
					kind := f
					if rng.IntN(2) == 0 {
						kind = formats[1-f]
					}
					current = s.PushIndex(repo+":"+tag, harness.Index(fresh(), 1+rng.IntN(3), 1, kind))
				default:
					current = s.PushImage(repo+":"+tag, image(f))
				}
				if rng.IntN(4) == 0 { // a referrer of what is current now
					rs := fresh()
					refs = append(refs, referrer{repo, s.PushReferrer(repo, current, sigType, rs), current, rs})
				}
			}
			g.tagged = append(g.tagged, repo+":"+tag)
			currents[repo+"@"+current] = true
			if rng.IntN(4) == 0 { // a second tag on the same digest
				s.Tag(repo, current, tag+"-alias")
				g.tagged = append(g.tagged, repo+":"+tag+"-alias")
			}
		}
		if rng.IntN(3) == 0 { // pushed by digest only
			s.PushImage(repo, image(f))
		}
	}
	for _, r := range refs {
		if currents[r.repo+"@"+r.subject] {
			g.keptReferrers = append(g.keptReferrers, r.repo+"@"+r.digest)
			g.referrerBlobs = append(g.referrerBlobs, r.digest, harness.Sha256(harness.ReferrerPayload(r.seed)))
		}
	}
	return g
}

// storedState is what the equivalence compares: the blobs and the manifest revisions
// (repo@digest) in a storage root.
func storedState(t *testing.T, root string) (blobs, revisions map[string]bool) {
	t.Helper()
	blobs, revisions = map[string]bool{}, map[string]bool{}
	tree := listTree(t, root)
	for _, f := range tree.Files {
		parts := strings.Split(f, "/")
		switch {
		case strings.HasPrefix(f, harness.V2+"/blobs/sha256/") && strings.HasSuffix(f, "/data") && len(parts) == 8:
			blobs["sha256:"+parts[6]] = true
		case strings.HasPrefix(f, harness.V2+"/repositories/") && strings.Contains(f, "/_manifests/revisions/sha256/") && strings.HasSuffix(f, "/link"):
			repo := strings.TrimPrefix(f[:strings.Index(f, "/_manifests/")], harness.V2+"/repositories/")
			revisions[repo+"@sha256:"+parts[len(parts)-2]] = true
		}
	}
	return blobs, revisions
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestEquivalenceWithUpstream runs upstream `registry garbage-collect --delete-untagged`
// and clean-registry on copies of one generated registry: the same blobs and manifest
// revisions must remain, except the referrers of kept images, which upstream wrongly
// deletes and clean-registry keeps. (Tag history entries and _layers links are not
// compared: clean-registry removes stale ones upstream leaves behind.)
func TestEquivalenceWithUpstream(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			g := generate(t, e.s, seed)
			e.reg.StopT(t)

			upstreamRoot := copyOf(t, e.root)
			config := filepath.Join(t.TempDir(), "config.yml")
			if err := harness.WriteConfig(config, harness.Config{Root: upstreamRoot}); err != nil {
				t.Fatalf("writing upstream's config.yml: %v", err)
			}
			harness.GarbageCollectT(t, config, "--delete-untagged")
			cleanRoot := copyOf(t, e.root)
			mustRun(t, "--root", cleanRoot, "--grace", "0", "-q")

			upBlobs, upRevs := storedState(t, upstreamRoot)
			ourBlobs, ourRevs := storedState(t, cleanRoot)
			allBlobs, allRevs := storedState(t, e.root)
			if len(upRevs) == len(allRevs) || len(upBlobs) == len(allBlobs) {
				t.Fatalf("upstream left %d of %d revisions and %d of %d blobs: the scenario has no garbage of both kinds",
					len(upRevs), len(allRevs), len(upBlobs), len(allBlobs))
			}
			extra := map[string]bool{harness.EmptyConfigDigest: true}
			for _, d := range append(g.keptReferrers, g.referrerBlobs...) {
				extra[d] = true
			}
			compare := func(what string, up, ours map[string]bool) {
				onlyUp, onlyOurs := harness.Diff(keysOf(up), keysOf(ours))
				if len(onlyUp) > 0 {
					t.Errorf("%s upstream keeps and clean-registry deleted: %v", what, onlyUp)
				}
				for _, k := range onlyOurs {
					if d := k[strings.LastIndex(k, "@")+1:]; !extra[k] && !extra[d] {
						t.Errorf("%s clean-registry keeps and upstream deleted (not a kept referrer's): %s", what, k)
					}
				}
			}
			compare("blobs", upBlobs, ourBlobs)
			compare("revisions", upRevs, ourRevs)
			for _, r := range g.keptReferrers {
				if !ourRevs[r] {
					t.Errorf("clean-registry deleted %s, a referrer of a kept image", r)
				}
			}
			t.Logf("%d blobs and %d revisions before; upstream left %d and %d, clean-registry %d and %d (%d kept referrers)",
				len(allBlobs), len(allRevs), len(upBlobs), len(upRevs), len(ourBlobs), len(ourRevs), len(g.keptReferrers))

			// And what clean-registry left serves every tag and kept referrer.
			verifyPulls(t, cleanRoot, append(g.tagged, g.keptReferrers...))
		})
	}
}
