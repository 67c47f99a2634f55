package s3

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	s3backend "github.com/clean-registry/clean-registry/v2/internal/storage/s3"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// pushBeforeFirstMove is an S3 backend on which pushes complete between a run's scan
// and its first move: push runs once, just before the first Move.
type pushBeforeFirstMove struct {
	*s3backend.Backend
	once sync.Once
	push func()
}

func (b *pushBeforeFirstMove) Move(ctx context.Context, moves []storage.Move) error {
	b.once.Do(b.push)
	return b.Backend.Move(ctx, moves)
}

// An online -x of a repository on S3 while the registry takes pushes into it: a tag
// pushed again after the scan (onto a new image, or onto an image of the repository
// the run is removing) is the registry's acknowledged write, not what the run meant
// to remove. The copy into the quarantine is conditional on the source being
// unmodified since the run began, so those links stay; the verification puts back
// what their images need, and both tags pull whole.
func TestOnlineRemoveRepushedOnS3(t *testing.T) {
	srv := server.Get(t)
	bucket := newBucket(t, srv)
	reg := harness.StartT(t, harness.Config{Storage: map[string]any{"s3": srv.DriverParams(bucket, "/registry")}})
	reg.UseBlobDescriptorCacheT(t, harness.CacheNone, "")
	s := reg.Session(t)
	a, fresh := harness.Image(960, 2, harness.OCI), harness.Image(961, 2, harness.OCI)
	s.PushImage("app:1", a)
	s.PushImage("app:old", harness.Image(962, 1, harness.OCI))
	s.PushImage("web:1", harness.Image(963, 1, harness.OCI))
	// A run takes as new what was written up to 2 s (its clock margin) before it
	// began: let the images above age past it, so that app:old is old to the run.
	time.Sleep(3 * time.Second)

	b := &pushBeforeFirstMove{Backend: open(t, srv, bucket, "/registry", 4), push: func() {
		s.PushImage("app:1", fresh) // a new image onto the tag
		s.PushImage("app:2", a)     // a new tag onto an image the run removes
	}}
	rep, err := clean.Run(context.Background(), b, clean.Options{Jobs: 4, Remove: true,
		Select: []clean.Selector{{Repo: "app"}}, Online: &clean.Online{}})
	if err != nil {
		t.Fatalf("online -x app: %v", err)
	}
	for _, r := range rep.Online.Restored {
		t.Logf("put back %s %s: %s", r.Kind, r.Subject, r.Why)
	}
	s.PullAll("app:1", "app:2", "web:1")
	s.Gone("app:old")
	for _, k := range listKeys(t, srv, bucket) {
		if strings.HasPrefix(k, "registry/clean-registry/quarantine/") {
			t.Errorf("left in the quarantine: %s", k)
		}
	}
}
