package execute

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/clean-registry/clean-registry/internal/layout"
	"github.com/clean-registry/clean-registry/internal/plan"
	"github.com/clean-registry/clean-registry/internal/storage"
)

// recorder is a backend that records deletions and fails from the n-th unit on.
type recorder struct {
	storage.Backend
	mu     sync.Mutex
	failAt int
	units  []storage.Unit
	pruned []string
}

var errInjected = errors.New("injected")

func (r *recorder) Delete(ctx context.Context, units []storage.Unit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range units {
		if r.failAt >= 0 && len(r.units) >= r.failAt {
			return errInjected
		}
		r.units = append(r.units, u)
	}
	return nil
}

func (r *recorder) PruneDirs(ctx context.Context, dirs []string) error {
	r.pruned = append(r.pruned, dirs...)
	return nil
}

func testPlan() *plan.Plan {
	var ds []plan.Deletion
	for i := 0; i < 2500; i++ {
		var d layout.Digest
		d[0], d[1] = byte(i>>8), byte(i)
		ds = append(ds, plan.Deletion{Kind: plan.Revision, Repo: "a/b", Digest: d})
	}
	ds = append(ds, plan.Deletion{Kind: plan.Blob, Digest: layout.Digest{1}})
	ds = append(ds, plan.Deletion{Kind: plan.Repository, Repo: "a/b"})
	return plan.Of(ds...)
}

func TestRunAppliesPhasesInOrder(t *testing.T) {
	r := &recorder{failAt: -1}
	var phases []plan.Kind
	p := testPlan()
	res, err := Run(context.Background(), r, p, Options{Jobs: 4, PhaseDone: func(start, end int) {
		phases = append(phases, p.At(start).Kind)
	}})
	if err != nil || res.Done != 2502 {
		t.Fatalf("done %d, %v", res.Done, err)
	}
	if len(phases) != 3 || phases[0] != plan.Revision || phases[1] != plan.Blob || phases[2] != plan.Repository {
		t.Fatalf("phases %v", phases)
	}
	// Every revision unit precedes the blob unit: phases never interleave.
	if r.units[2500].Dir != layout.BlobDir(layout.Digest{1}) {
		t.Fatalf("unit 2500 is %s", r.units[2500].Dir)
	}
	n := len(r.pruned)
	if n < 3 || r.pruned[0] != layout.RepoDir("a/b")+"/_manifests/revisions/sha256" ||
		r.pruned[n-2] != layout.RepoDir("a/b") || r.pruned[n-1] != layout.RepoDir("a") {
		t.Fatalf("pruned %v", r.pruned)
	}
}

func TestRunStopsAtAFailedPhase(t *testing.T) {
	r := &recorder{failAt: 1200}
	_, err := Run(context.Background(), r, testPlan(), Options{Jobs: 1})
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	for _, u := range r.units {
		if u.Dir == layout.BlobDir(layout.Digest{1}) {
			t.Fatal("a blob was deleted after the revision phase failed")
		}
	}
}
