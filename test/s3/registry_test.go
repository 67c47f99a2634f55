package s3

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/clean-registry/clean-registry/v2/internal/cli"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// scenario is what pushScenario left in a registry: what must stay, what must go.
type scenario struct {
	kept    []string // refs to pull after cleaning, with the digest each must resolve to
	digests map[string]string
	deleted []string // repo@digest refs that must answer 404
	shared  string   // digest of a layer every repository uses
}

// pushScenario pushes, through the registry: an overwritten tag, one digest under
// two tags, a layer shared across repositories, a multi-arch OCI index whose tag moves
// (the old index and its untagged children must go, the new one's untagged children
// stay), and a tag deleted through the API in a nested repository.
func pushScenario(t *testing.T, s *harness.Session) scenario {
	t.Helper()
	sc := scenario{digests: map[string]string{}}
	keep := func(ref, digest string) {
		sc.kept = append(sc.kept, ref)
		sc.digests[ref] = digest
	}
	gone := func(repo, digest string) { sc.deleted = append(sc.deleted, repo+"@"+digest) }
	shared := harness.Layer(1000, harness.OCI)
	sc.shared = harness.DigestOf(shared)

	gone("app", s.PushImage("app:latest", harness.ImageWithLayers(1, harness.OCI, shared, harness.Layer(1, harness.OCI))))
	keep("app:latest", s.PushImage("app:latest", harness.ImageWithLayers(2, harness.OCI, shared, harness.Layer(2, harness.OCI))))

	other := s.PushImageTo(harness.ImageWithLayers(3, harness.OCI, shared, harness.Layer(3, harness.OCI)), "team/other:v1", "team/other:v2")
	keep("team/other:v1", other)
	keep("team/other:v2", other)

	oldIdx := harness.Index(4, 2, 2, harness.OCI)
	gone("multi", s.PushIndex("multi:v1", oldIdx))
	for _, c := range harness.ManifestsOf(oldIdx) {
		gone("multi", c)
	}
	newIdx := harness.Index(5, 2, 2, harness.OCI)
	keep("multi:v1", s.PushIndex("multi:v1", newIdx))
	for _, c := range harness.ManifestsOf(newIdx) {
		keep("multi@"+c, c)
	}

	lone := s.PushImage("team/other/nested:tmp", harness.Image(6, 1, harness.OCI))
	keep("team/other/nested:keep", s.PushImage("team/other/nested:keep", harness.Image(7, 1, harness.OCI)))
	tag, err := name.NewTag(s.Host+"/team/other/nested:tmp", name.Insecure)
	if err != nil {
		t.Fatalf("parsing the tag to delete: %v", err)
	}
	if err := remote.Delete(tag); err != nil {
		t.Fatalf("deleting a tag through the API: %v", err)
	}
	gone("team/other/nested", lone)
	return sc
}

// verify pulls every kept image or index with all its digests checked, and expects
// 404 for every deleted manifest.
func (sc scenario) verify(t *testing.T, s *harness.Session) {
	t.Helper()
	for _, ref := range sc.kept {
		if p := s.Pull(ref); p.Digest != sc.digests[ref] {
			t.Errorf("kept %s: digest %s, want %s", ref, p.Digest, sc.digests[ref])
		}
	}
	s.Gone(sc.deleted...)
}

// checkReport checks what a cleaning of the scenario reported.
func (sc scenario) checkReport(t *testing.T, rep *report.Report) {
	t.Helper()
	if n := rep.ByKind["revision"].Count; n != len(sc.deleted) {
		t.Errorf("%d revisions deleted, want %d", n, len(sc.deleted))
	}
	if len(rep.Problems) > 0 {
		t.Errorf("problems found in a registry's own storage: %+v", rep.Problems)
	}
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

// TestRegistryOnS3 pushes images through the real registry on its s3 driver, cleans
// the bucket with clean-registry's S3 backend, restarts the registry and pulls every
// kept image with its digests verified; every deleted manifest answers 404.
func TestRegistryOnS3(t *testing.T) {
	srv := server.Get(t)
	bucket := newBucket(t, srv)
	params := srv.DriverParams(bucket, "/registry")
	reg := harness.StartT(t, harness.Config{Storage: map[string]any{"s3": params}})
	sc := pushScenario(t, reg.Session(t))

	// The registry stops while its storage is cleaned, as the Docker path quiesces it.
	reg.StopT(t)
	rep := cleanWithConfig(t, reg.ConfigPath())
	t.Logf("requests: %v", rep.Requests)
	sc.checkReport(t, rep)
	if rep.Requests["DeleteObjects"] == 0 || rep.Requests["ListObjectsV2"] == 0 {
		t.Errorf("request counts missing from the report: %v", rep.Requests)
	}
	if n := rep.Requests["HeadObject"]; n != 0 {
		t.Errorf("%d HeadObject requests: sizes and times should come from the listings", n)
	}
	// The manifests' own blobs are gone from the bucket, the shared layer is not.
	keys := strings.Join(listKeys(t, srv, bucket), "\n")
	for _, ref := range sc.deleted {
		if _, d, _ := strings.Cut(ref, "@"); strings.Contains(keys, hexOf(d)) {
			t.Errorf("objects of deleted %s remain", ref)
		}
	}
	if h := hexOf(sc.shared); !strings.Contains(keys, "registry/docker/registry/v2/blobs/sha256/"+h[:2]+"/"+h+"/data") {
		t.Error("the shared layer is gone")
	}
	// What remains is weighed from the listing: what the bucket's blobs weigh.
	var blobBytes int64
	for k, n := range listSizes(t, srv, bucket) {
		if strings.HasPrefix(k, "registry/docker/registry/v2/blobs/") && strings.HasSuffix(k, "/data") {
			blobBytes += n
		}
	}
	if rep.Kept.Bytes != blobBytes || rep.Kept.UnknownSizes != 0 {
		t.Errorf("the report says %d bytes remain (%d blobs of unknown size); the bucket's blobs weigh %d",
			rep.Kept.Bytes, rep.Kept.UnknownSizes, blobBytes)
	}

	// A second run finds nothing left to delete. It takes its secret key and a string
	// boolean from REGISTRY_* overrides, as a registry container's environment gives them.
	wrong := harness.Config{Storage: map[string]any{"s3": withParam(params, "secretkey", "not-the-secret")}}
	wrongPath := filepath.Join(t.TempDir(), "config.yml")
	if err := harness.WriteConfig(wrongPath, wrong); err != nil {
		t.Fatalf("writing a config.yml with the wrong secret: %v", err)
	}
	env := []string{"REGISTRY_STORAGE_S3_SECRETKEY=" + srv.SecretKey, "REGISTRY_STORAGE_S3_SECURE=false"}
	if again := cleanWithConfig(t, wrongPath, env...); again.Requests["DeleteObjects"] != 0 {
		t.Errorf("a second run deleted again: %v", again.Requests)
	}

	reg.RestartT(t)
	sc.verify(t, reg.Session(t))
}

func withParam(params map[string]any, key string, value any) map[string]any {
	out := map[string]any{key: value}
	for k, v := range params {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// cleanWithConfig cleans the storage the registry's config.yml names, with the
// REGISTRY_* overrides in env, as `clean-registry --config FILE --grace 0` does.
func cleanWithConfig(t *testing.T, config string, env ...string) *report.Report {
	t.Helper()
	return cleanWithConfigArgs(t, config, nil, env...)
}

// cleanWithConfigArgs is cleanWithConfig with more command-line arguments.
func cleanWithConfigArgs(t *testing.T, config string, args []string, env ...string) *report.Report {
	t.Helper()
	// The command line itself, as a user runs it: --config dispatches to the S3
	// backend; env holds REGISTRY_* overrides, read from the process environment.
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main(append([]string{"--config", config, "--grace", "0", "--json", "-j", "8"}, args...), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("clean-registry --config: exit %d: %s", code, stderr.String())
	}
	var rep report.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the --json report does not parse: %v\n%s", err, stdout.String())
	}
	if !rep.Completed || len(rep.Failures) > 0 {
		t.Fatalf("clean incomplete or with failures (want completed, no failures): %s", stdout.String())
	}
	return &rep
}
