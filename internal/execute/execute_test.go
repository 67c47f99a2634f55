package execute

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
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

// blobDigest is the one blob of testPlan's storage, which no manifest references.
var blobDigest = layout.Digest{0xff}

// testPlan is the plan of removing repository a/b (-x a/b), which links 2,500
// manifests, from a storage that also holds one unreferenced blob: 2,500 revisions,
// one blob and the repository, in three phases.
func testPlan() *plan.Plan {
	b := inventory.NewBuilder("test")
	b.Blob(blobDigest, 10, inventory.ToTime(now.Add(-48*time.Hour)))
	b.BlobsDone()
	for i := 0; i < 2500; i++ {
		var d layout.Digest
		d[0], d[1] = byte(i>>8), byte(i)
		b.Revision("a/b", d, inventory.ToTime(now.Add(-48*time.Hour)))
	}
	return plan.Make(b.Build(), plan.Policy{
		Select: []plan.Selector{{Repo: "a/b"}}, Remove: true, Grace: time.Hour, UploadAge: 24 * time.Hour, Now: now,
	})
}

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestTestPlan(t *testing.T) {
	p := testPlan()
	if len(p.Failures) > 0 || len(p.Notes) > 0 {
		t.Fatalf("failures %v, notes %v", p.Failures, p.Notes)
	}
	for _, k := range []plan.Kind{plan.Revision, plan.Blob, plan.Repository} {
		start, end := p.Phase(k)
		if want := map[plan.Kind]int{plan.Revision: 2500, plan.Blob: 1, plan.Repository: 1}[k]; end-start != want {
			t.Errorf("%d %ss planned, want %d", end-start, k, want)
		}
	}
	if p.Len() != 2502 {
		t.Errorf("%d deletions planned, want 2502", p.Len())
	}
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
	// Every revision unit precedes the blob unit, and the blob unit the repository's
	// units: phases never interleave.
	if len(r.units) != 2504 {
		t.Fatalf("%d units, want 2504", len(r.units))
	}
	for i, u := range r.units[:2500] {
		if !strings.HasPrefix(u.Dir, layout.RevisionsDir("a/b")+"/") {
			t.Fatalf("unit %d is %s", i, u.Dir)
		}
	}
	if r.units[2500].Dir != layout.BlobDir(blobDigest) {
		t.Fatalf("unit 2500 is %s", r.units[2500].Dir)
	}
	for i, dir := range layout.ReservedDirs("a/b") {
		if r.units[2501+i].Dir != dir {
			t.Fatalf("unit %d is %s, want %s", 2501+i, r.units[2501+i].Dir, dir)
		}
	}
	// Then the empty directories, deepest first: the repository's skeleton, itself and
	// its parent.
	want := append(layout.SkeletonDirs("a/b"), layout.RepoDir("a/b"), layout.RepoDir("a"))
	if !reflect.DeepEqual(r.pruned, want) {
		t.Fatalf("pruned %v, want %v", r.pruned, want)
	}
}

func TestRunStopsAtAFailedPhase(t *testing.T) {
	r := &recorder{failAt: 1200}
	_, err := Run(context.Background(), r, testPlan(), Options{Jobs: 1})
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	for _, u := range r.units {
		if !strings.HasPrefix(u.Dir, layout.RevisionsDir("a/b")+"/") {
			t.Fatalf("%s was deleted after the revision phase failed", u.Dir)
		}
	}
	if len(r.pruned) > 0 {
		t.Fatalf("pruned %v after the revision phase failed", r.pruned)
	}
}

// A phase that fails still reports the batches it applied, so that nothing deleted
// goes unprinted.
func TestRunReportsWhatAFailedPhaseApplied(t *testing.T) {
	r := &recorder{failAt: 1200}
	var printed []Range
	res, err := Run(context.Background(), r, testPlan(), Options{Jobs: 1, PhaseDone: func(start, end int) {
		printed = append(printed, Range{start, end})
	}})
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	want := []Range{{0, 1000}} // one batch of 1,000 revisions, then the failing one
	if !reflect.DeepEqual(printed, want) || !reflect.DeepEqual(res.Applied, want) || res.Done != 1000 {
		t.Fatalf("printed %v, applied %v (%d); want %v (1000)", printed, res.Applied, res.Done, want)
	}
	// The failing batch applied 200 of its units before it failed: uncertain. No
	// batch started after it.
	if want := []Range{{1000, 2000}}; !reflect.DeepEqual(res.Uncertain, want) || len(r.units) != 1200 {
		t.Fatalf("uncertain %v, %d units deleted; want %v, 1200", res.Uncertain, len(r.units), want)
	}
}

func TestMergeRanges(t *testing.T) {
	got := merge([]Range{{20, 30}, {0, 10}, {10, 20}, {40, 50}})
	if want := []Range{{0, 30}, {40, 50}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("merge = %v, want %v", got, want)
	}
}

// siblingBackend fails the batch that holds unit fail once the siblings batches
// are under way (in Delete); every other batch waits for that failure, then applies
// its units unless its context was cancelled.
type siblingBackend struct {
	storage.Backend
	fail     string
	siblings int
	entered  chan struct{}
	failed   chan struct{}
	mu       sync.Mutex
	applied  int
}

func (s *siblingBackend) Delete(ctx context.Context, units []storage.Unit) error {
	for _, u := range units {
		if u.Dir == s.fail {
			for range s.siblings {
				<-s.entered
			}
			close(s.failed)
			return errInjected
		}
	}
	s.entered <- struct{}{}
	<-s.failed
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	s.applied += len(units)
	s.mu.Unlock()
	return nil
}

// A batch that fails does not cancel the batches under way beside it: they finish,
// and what they applied is reported.
func TestFailedBatchLetsSiblingsFinish(t *testing.T) {
	p := testPlan()
	b := &siblingBackend{fail: p.At(2499).Dir(), siblings: 3, // the last of 4 batches of 625
		entered: make(chan struct{}, 3), failed: make(chan struct{})}
	res, err := Run(context.Background(), b, p, Options{Jobs: 4})
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	if want := []Range{{0, 1875}}; !reflect.DeepEqual(res.Applied, want) || res.Done != 1875 || b.applied != 1875 {
		t.Fatalf("applied %v (%d), the storage %d; want %v (1875)", res.Applied, res.Done, b.applied, want)
	}
	if want := []Range{{1875, 2500}}; !reflect.DeepEqual(res.Uncertain, want) {
		t.Fatalf("uncertain %v, want %v", res.Uncertain, want)
	}
}

func TestRunCountsProgressPerPhase(t *testing.T) {
	tr := progress.New()
	if _, err := Run(context.Background(), &recorder{failAt: -1}, testPlan(), Options{Jobs: 4, Progress: tr}); err != nil {
		t.Fatal(err)
	}
	var got []progress.Snapshot
	for _, s := range tr.Stages() {
		snap := s.Snapshot()
		if snap.Elapsed <= 0 {
			t.Errorf("%s: elapsed %v", snap.Name, snap.Elapsed)
		}
		snap.Elapsed = 0
		got = append(got, snap)
	}
	want := []progress.Snapshot{
		{Name: "deleting revisions", Unit: "deletions", Done: 2500, Total: 2500, Ended: true},
		{Name: "deleting blobs", Unit: "deletions", Done: 1, Total: 1, Bytes: 10, TotalBytes: 10, Ended: true},
		{Name: "deleting repositories", Unit: "deletions", Done: 1, Total: 1, Ended: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stages\n%+v\nwant\n%+v", got, want)
	}
}
