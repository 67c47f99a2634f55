// Package progress is how the engine reports how far a run has got, as data: a
// Tracker holds the run's stages (the scan, the reading of sizes and times, each
// deletion phase) one after the other, and each Stage counts its work in atomics. The
// engine only adds to counters, once per directory, batch or object at most, without
// locks or allocations; whoever wants to show it (the command line's progress bar)
// reads them at its own pace.
//
// Every method is safe for concurrent use, and a nil *Tracker or *Stage does nothing:
// code that reports progress needs no check whether anyone watches.
package progress

import (
	"sync"
	"sync/atomic"
	"time"
)

// Seconds is the unit of a stage that counts time (a wait): its rate says nothing.
const Seconds = "seconds"

// Tracker records a run's stages in the order they begin.
type Tracker struct {
	mu     sync.Mutex // guards stages: taken once per stage, never per unit of work
	stages []*Stage
	n      atomic.Int64 // len(stages), read without the lock
}

// New returns an empty tracker.
func New() *Tracker { return &Tracker{} }

// Begin starts a stage named name ("scanning", "deleting blobs") that counts units
// ("entries", "deletions"); total is how many it will count, or -1 when not known.
// The previous stage, if any, is ended.
func (t *Tracker) Begin(name, unit string, total int64) *Stage {
	if t == nil {
		return nil
	}
	s := &Stage{Name: name, Unit: unit, began: time.Now()}
	s.total.Store(total)
	t.mu.Lock()
	if n := len(t.stages); n > 0 {
		t.stages[n-1].End()
	}
	t.stages = append(t.stages, s)
	t.n.Store(int64(len(t.stages)))
	t.mu.Unlock()
	return s
}

// Len is how many stages have begun.
func (t *Tracker) Len() int {
	if t == nil {
		return 0
	}
	return int(t.n.Load())
}

// Stages returns the stages begun so far, oldest first.
func (t *Tracker) Stages() []*Stage {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*Stage(nil), t.stages...)
}

// Stage counts the work of one stage.
type Stage struct {
	Name string // what the stage does
	Unit string // what Done counts

	done, total       atomic.Int64
	bytes, totalBytes atomic.Int64
	follow            atomic.Pointer[atomic.Int64]
	began             time.Time
	ended             atomic.Int64 // its duration in nanoseconds once ended, else 0
}

// Add counts n more units done.
func (s *Stage) Add(n int64) {
	if s != nil {
		s.done.Add(n)
	}
}

// AddBytes counts n more bytes done.
func (s *Stage) AddBytes(n int64) {
	if s != nil {
		s.bytes.Add(n)
	}
}

// SetTotal says how many units the stage counts (-1: not known).
func (s *Stage) SetTotal(n int64) {
	if s != nil {
		s.total.Store(n)
	}
}

// AddTotal counts n more units to do, for a stage that finds its work as it goes
// (begun with total 0).
func (s *Stage) AddTotal(n int64) {
	if s != nil {
		s.total.Add(n)
	}
}

// SetTotalBytes says how many bytes the stage counts (0: not known or none).
func (s *Stage) SetTotalBytes(n int64) {
	if s != nil {
		s.totalBytes.Store(n)
	}
}

// Follow makes Done read c, a counter the engine keeps anyway, instead of the
// stage's own: a scan that already counts its entries pays nothing more.
func (s *Stage) Follow(c *atomic.Int64) {
	if s != nil {
		s.follow.Store(c)
	}
}

// End marks the stage finished (the first call counts).
func (s *Stage) End() {
	if s != nil {
		s.ended.CompareAndSwap(0, max(int64(time.Since(s.began)), 1))
	}
}

// Snapshot is what a stage has counted at one instant.
type Snapshot struct {
	Name, Unit        string
	Done, Total       int64 // Total -1: not known
	Bytes, TotalBytes int64 // TotalBytes 0: not known or none
	Ended             bool
	Elapsed           time.Duration // since the stage began, until it ended
}

// Snapshot reads the stage's counters.
func (s *Stage) Snapshot() Snapshot {
	if s == nil {
		return Snapshot{Total: -1}
	}
	done := s.done.Load()
	if c := s.follow.Load(); c != nil {
		done += c.Load()
	}
	snap := Snapshot{Name: s.Name, Unit: s.Unit, Done: done, Total: s.total.Load(),
		Bytes: s.bytes.Load(), TotalBytes: s.totalBytes.Load(), Elapsed: time.Duration(s.ended.Load())}
	if snap.Elapsed == 0 {
		snap.Elapsed = time.Since(s.began)
	} else {
		snap.Ended = true
	}
	return snap
}

// Rate is the units done per second so far (0 at the very start).
func (s Snapshot) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Done) / s.Elapsed.Seconds()
}
