package s3

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// Retention on S3: push times come from the listing's LastModified, with no request
// per tag; tags pushed in order, keep-last 2 keeps the last two, their signatures
// with them, and what only the others kept goes.
func TestRetentionOnS3(t *testing.T) {
	srv := server.Get(t)
	bucket := newBucket(t, srv)
	reg := harness.StartT(t, harness.Config{Storage: map[string]any{"s3": srv.DriverParams(bucket, "/registry")}})
	s := reg.Session(t)
	var builds []string
	for i := 0; i < 4; i++ {
		builds = append(builds, s.PushImage(fmt.Sprintf("ci:b%d", i), harness.Image(uint64(800+i), 2, harness.OCI)))
		time.Sleep(1100 * time.Millisecond) // LastModified has a second's resolution
	}
	sigOld := s.PushImage("ci:sha256-"+hexOf(builds[0])+".sig", harness.Image(810, 1, harness.OCI))
	s.PushImage("ci:sha256-"+hexOf(builds[3])+".sig", harness.Image(811, 1, harness.OCI))
	reg.StopT(t)

	rep := cleanWithConfigArgs(t, reg.ConfigPath(), []string{"--keep-last", "2"})
	if n := rep.Requests["HeadObject"]; n != 0 {
		t.Errorf("%d HeadObject requests: push times should come from the listing", n)
	}
	if rs := rep.ByRepository["ci"]; rs == nil || rs.TagsRetention != 2 || rs.TagsKept != 3 {
		t.Errorf("ci: %+v; want 2 tags deleted by retention and 3 kept (2 builds, 1 signature)", rs)
	}
	reg.RestartT(t)
	s = reg.Session(t)
	s.PullAll("ci:b2", "ci:b3", "ci:sha256-"+hexOf(builds[3])+".sig")
	s.Gone("ci:b0", "ci:b1", "ci@"+builds[0], "ci@"+builds[1], "ci@"+sigOld)
	if !strings.Contains(strings.Join(s.Tags("ci"), " "), "b3") {
		t.Errorf("tags left: %v", s.Tags("ci"))
	}
}
