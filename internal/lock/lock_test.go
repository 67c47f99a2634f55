package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/internal/storage/regdriver"
)

func init() {
	// Long enough for a competing local write to land, short enough for many tests.
	settleDelay = 250 * time.Millisecond
}

// backends are the two kinds a lock meets: the filesystem backend, whose create is
// atomic, and the registry's own filesystem driver behind regdriver, whose create is
// not (as with gcs and azure). Both keep the lock at root/clean-registry/lock.
var backends = []struct {
	name string
	open func(t *testing.T, root string) storage.Backend
}{
	{"fs", func(t *testing.T, root string) storage.Backend {
		b, err := fs.New(root, 4)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
	{"regdriver", func(t *testing.T, root string) storage.Backend {
		d, err := factory.Create(context.Background(), "filesystem", map[string]any{"rootdirectory": root})
		if err != nil {
			t.Fatal(err)
		}
		return regdriver.Wrap(d, "driver:"+root, 4)
	}},
}

// forEachBackend runs test on a fresh storage root of each backend.
func forEachBackend(t *testing.T, test func(t *testing.T, b storage.Backend, root string)) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(layout.V2Dir)), 0o755); err != nil {
				t.Fatal(err)
			}
			test(t, bc.open(t, root), root)
		})
	}
}

func lockPath(root string) string { return filepath.Join(root, filepath.FromSlash(layout.LockFile)) }

func readHolder(t *testing.T, root string) Holder {
	t.Helper()
	data, err := os.ReadFile(lockPath(root))
	if err != nil {
		t.Fatal(err)
	}
	var h Holder
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("lock file %q: %v", data, err)
	}
	return h
}

func writeLockFile(t *testing.T, root string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(lockPath(root)), 0o755); err != nil {
		t.Fatal(err)
	}
	// Whole or not at all, as the backends write: a heartbeat may be reading.
	tmp := lockPath(root) + ".test-tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, lockPath(root)); err != nil {
		t.Fatal(err)
	}
}

func writeHolder(t *testing.T, root string, h Holder) {
	t.Helper()
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	writeLockFile(t, root, data)
}

// logRecorder collects Options.Log messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) log(m string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

func mustAcquire(t *testing.T, b storage.Backend, opts Options) *Lock {
	t.Helper()
	l, err := Acquire(context.Background(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

func TestAcquireRelease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
		ctx := context.Background()
		l, err := Acquire(ctx, b, Options{Command: "clean-registry -x app"})
		if err != nil {
			t.Fatal(err)
		}
		h := readHolder(t, root)
		host, _ := os.Hostname()
		if h != l.Holder() || h.ID == "" || h.PID != os.Getpid() || h.Host != host ||
			h.Command != "clean-registry -x app" || h.Started.IsZero() || h.Heartbeat.IsZero() {
			t.Errorf("lock file holds %+v; the lock says %+v", h, l.Holder())
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(lockPath(root)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lock file after release: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Errorf("second release: %v", err)
		}
		entries, _ := os.ReadDir(filepath.Join(root, layout.ToolDir))
		for _, e := range entries {
			t.Errorf("left in %s: %s", layout.ToolDir, e.Name())
		}
		l2, err := Acquire(ctx, b, Options{})
		if err != nil {
			t.Fatalf("acquire after release: %v", err)
		}
		if l2.Holder().ID == h.ID {
			t.Error("a new lock reuses the old ID")
		}
		l2.Release(ctx)
	})
}

func TestHeldByAnother(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
		first := mustAcquire(t, b, Options{})
		start := time.Now()
		_, err := Acquire(context.Background(), b, Options{})
		var held *HeldError
		if !errors.As(err, &held) || !IsHeld(err) {
			t.Fatalf("second acquire: %v, want a *HeldError", err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("without Wait, the second acquire took %s", time.Since(start))
		}
		if held.Holder.ID != first.Holder().ID || held.Path != layout.LockFile || held.Unreadable {
			t.Errorf("HeldError %+v, want the first lock's holder %+v", held, first.Holder())
		}
		msg := err.Error()
		host, _ := os.Hostname()
		for _, want := range []string{
			"storage is locked by another clean-registry run",
			fmt.Sprintf("pid %d on host %s", os.Getpid(), host),
			"started ", "last heartbeat 0s ago", "retry later or use --wait",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		if readHolder(t, root).ID != first.Holder().ID {
			t.Error("the failed acquire changed the lock file")
		}
	})
}

func TestWait(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
		ctx := context.Background()
		t.Run("released meanwhile", func(t *testing.T) {
			first := mustAcquire(t, b, Options{})
			go func() {
				time.Sleep(300 * time.Millisecond)
				first.Release(ctx)
			}()
			var log logRecorder
			second, err := Acquire(ctx, b, Options{Wait: 10 * time.Second, Log: log.log})
			if err != nil {
				t.Fatal(err)
			}
			defer second.Release(ctx)
			if readHolder(t, root).ID != second.Holder().ID {
				t.Error("the lock file is not the waiter's")
			}
			if !strings.Contains(log.String(), "waiting up to 10s") {
				t.Errorf("log %q does not say it waits", log.String())
			}
		})
		t.Run("times out", func(t *testing.T) {
			mustAcquire(t, b, Options{})
			start := time.Now()
			_, err := Acquire(ctx, b, Options{Wait: 700 * time.Millisecond})
			if !IsHeld(err) {
				t.Fatalf("got %v, want a *HeldError", err)
			}
			if d := time.Since(start); d < 700*time.Millisecond || d > 5*time.Second {
				t.Errorf("gave up after %s, want about 700ms", d)
			}
		})
		t.Run("cancelled", func(t *testing.T) {
			mustAcquire(t, b, Options{})
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := Acquire(ctx, b, Options{Wait: time.Minute})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want the context's error", err)
			}
		})
	})
}

// deadPID is the PID of a process that has exited (and been reaped).
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestStaleLocks(t *testing.T) {
	host, _ := os.Hostname()
	dead := deadPID(t)
	// A lock as another run wrote it, judged at now.
	type lockAt func(now time.Time) []byte
	fresh := func(h Holder) lockAt {
		return func(now time.Time) []byte {
			h := h // the backends' subtests run at once
			h.ID, h.Started, h.Heartbeat = "other-run", now.Add(-time.Minute), now.Add(-5*time.Second)
			data, _ := json.Marshal(h)
			return data
		}
	}
	old := func(h Holder, age time.Duration) lockAt {
		return func(now time.Time) []byte {
			h := h
			h.ID, h.Started, h.Heartbeat = "other-run", now.Add(-time.Hour), now.Add(-age)
			data, _ := json.Marshal(h)
			return data
		}
	}
	garbled := func(data string) lockAt { return func(time.Time) []byte { return []byte(data) } }
	tests := []struct {
		name     string
		lock     lockAt
		clock    time.Duration // how far the clock Acquire judges by is ahead
		broken   string        // the log's reason when the lock is broken; "" = held
		heldText string        // in the HeldError's message when held
	}{
		{name: "dead pid on this host", lock: fresh(Holder{Host: host, PID: dead, PIDNamespace: pidNamespace()}),
			broken: fmt.Sprintf("breaking a stale lock of pid %d on host %s (process gone)", dead, host)},
		{name: "live pid on this host", lock: fresh(Holder{Host: host, PID: os.Getpid(), PIDNamespace: pidNamespace()}),
			heldText: fmt.Sprintf("pid %d on host %s", os.Getpid(), host)},
		{name: "dead pid on another host", lock: fresh(Holder{Host: "elsewhere", PID: dead}),
			heldText: "on host elsewhere"},
		{name: "dead pid in another pid namespace", lock: fresh(Holder{Host: host, PID: dead, PIDNamespace: "pid:[1]"}),
			heldText: "last heartbeat 5s ago"},
		{name: "old heartbeat", lock: old(Holder{Host: "elsewhere", PID: 1}, 10*time.Minute),
			broken: "breaking a stale lock of pid 1 on host elsewhere (no heartbeat for 10m0s)"},
		{name: "heartbeat just within StaleAfter", lock: old(Holder{Host: "elsewhere", PID: 1}, 110*time.Second),
			heldText: "last heartbeat 1m50s ago"},
		{name: "heartbeat in the future", lock: old(Holder{Host: "elsewhere", PID: 1}, -time.Hour),
			heldText: "last heartbeat 1h0m0s in the future"},
		{name: "garbled, fresh", lock: garbled("not a lock\x00"),
			heldText: "clean-registry/lock is not a lock this version can read (last modified 0s ago)"},
		{name: "garbled, old", lock: garbled("not a lock\x00"), clock: 3 * time.Minute,
			broken: "breaking a stale lock: clean-registry/lock is not a lock this version can read and unchanged for 3m0s"},
		{name: "JSON without an ID, old", lock: garbled(`{"pid": 5}`), clock: 3 * time.Minute,
			broken: "unchanged for 3m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
				now := time.Now()
				writeLockFile(t, root, tt.lock(now))
				var log logRecorder
				clock := func() time.Time { return now.Add(tt.clock) }
				l, err := Acquire(context.Background(), b, Options{Log: log.log, Now: clock})
				if tt.broken == "" {
					if !IsHeld(err) || !strings.Contains(err.Error(), tt.heldText) {
						t.Fatalf("got %v, want a *HeldError saying %q", err, tt.heldText)
					}
					if log.String() != "" {
						t.Errorf("logged %q", log.String())
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release(context.Background())
				if !strings.Contains(log.String(), tt.broken) {
					t.Errorf("log %q, want %q", log.String(), tt.broken)
				}
				if readHolder(t, root).ID != l.Holder().ID {
					t.Error("the lock file is not the new holder's")
				}
			})
		})
	}
}

func TestHeartbeat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
		l := mustAcquire(t, b, Options{HeartbeatEvery: 20 * time.Millisecond})
		first := readHolder(t, root)
		deadline := time.Now().Add(5 * time.Second)
		for {
			time.Sleep(30 * time.Millisecond)
			h := readHolder(t, root)
			if h.Heartbeat.After(first.Heartbeat) {
				if h.ID != first.ID || !h.Started.Equal(first.Started) || h.PID != first.PID {
					t.Errorf("heartbeat changed more than the time: %+v, was %+v", h, first)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no heartbeat written in 5s")
			}
		}
		if err := l.Lost(); err != nil {
			t.Errorf("Lost: %v", err)
		}
	})
}

func TestLost(t *testing.T) {
	waitLost := func(t *testing.T, l *Lock) error {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if err := l.Lost(); err != nil {
				return err
			}
		}
		t.Fatal("Lost still nil after 5s")
		return nil
	}
	// A heartbeat reads the lock, then writes it: a change between the two is
	// overwritten (the gap the package comment admits). So the changes below come
	// just after a heartbeat was written, far from the next one.
	const every = 300 * time.Millisecond
	justAfterHeartbeat := func(t *testing.T, root string) {
		t.Helper()
		first := readHolder(t, root).Heartbeat
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if readHolder(t, root).Heartbeat.After(first) {
				return
			}
		}
		t.Fatal("no heartbeat in 5s")
	}
	forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
		ctx := context.Background()
		t.Run("taken over", func(t *testing.T) {
			l := mustAcquire(t, b, Options{HeartbeatEvery: every})
			if l.Lost() != nil {
				t.Fatal("lost at once")
			}
			justAfterHeartbeat(t, root)
			other := Holder{ID: "usurper", Host: "elsewhere", PID: 42, Started: time.Now().UTC(), Heartbeat: time.Now().UTC()}
			writeHolder(t, root, other)
			if err := waitLost(t, l); !strings.Contains(err.Error(), "taken over by pid 42 on host elsewhere") {
				t.Errorf("Lost: %v", err)
			}
			time.Sleep(2 * every) // more heartbeats, if any went on
			if err := l.Release(ctx); err != nil {
				t.Errorf("Release: %v", err)
			}
			if h := readHolder(t, root); h != other {
				t.Errorf("the other run's lock became %+v", h)
			}
			os.Remove(lockPath(root))
		})
		t.Run("removed", func(t *testing.T) {
			l := mustAcquire(t, b, Options{HeartbeatEvery: every})
			justAfterHeartbeat(t, root)
			os.Remove(lockPath(root))
			if err := waitLost(t, l); !strings.Contains(err.Error(), "removed") {
				t.Errorf("Lost: %v", err)
			}
			time.Sleep(2 * every)
			if err := l.Release(ctx); err != nil {
				t.Errorf("Release: %v", err)
			}
			if _, err := os.Lstat(lockPath(root)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the heartbeat recreated the lock: %v", err)
			}
		})
	})
}

// Concurrent Acquires on one storage: exactly one wins, every other one is told who.
func TestRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
		const contenders = 8
		for round := 0; round < 5; round++ {
			start := make(chan struct{})
			locks := make([]*Lock, contenders)
			errs := make([]error, contenders)
			var wg sync.WaitGroup
			for i := range contenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					locks[i], errs[i] = Acquire(context.Background(), b, Options{})
				}()
			}
			close(start)
			wg.Wait()
			var winner *Lock
			for i, l := range locks {
				switch {
				case errs[i] == nil && winner == nil:
					winner = l
				case errs[i] == nil:
					t.Fatalf("round %d: two contenders hold the lock", round)
				case !IsHeld(errs[i]):
					t.Fatalf("round %d: %v", round, errs[i])
				}
			}
			if winner == nil {
				t.Fatalf("round %d: no contender won: %v", round, errs)
			}
			if readHolder(t, root).ID != winner.Holder().ID {
				t.Fatalf("round %d: the lock file is not the winner's", round)
			}
			if err := winner.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Contenders racing to break one stale lock: one takes it.
func TestRaceToBreak(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storage.Backend, root string) {
		writeHolder(t, root, Holder{ID: "gone", Host: "elsewhere", PID: 1, Heartbeat: time.Now().Add(-time.Hour)})
		const contenders = 6
		locks := make([]*Lock, contenders)
		errs := make([]error, contenders)
		var wg sync.WaitGroup
		for i := range contenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				locks[i], errs[i] = Acquire(context.Background(), b, Options{})
			}()
		}
		wg.Wait()
		winners := 0
		for i, l := range locks {
			if errs[i] == nil {
				winners++
				defer l.Release(context.Background())
				if readHolder(t, root).ID != l.Holder().ID {
					t.Error("a winner does not hold the lock file")
				}
			} else if !IsHeld(errs[i]) {
				t.Errorf("contender %d: %v", i, errs[i])
			}
		}
		if winners != 1 {
			t.Errorf("%d winners, want 1: %v", winners, errs)
		}
	})
}

type readOnlyBackend struct{ storage.Backend }

func TestBackendWithoutWriter(t *testing.T) {
	b, err := fs.New(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(context.Background(), readOnlyBackend{b}, Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot be locked") {
		t.Fatalf("got %v", err)
	}
}

// A symbolic link in place of the tool's directory is never written through.
func TestSymlinkedToolDir(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(root, layout.ToolDir)); err != nil {
		t.Fatal(err)
	}
	b, err := fs.New(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(context.Background(), b, Options{})
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) > 0 {
		t.Errorf("written through the link: %v", entries)
	}
}

// A run cancelled after it wrote its lock but before it knew it had won leaves no
// lock behind (a backend without atomic create: the check waits settleDelay).
func TestCancelledWhileConfirming(t *testing.T) {
	root := t.TempDir()
	if backends[1].name != "regdriver" {
		t.Fatal("backends[1] is not the regdriver one")
	}
	b := backends[1].open(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), settleDelay/5)
	defer cancel()
	if _, err := Acquire(ctx, b, Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if _, err := os.Lstat(lockPath(root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}
}
