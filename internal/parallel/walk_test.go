package parallel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tree visits the heap-numbered binary tree of n nodes rooted at 0 and counts each
// node's visits.
func tree(t *testing.T, jobs, n int) []int32 {
	t.Helper()
	seen := make([]int32, n)
	err := Walk(context.Background(), jobs, []int{0}, func(_ context.Context, i int, push func(int)) error {
		atomic.AddInt32(&seen[i], 1)
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < n {
				push(c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("jobs=%d: %v", jobs, err)
	}
	return seen
}

func TestWalkVisitsEachItemOnce(t *testing.T) {
	for _, jobs := range []int{-1, 0, 1, 2, 7, 64} {
		for _, n := range []int{1, 2, 3, 1000, 20000} {
			for i, c := range tree(t, jobs, n) {
				if c != 1 {
					t.Fatalf("jobs=%d n=%d: item %d visited %d times", jobs, n, i, c)
				}
			}
		}
	}
}

func TestWalkRoots(t *testing.T) {
	if err := Walk(context.Background(), 4, nil, func(context.Context, int, func(int)) error {
		t.Fatal("visited an item of an empty walk")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	roots := []string{"a", "b", "c"}
	var mu sync.Mutex
	got := map[string]int{}
	err := Walk(context.Background(), 2, roots, func(_ context.Context, s string, push func(string)) error {
		mu.Lock()
		got[s]++
		mu.Unlock()
		if len(s) < 3 {
			push(s + "x")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 9 {
		t.Fatalf("visited %v, want 3 roots and 2 descendants each", got)
	}
	if roots[0] != "a" || roots[2] != "c" {
		t.Fatalf("roots changed: %v", roots)
	}
}

// One visit pushing far more items than there are workers, from inside the visit,
// must never block: pending items wait in the stack, not in a bounded queue.
func TestWalkManyPushesFromOneVisit(t *testing.T) {
	const n = 100_000
	for _, jobs := range []int{1, 2, 8} {
		var visited atomic.Int64
		err := Walk(context.Background(), jobs, []int{-1}, func(_ context.Context, i int, push func(int)) error {
			visited.Add(1)
			if i == -1 {
				for j := range n {
					push(j)
				}
			}
			return nil
		})
		if err != nil || visited.Load() != n+1 {
			t.Fatalf("jobs=%d: visited %d of %d, err %v", jobs, visited.Load(), n+1, err)
		}
	}
}

func TestWalkBoundsConcurrency(t *testing.T) {
	const jobs = 4
	var running, peak, started atomic.Int32
	// The first jobs items meet at a barrier: the walk must run them at once.
	var barrier sync.WaitGroup
	barrier.Add(jobs)
	err := Walk(context.Background(), jobs, []int{-1}, func(_ context.Context, i int, push func(int)) error {
		r := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
		}
		if i == -1 {
			for j := range 200 {
				push(j)
			}
			return nil
		}
		if started.Add(1) > jobs {
			time.Sleep(100 * time.Microsecond)
			return nil
		}
		barrier.Done()
		done := make(chan struct{})
		go func() { barrier.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the first items did not run concurrently")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != jobs {
		t.Fatalf("peak concurrency %d, want %d", p, jobs)
	}
}

func TestWalkFirstErrorStops(t *testing.T) {
	boom := errors.New("boom")
	// One worker: nothing is visited after the failing item.
	var visited []int
	err := Walk(context.Background(), 1, []int{0}, func(_ context.Context, i int, push func(int)) error {
		visited = append(visited, i)
		if i == 5 {
			return boom
		}
		push(i + 1)
		return nil
	})
	if !errors.Is(err, boom) || len(visited) != 6 {
		t.Fatalf("err %v, visited %v: want boom after 0..5", err, visited)
	}

	// Several workers: the visits in flight see their ctx cancelled, and Walk
	// returns the first error, once they have returned.
	for _, jobs := range []int{2, 8} {
		var started atomic.Int32
		var after atomic.Bool
		err := Walk(context.Background(), jobs, []int{-1}, func(ctx context.Context, i int, push func(int)) error {
			if i == -1 {
				for j := range 1000 {
					push(j)
				}
				return nil
			}
			if started.Add(1) == int32(jobs) {
				// Every worker is busy, the others waiting for ctx.
				return boom
			}
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond)
			after.Store(true)
			return ctx.Err()
		})
		if !errors.Is(err, boom) {
			t.Fatalf("jobs=%d: err %v, want boom", jobs, err)
		}
		if !after.Load() {
			t.Fatalf("jobs=%d: Walk returned before the visits in flight", jobs)
		}
		if n := started.Load(); n != int32(jobs) {
			t.Fatalf("jobs=%d: %d visits started, want %d: none after the error", jobs, n, jobs)
		}
	}
}

func TestWalkContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Walk(ctx, 4, []int{0}, func(context.Context, int, func(int)) error {
		t.Error("visited with a cancelled context")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: err %v", err)
	}

	// Cancelled while one visit runs (ignoring ctx) and the other workers wait for
	// items: they wake up, Walk waits for the visit and returns ctx's error.
	for _, jobs := range []int{1, 4} {
		ctx, cancel = context.WithCancel(context.Background())
		started, release := make(chan struct{}), make(chan struct{})
		var visits atomic.Int32
		done := make(chan error, 1)
		go func() {
			done <- Walk(ctx, jobs, []int{0}, func(_ context.Context, i int, push func(int)) error {
				visits.Add(1)
				close(started)
				<-release
				push(1) // must not be visited: ctx is done
				return nil
			})
		}()
		<-started
		cancel()
		select {
		case err := <-done:
			t.Fatalf("jobs=%d: Walk returned %v with a visit in flight", jobs, err)
		case <-time.After(20 * time.Millisecond):
		}
		close(release)
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || visits.Load() != 1 {
				t.Fatalf("jobs=%d: err %v after %d visits, want Canceled after 1", jobs, err, visits.Load())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("jobs=%d: Walk did not return after cancel", jobs)
		}
	}

	// A deadline ends a walk that would never end.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = Walk(ctx, 3, []int{0}, func(_ context.Context, i int, push func(int)) error {
		push(i + 1)
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("endless walk: err %v", err)
	}
}

// The walk's own cost is per walk, not per item.
func TestWalkAllocations(t *testing.T) {
	visit := func(_ context.Context, i int, push func(int)) error {
		if c := 2*i + 1; c < 10_000 {
			push(c)
			if c+1 < 10_000 {
				push(c + 1)
			}
		}
		return nil
	}
	for _, jobs := range []int{1, 4} {
		allocs := testing.AllocsPerRun(20, func() {
			if err := Walk(context.Background(), jobs, []int{0}, visit); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 30 {
			t.Errorf("jobs=%d: %.0f allocations for a walk of 10,000 items", jobs, allocs)
		}
	}
}

func BenchmarkWalk(b *testing.B) {
	const n = 100_000
	visit := func(_ context.Context, i int, push func(int)) error {
		if c := 2*i + 1; c < n {
			push(c)
			if c+1 < n {
				push(c + 1)
			}
		}
		return nil
	}
	for _, jobs := range []int{1, 16} {
		b.Run(map[int]string{1: "jobs=1", 16: "jobs=16"}[jobs], func(b *testing.B) {
			for b.Loop() {
				if err := Walk(context.Background(), jobs, []int{0}, visit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/item")
		})
	}
}
