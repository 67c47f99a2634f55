package s3

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// The S3 soak's bounds (see test/integration's TestOnlineSoak): shorter than on the
// filesystem, as many runs.
const (
	s3SoakPushers      = 4
	s3SoakChurn        = 30 * time.Second
	s3SoakMinRuns      = 20
	s3SoakShortChurn   = 8 * time.Second
	s3SoakShortMinRuns = 4
)

// TestOnlineSoakOnS3 is the online soak on versitygw: four pushers push new images,
// images on old unreferenced layers, tags onto old untagged manifests and tag
// overwrites through a registry on its s3 driver (no blob descriptor cache), while
// `clean-registry --config FILE --online --grace 0 --settle 1s` runs again and
// again. Every image the registry acknowledged and still tags must pull whole, no
// quarantine object may be left, and the old blobs no push took up must be gone.
func TestOnlineSoakOnS3(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)
	reg := harness.StartT(t, harness.Config{Storage: map[string]any{"s3": srv.DriverParams(bucket, "/registry")}})
	reg.UseBlobDescriptorCacheT(t, harness.CacheNone, "")
	bin := buildCleanRegistry(t)

	churn := harness.NewChurn(reg.Addr(), harness.ChurnOptions{Seed: 3, Old: 8})
	start := time.Now()
	if err := churn.SeedOld(ctx); err != nil {
		t.Fatalf("seeding old untagged images: %v", err)
	}
	t.Logf("seeded in %s", time.Since(start).Round(time.Millisecond))
	d, minRuns := s3SoakChurn, s3SoakMinRuns
	if testing.Short() {
		d, minRuns = s3SoakShortChurn, s3SoakShortMinRuns
	}
	res, err := harness.Soak(ctx, churn, harness.SoakOptions{Pushers: s3SoakPushers, Duration: d, MinRuns: minRuns,
		Bin: bin, Args: []string{"--config", reg.ConfigPath(), "--online", "--grace", "0", "--settle", "1s", "--json"}})
	if err != nil {
		t.Fatalf("the soak: %v", err)
	}
	t.Logf("soak done after %s", time.Since(start).Round(time.Millisecond))
	res.CheckT(t)
	res.ExplainT(t, churn.VerifyT(t, reg.Addr()))
	t.Logf("verified after %s", time.Since(start).Round(time.Millisecond))

	keys := listKeys(t, srv, bucket)
	present := map[string]bool{}
	var quarantined []string
	for _, k := range keys {
		present[k] = true
		if strings.HasPrefix(k, "registry/clean-registry/quarantine/") {
			quarantined = append(quarantined, k)
		}
	}
	if len(quarantined) > 0 {
		t.Errorf("%d objects left in the quarantine after the final run, e.g. %v", len(quarantined), quarantined[:min(len(quarantined), 10)])
	}
	churn.CheckUntouchedGoneT(t, func(d string) bool {
		return present["registry/"+harness.BlobDataPath(d)]
	})
	ballast, _ := churn.OldManifests()
	reg.Session(t).Gone(ballast...)
}

// buildCleanRegistry builds the clean-registry binary into the test's temporary
// directory: the soak runs it as a user does, one process per run.
func buildCleanRegistry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clean-registry")
	build := exec.Command("go", "build", "-o", bin, "./cmd/clean-registry")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building clean-registry: %v\n%s", err, out)
	}
	return bin
}
