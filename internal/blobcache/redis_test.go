package blobcache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3"
	rediscache "github.com/distribution/distribution/v3/registry/storage/cache/redis"
	godigest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/redis/go-redis/v9"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// TestClear seeds a real redis-server through distribution's own redis blob
// descriptor cache, clears an outcome, and checks that exactly the keys of what the
// outcome deleted are gone, in the registry's database only.
func TestClear(t *testing.T) {
	addr := harness.StartRedis(t)
	ctx := context.Background()
	const db = 3
	rc := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer rc.Close()
	other := redis.NewClient(&redis.Options{Addr: addr, DB: 0})
	defer other.Close()

	deleted := godigest.FromString("deleted blob")   // its content is deleted
	kept := godigest.FromString("kept blob")         // nothing of it is deleted
	unlinked := godigest.FromString("unlinked blob") // app loses its link; its content stays
	// The registry's cache, as a registry using this redis writes it.
	cache := rediscache.NewRedisBlobDescriptorCacheProvider(rc)
	seed := map[string][]godigest.Digest{
		"app":      {deleted, kept, unlinked},
		"lib/base": {deleted, kept},
		"gone":     {kept, unlinked},
		"gone/sub": {kept}, // a name that starts like the removed repository's
		"gonex":    {kept},
	}
	for repo, ds := range seed {
		scoped, err := cache.RepositoryScoped(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			desc := v1.Descriptor{Digest: d, Size: 10, MediaType: "application/vnd.oci.image.layer.v1.tar"}
			if err := scoped.SetDescriptor(ctx, d, desc); err != nil {
				t.Fatalf("seeding %s %s: %v", repo, d, err)
			}
		}
	}
	// Many repositories, more than a SCAN batch, each caching the deleted blob.
	pipe := rc.Pipeline()
	for i := range 2500 {
		set := fmt.Sprintf("repository::many/r%d::blobs", i)
		pipe.SAdd(ctx, set, deleted.String())
		pipe.HSet(ctx, set+"::"+deleted.String(), "mediatype", "x")
	}
	pipe.Set(ctx, "unrelated", "v", 0)
	pipe.HSet(ctx, "repository::app::blobs::not-a-digest", "x", "y")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.HSet(ctx, "blobs::"+deleted.String(), "digest", deleted.String(), "size", 10).Err(); err != nil {
		t.Fatal(err)
	}

	out := Outcome{
		Blobs:        []string{deleted.String()},
		Links:        map[string][]string{"app": {unlinked.String()}},
		Repositories: []string{"gone"},
	}
	r := &Redis{Addrs: []string{addr}, DB: db}
	if err := r.Clear(ctx, out); err != nil {
		t.Fatal(err)
	}

	// Exactly these keys remain, with these members.
	wantKeys := []string{
		"blobs::" + kept.String(),
		"blobs::" + unlinked.String(),
		"repository::app::blobs",
		"repository::app::blobs::" + kept.String(),
		"repository::app::blobs::not-a-digest",
		"repository::lib/base::blobs",
		"repository::lib/base::blobs::" + kept.String(),
		"repository::gone/sub::blobs",
		"repository::gone/sub::blobs::" + kept.String(),
		"repository::gonex::blobs",
		"repository::gonex::blobs::" + kept.String(),
		"unrelated",
	}
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("keys left:\n  %s\nwant:\n  %s", strings.Join(keys, "\n  "), strings.Join(wantKeys, "\n  "))
	}
	for _, repo := range []string{"app", "lib/base", "gone/sub", "gonex"} {
		members, err := rc.SMembers(ctx, "repository::"+repo+"::blobs").Result()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(members, []string{kept.String()}) {
			t.Errorf("repository %s lists %v, want only %s", repo, members, kept)
		}
	}
	if n, err := other.Exists(ctx, "blobs::"+deleted.String()).Result(); err != nil || n != 1 {
		t.Errorf("a key of another database was touched: EXISTS = %d, %v", n, err)
	}

	// What the registry now finds in its cache.
	stat := func(repo string, d godigest.Digest) error {
		if repo == "" {
			_, err := cache.Stat(ctx, d)
			return err
		}
		scoped, err := cache.RepositoryScoped(repo)
		if err != nil {
			t.Fatal(err)
		}
		_, err = scoped.Stat(ctx, d)
		return err
	}
	for _, c := range []struct {
		repo  string
		d     godigest.Digest
		found bool
	}{
		{"", deleted, false}, {"", kept, true}, {"", unlinked, true},
		{"app", deleted, false}, {"app", kept, true}, {"app", unlinked, false},
		{"lib/base", deleted, false}, {"lib/base", kept, true},
		{"gone", kept, false}, {"gone", unlinked, false},
		{"gone/sub", kept, true}, {"gonex", kept, true},
	} {
		err := stat(c.repo, c.d)
		if c.found && err != nil || !c.found && !errors.Is(err, distribution.ErrBlobUnknown) {
			t.Errorf("registry's cache, repository %q, %s: %v (want found: %v)", c.repo, c.d, err, c.found)
		}
	}

	// Clearing again finds nothing more to do.
	if err := r.Clear(ctx, out); err != nil {
		t.Fatalf("clearing again: %v", err)
	}
}

// TestClearRefuses: what Clear does not attempt, and an unreachable redis.
func TestClearRefuses(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	stale := Outcome{Blobs: []string{godigest.FromString("x").String()}}
	for _, c := range []struct {
		name string
		r    *Redis
		o    Outcome
		err  string // "" for nil
	}{
		{"nothing deleted: no connection", &Redis{Addrs: []string{closed}}, Outcome{}, ""},
		{"nothing deleted, no settings", nil, Outcome{}, ""},
		{"no settings", nil, stale, "no redis address"},
		{"no address", &Redis{}, stale, "no redis address"},
		{"TLS", &Redis{Addrs: []string{closed}, TLS: true}, stale, "TLS"},
		{"unknown outcome", &Redis{Addrs: []string{closed}}, Outcome{Unknown: true}, "without saying"},
		{"unreachable", &Redis{Addrs: []string{closed}}, stale, closed},
	} {
		err := c.r.Clear(ctx, c.o)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
		}
	}
}

func TestAdvice(t *testing.T) {
	if a := Advice(nil); !strings.Contains(a, "redis ?, database 0") {
		t.Errorf("no settings: %s", a)
	}
	if a := Advice(&Redis{Addrs: []string{"a:1", "b:2"}, DB: 4}); !strings.Contains(a, "redis a:1,b:2, database 4") ||
		!strings.Contains(a, "blobs::<digest>") || !strings.Contains(a, "repository::<name>::blobs*") {
		t.Errorf("advice: %s", a)
	}
}
