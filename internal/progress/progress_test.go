package progress

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/parallel"
)

// A parallel walk that counts per directory while a reader polls: the counts add up,
// and under -race nothing is reported.
func TestCountsFromAParallelWalk(t *testing.T) {
	tr := New()
	st := tr.Begin("scanning", "entries", -1)
	var files atomic.Int64 // a count the engine keeps anyway
	st.Follow(&files)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the renderer's side
		for {
			select {
			case <-stop:
				return
			default:
				for _, s := range tr.Stages() {
					if snap := s.Snapshot(); snap.Done < 0 || snap.Total != -1 {
						t.Errorf("snapshot %+v", snap)
					}
				}
			}
		}
	})
	// A tree of depth 4 and fan-out 8: 4,681 directories of 3 entries each.
	err := parallel.Walk(context.Background(), 8, []int{0}, func(_ context.Context, depth int, push func(int)) error {
		if depth < 4 {
			for range 8 {
				push(depth + 1)
			}
		}
		st.Add(2)    // per directory, not per entry
		files.Add(1) // the followed counter
		st.AddBytes(10)
		return nil
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	const dirs = 1 + 8 + 64 + 512 + 4096
	snap := st.Snapshot()
	if snap.Done != 3*dirs || snap.Bytes != 10*dirs || snap.Name != "scanning" || snap.Unit != "entries" {
		t.Fatalf("snapshot %+v, want %d done, %d bytes", snap, 3*dirs, 10*dirs)
	}
}

func TestStagesEndInTurn(t *testing.T) {
	tr := New()
	a := tr.Begin("a", "x", 5)
	b := tr.Begin("b", "y", 2)
	b.SetTotal(3)
	b.SetTotalBytes(100)
	b.Add(3)
	if !a.Snapshot().Ended || b.Snapshot().Ended {
		t.Fatal("beginning b ends a, not b")
	}
	b.End()
	if got := tr.Stages(); len(got) != 2 || got[0] != a || got[1] != b || tr.Len() != 2 {
		t.Fatalf("stages %v", got)
	}
	s := b.Snapshot()
	if s.Done != 3 || s.Total != 3 || s.TotalBytes != 100 || !s.Ended || s.Elapsed <= 0 {
		t.Fatalf("snapshot %+v", s)
	}
	b.End()
	if again := b.Snapshot(); again.Elapsed != s.Elapsed || again.Rate() != 3/s.Elapsed.Seconds() {
		t.Fatalf("an ended stage's time moved: %v then %v", s.Elapsed, again.Elapsed)
	}
}

// Nothing watches: a nil tracker and its nil stages do nothing, and cost nothing.
func TestNilDoesNothing(t *testing.T) {
	var tr *Tracker
	st := tr.Begin("scanning", "entries", -1)
	st.Add(1)
	st.AddBytes(1)
	st.SetTotal(1)
	st.SetTotalBytes(1)
	st.AddTotal(1)
	st.Follow(new(atomic.Int64))
	st.End()
	if st != nil || tr.Stages() != nil || tr.Len() != 0 || st.Snapshot().Total != -1 {
		t.Fatal("a nil tracker recorded something")
	}
	if n := testing.AllocsPerRun(100, func() { st.Add(1) }); n != 0 {
		t.Fatalf("%v allocations per Add on nil", n)
	}
	live := New().Begin("x", "y", 1)
	if n := testing.AllocsPerRun(100, func() { live.Add(1); live.AddBytes(2) }); n != 0 {
		t.Fatalf("%v allocations per Add", n)
	}
}

// A stage that finds its work as it goes grows its total from 0.
func TestAddTotal(t *testing.T) {
	st := New().Begin("reading times", "links", 0)
	st.AddTotal(3)
	st.Add(3)
	st.AddTotal(2)
	st.Add(1)
	if s := st.Snapshot(); s.Done != 4 || s.Total != 5 {
		t.Fatalf("snapshot %+v, want 4 of 5", s)
	}
}
