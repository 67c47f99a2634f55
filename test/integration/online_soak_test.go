package integration

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// The online soak's bounds: pushers racing the runs, how long they push, and how many
// online runs a subtest makes at least (the runs go on after the churn until then).
const (
	soakPushers      = 4
	soakChurn        = 40 * time.Second
	soakMinRuns      = 20
	soakShortChurn   = 8 * time.Second
	soakShortMinRuns = 4
)

// soakBounds are the churn's duration and the least number of runs, shorter with -short.
func soakBounds() (time.Duration, int) {
	if testing.Short() {
		return soakShortChurn, soakShortMinRuns
	}
	return soakChurn, soakMinRuns
}

// TestOnlineSoak proves that online cleaning breaks no push: four pushers push new
// images, images on old unreferenced layers (upstream issue 3045), tags onto old
// untagged manifests and tag overwrites into a registry on the filesystem, while
// `clean-registry --online --grace 0 --settle 1s` runs again and again. Every image
// the registry acknowledged and still tags must pull whole afterwards, the quarantine
// must be gone, and the old blobs no push took up again must be deleted. Once with no
// blob descriptor cache (runs given --root), once with redis (runs given --config, so
// that they can clear it).
func TestOnlineSoak(t *testing.T) {
	t.Parallel()
	// The two run side by side: a soak waits on the registry and the runs' settle far
	// more than it computes.
	t.Run("no-cache", func(t *testing.T) { t.Parallel(); onlineSoak(t, harness.CacheNone, 1) })
	t.Run("redis", func(t *testing.T) { t.Parallel(); onlineSoak(t, harness.CacheRedis, 2) })
}

func onlineSoak(t *testing.T, cache string, seed uint64) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "storage")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatalf("making the storage root: %v", err)
	}
	var redisAddr string
	if cache == harness.CacheRedis {
		redisAddr = harness.StartRedis(t)
	}
	reg := harness.StartFS(t, root)
	reg.UseBlobDescriptorCacheT(t, cache, redisAddr)

	churn := harness.NewChurn(reg.Addr(), harness.ChurnOptions{Seed: seed})
	start := time.Now()
	if err := churn.SeedOld(ctx); err != nil {
		t.Fatalf("seeding old untagged images: %v", err)
	}
	t.Logf("seeded in %s", time.Since(start).Round(time.Millisecond))
	if cache == harness.CacheRedis {
		if n, err := harness.RedisInt(redisAddr, "DBSIZE"); err != nil || n == 0 {
			t.Fatalf("the registry cached nothing in redis (DBSIZE %d, %v): is its config.yml right?", n, err)
		}
	}

	args := []string{"--root", root}
	if cache == harness.CacheRedis {
		args = []string{"--config", reg.ConfigPath()}
	}
	d, minRuns := soakBounds()
	res, err := harness.Soak(ctx, churn, harness.SoakOptions{Pushers: soakPushers, Duration: d, MinRuns: minRuns,
		Bin: cleanBin, Args: append(args, "--online", "--grace", "0", "--settle", "1s", "--json")})
	if err != nil {
		t.Fatalf("the soak: %v", err)
	}
	t.Logf("soak done after %s", time.Since(start).Round(time.Millisecond))
	res.CheckT(t)
	res.ExplainT(t, churn.VerifyT(t, reg.Addr()))
	t.Logf("verified after %s", time.Since(start).Round(time.Millisecond))

	checkQuarantineGone(t, root)
	gone := churn.CheckUntouchedGoneT(t, func(d string) bool {
		_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(harness.BlobDataPath(d))))
		return err == nil
	})
	ballast, _ := churn.OldManifests()
	reg.Session(t).Gone(ballast...)
	if cache == harness.CacheRedis {
		for _, d := range gone {
			if n, err := harness.RedisInt(redisAddr, "EXISTS", "blobs::"+d); err != nil || n != 0 {
				t.Errorf("redis still describes deleted blob %s (EXISTS %d, %v): a push would skip its upload", d, n, err)
			}
		}
	}
}

// checkQuarantineGone fails the test unless ROOT/clean-registry/quarantine is empty or
// absent.
func checkQuarantineGone(t *testing.T, root string) {
	t.Helper()
	q := filepath.Join(root, "clean-registry", "quarantine")
	var left []string
	filepath.WalkDir(q, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != q {
			rel, _ := filepath.Rel(q, p)
			left = append(left, rel)
		}
		return nil
	})
	if len(left) > 0 {
		sort.Strings(left)
		t.Errorf("the quarantine is not empty after the final run: %d entries, e.g. %v", len(left), left[:min(len(left), 10)])
	}
}
