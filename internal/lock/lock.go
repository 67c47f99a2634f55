// Package lock keeps real clean-registry runs on one storage one at a time, with a
// small JSON file in the storage itself (layout.LockFile): created if absent, rewritten
// by a heartbeat while the run lasts, removed at its end. Any host that reaches the
// storage sees it, which no local lock file would give.
//
// A lock whose holder is gone is broken: on the holder's own host when its process no
// longer exists, anywhere when its heartbeat is older than StaleAfter (clocks must then
// agree to well within StaleAfter). What this cannot exclude, and the heartbeat then
// reports through Lost:
//   - Breaking re-reads the lock and, only if it is unchanged, overwrites it with our
//     own; the file never goes missing meanwhile, so no newcomer can create a lock
//     then. Runs breaking the same stale lock at once all overwrite it: each reads it
//     back after a short delay and only the one whose ID it finds goes on. A breaker
//     that stalls between its re-read and its write for longer than that delay can
//     still overwrite the winner's lock, whose heartbeat then reports it.
//   - On backends without an atomic create-if-absent (Writer.ExclusiveCreate false:
//     the registry's gcs and azure drivers, S3 servers that ignore If-None-Match) two
//     runs can both write; each reads back after a short delay and only the one whose
//     ID it finds goes on. Best effort: a write slower than the delay escapes it.
//   - A heartbeat and a release read the lock, then write or remove it; another run
//     that judged the lock stale meanwhile can be overwritten or removed in that gap.
package lock

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Defaults of Options.
const (
	DefaultStaleAfter     = 2 * time.Minute
	DefaultHeartbeatEvery = 15 * time.Second
)

const (
	// pollEvery is how often a waiting Acquire tries again (plus up to pollJitter, so
	// that waiting runs do not knock in step).
	pollEvery  = 500 * time.Millisecond
	pollJitter = 100 * time.Millisecond
	// maxLockSize bounds the read of a lock file: anything larger is not a lock.
	maxLockSize = 64 << 10
	// attemptsPerTry bounds how often one try goes round when the lock changes under
	// it (released, broken, recreated) before it gives up.
	attemptsPerTry = 5
)

// settleDelay is how long a writer waits before reading its lock back where the
// create was not atomic, or after it overwrote a stale lock: longer than a request
// takes, so that a competing write has landed. A variable for the tests.
var settleDelay = time.Second

// Holder is what a lock file says about the run holding it (times in UTC).
type Holder struct {
	// ID is unique per Acquire: a run knows its own lock by it.
	ID   string `json:"id"`
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// PIDNamespace is the holder's PID namespace on Linux (empty elsewhere): two
	// containers can share a host name but not their PIDs, and a PID is checked only
	// from the namespace it belongs to.
	PIDNamespace string    `json:"pid_namespace,omitempty"`
	Started      time.Time `json:"started"`
	Heartbeat    time.Time `json:"heartbeat"`
	Command      string    `json:"command,omitempty"`
}

// Options tune Acquire. The zero value fails at once when the lock is held.
type Options struct {
	// Wait is how long to wait for a held lock; 0 fails at once.
	Wait time.Duration
	// StaleAfter is the heartbeat age past which a lock counts as abandoned (default
	// 2m). A lock file that is not readable as a lock counts as abandoned once it has
	// not been modified for that long.
	StaleAfter time.Duration
	// HeartbeatEvery is how often a held lock is rewritten (default 15s); keep it well
	// under StaleAfter.
	HeartbeatEvery time.Duration
	// Log receives messages for the user, such as the breaking of a stale lock.
	Log func(string)
	// Command is recorded in the lock, for whoever finds it held.
	Command string
	// Now replaces the clock for the times written and judged (tests).
	Now func() time.Time
}

// HeldError says another run holds the lock.
type HeldError struct {
	Holder Holder
	// Path is the lock file's storage path.
	Path string
	// Unreadable says the file holds no lock this version can read; Holder then has
	// only Heartbeat, the file's modification time.
	Unreadable bool

	seenAt time.Time // when the lock was read, for the ages in the message
	raw    []byte    // the file as read (nil when too large), to tell a change
}

func (e *HeldError) Error() string {
	if e.Unreadable {
		return "storage is locked by another clean-registry run, or holds a damaged lock: " + e.describe() + "; retry later or use --wait"
	}
	return "storage is locked by another clean-registry run: " + e.describe() + "; retry later or use --wait"
}

// describe names the holder, or the unreadable file.
func (e *HeldError) describe() string {
	now := e.seenAt
	if now.IsZero() {
		now = time.Now()
	}
	h := e.Holder
	if e.Unreadable {
		return fmt.Sprintf("%s is not a lock this version can read (last modified %s)", e.Path, ago(now, h.Heartbeat))
	}
	return fmt.Sprintf("pid %d on host %s, started %s (%s), last heartbeat %s",
		h.PID, h.Host, h.Started.Local().Format("2006-01-02 15:04:05 MST"), ago(now, h.Started), ago(now, h.Heartbeat))
}

// IsHeld reports whether err says the lock is held by another run.
func IsHeld(err error) bool {
	var he *HeldError
	return errors.As(err, &he)
}

// ago says how long before now t was, in whole seconds.
func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return fmt.Sprintf("%s in the future (clocks disagree?)", -d)
	}
	return d.String() + " ago"
}

// Lock is a held lock. Its heartbeat runs until Release.
type Lock struct {
	locker  *locker
	holder  Holder // written (under mu) by the heartbeat goroutine only
	stop    chan struct{}
	stopped chan struct{}
	cancel  context.CancelFunc

	mu       sync.Mutex
	lost     error
	lastBeat time.Time // of the last heartbeat written, by the real clock

	releaseOnce sync.Once
	releaseErr  error
}

// locker is what Acquire and the Lock share: the storage, the options, who we are.
type locker struct {
	b    storage.Backend
	w    storage.Writer
	path string
	opts Options
	me   Holder
}

// Acquire takes the storage's lock for a real run, waiting up to opts.Wait for a
// run that holds it. The backend must implement storage.Writer. A lock held by a
// live run gives a *HeldError; one whose holder is gone is broken (reported through
// opts.Log) and taken.
func Acquire(ctx context.Context, b storage.Backend, opts Options) (*Lock, error) {
	w, ok := b.(storage.Writer)
	if !ok {
		return nil, fmt.Errorf("storage %s cannot be locked: its backend does not write files", b)
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.HeartbeatEvery <= 0 {
		opts.HeartbeatEvery = DefaultHeartbeatEvery
	}
	if opts.HeartbeatEvery >= opts.StaleAfter {
		return nil, fmt.Errorf("lock heartbeat every %s would let the lock go stale (after %s)", opts.HeartbeatEvery, opts.StaleAfter)
	}
	if opts.Log == nil {
		opts.Log = func(string) {}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	now := opts.Now().UTC()
	lk := &locker{b: b, w: w, path: layout.LockFile, opts: opts, me: Holder{
		ID: id, Host: host, PID: os.Getpid(), PIDNamespace: pidNamespace(),
		Started: now, Heartbeat: now, Command: opts.Command,
	}}
	deadline := time.Now().Add(opts.Wait)
	for waiting := false; ; waiting = true {
		held, err := lk.try(ctx)
		if err != nil {
			return nil, err
		}
		if held == nil {
			return lk.start(), nil
		}
		remaining := time.Until(deadline)
		if opts.Wait <= 0 || remaining <= 0 {
			return nil, held
		}
		if !waiting {
			opts.Log(fmt.Sprintf("storage is locked by another clean-registry run: %s; waiting up to %s", held.describe(), remaining.Round(time.Second)))
		}
		pause := min(pollEvery+mathrand.N(pollJitter), remaining)
		if err := sleep(ctx, pause); err != nil {
			return nil, fmt.Errorf("waiting for the storage lock: %w", err)
		}
	}
}

// try takes the lock if it can: nil, nil when taken; a *HeldError when a live run
// holds it.
func (lk *locker) try(ctx context.Context) (*HeldError, error) {
	for attempt := 0; attempt < attemptsPerTry; attempt++ {
		lk.me.Heartbeat = lk.opts.Now().UTC()
		data, err := json.Marshal(lk.me)
		if err != nil {
			return nil, err
		}
		err = lk.w.WriteFile(ctx, lk.path, data, true)
		if err == nil {
			if lk.w.ExclusiveCreate() {
				return nil, nil
			}
			held, again, err := lk.confirm(ctx)
			if err != nil {
				lk.abandon(ctx)
			}
			if !again {
				return held, err
			}
			continue
		}
		if !storage.IsExist(err) {
			return nil, fmt.Errorf("taking the storage lock: %w", err)
		}
		cur, err := lk.read(ctx)
		if storage.IsNotExist(err) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, err
		}
		if !cur.Unreadable && cur.Holder.ID == lk.me.ID {
			// Our own create, retried after its answer was lost.
			return nil, nil
		}
		why, stale := lk.staleness(cur)
		if !stale {
			return cur, nil
		}
		if cur.Unreadable {
			lk.opts.Log(fmt.Sprintf("breaking a stale lock: %s is not a lock this version can read and %s", lk.path, why))
		} else {
			lk.opts.Log(fmt.Sprintf("breaking a stale lock of pid %d on host %s (%s)", cur.Holder.PID, cur.Holder.Host, why))
		}
		replaced, err := lk.replaceIfUnchanged(ctx, cur, data)
		if err != nil {
			return nil, err
		}
		if replaced {
			held, again, err := lk.confirm(ctx)
			if err != nil {
				lk.abandon(ctx)
			}
			if !again {
				return held, err
			}
		}
	}
	return nil, fmt.Errorf("taking the storage lock: %s kept changing under %d attempts", lk.path, attemptsPerTry)
}

// confirm reads the lock back after settleDelay, where our write may have raced
// another's: a *HeldError when another run's write won; again when the lock is gone
// (a competing run's doing), to try anew.
func (lk *locker) confirm(ctx context.Context) (held *HeldError, again bool, err error) {
	if err := sleep(ctx, settleDelay); err != nil {
		return nil, false, err
	}
	cur, err := lk.read(ctx)
	switch {
	case storage.IsNotExist(err):
		return nil, true, nil
	case err != nil:
		return nil, false, err
	case cur.Unreadable || cur.Holder.ID != lk.me.ID:
		return cur, false, nil
	}
	return nil, false, nil
}

// abandon removes the lock we wrote, if it is ours, when Acquire fails after writing
// it (cancelled while confirming): the next run should not wait for it to go stale.
func (lk *locker) abandon(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if cur, err := lk.read(ctx); err == nil && !cur.Unreadable && cur.Holder.ID == lk.me.ID {
		lk.w.RemoveFile(ctx, lk.path)
	}
}

// read reads the lock as a *HeldError (not returned as an error: a description).
// Errors wrap storage.ErrNotExist when there is no lock.
func (lk *locker) read(ctx context.Context) (*HeldError, error) {
	seenAt := lk.opts.Now()
	data, err := lk.b.ReadFile(ctx, lk.path, maxLockSize)
	if err != nil && !storage.IsTooLarge(err) {
		return nil, err
	}
	var h Holder
	if err == nil && json.Unmarshal(data, &h) == nil && h.ID != "" {
		return &HeldError{Holder: h, Path: lk.path, seenAt: seenAt, raw: data}, nil
	}
	st, err := lk.b.Stat(ctx, lk.path)
	if err != nil {
		return nil, err
	}
	return &HeldError{Holder: Holder{Heartbeat: st.ModTime}, Path: lk.path, Unreadable: true, seenAt: seenAt, raw: data}, nil
}

// staleness says whether a lock's holder is gone, and why.
func (lk *locker) staleness(cur *HeldError) (why string, stale bool) {
	h := cur.Holder
	if !cur.Unreadable && h.PID > 0 && h.Host == lk.me.Host && h.PIDNamespace == lk.me.PIDNamespace &&
		processGone(h.PID) {
		return "process gone", true
	}
	// A heartbeat in the future (clocks apart) has a negative age: never stale.
	age := cur.seenAt.Sub(h.Heartbeat)
	if age <= lk.opts.StaleAfter {
		return "", false
	}
	if cur.Unreadable {
		return fmt.Sprintf("unchanged for %s", age.Round(time.Second)), true
	}
	return fmt.Sprintf("no heartbeat for %s", age.Round(time.Second)), true
}

// replaceIfUnchanged overwrites a stale lock with ours (data) if it is still what was
// judged: a lock rewritten meanwhile (a heartbeat after all, another breaker's) stays,
// and the caller judges it anew.
func (lk *locker) replaceIfUnchanged(ctx context.Context, stale *HeldError, data []byte) (bool, error) {
	again, err := lk.read(ctx)
	if storage.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !bytes.Equal(again.raw, stale.raw) || !again.Holder.Heartbeat.Equal(stale.Holder.Heartbeat) {
		return false, nil
	}
	if err := lk.w.WriteFile(ctx, lk.path, data, false); err != nil {
		return false, fmt.Errorf("breaking the stale lock %s: %w", lk.path, err)
	}
	return true, nil
}

// processGone reports whether no process has this PID here. EPERM means one does.
func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// pidNamespace names this process's PID namespace ("pid:[4026531836]"); empty where
// there is no /proc.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

func newID() (string, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(r[:]), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start begins the heartbeat of a lock just taken. The heartbeat's requests do not
// follow Acquire's context: a run being cancelled still holds its lock until Release.
func (lk *locker) start() *Lock {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Lock{locker: lk, holder: lk.me, stop: make(chan struct{}), stopped: make(chan struct{}),
		cancel: cancel, lastBeat: time.Now()}
	go l.heartbeat(ctx)
	return l
}

// Holder is what the lock file says about this run.
func (l *Lock) Holder() Holder {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

// Lost reports why the lock can no longer be trusted, or nil while it is held: the
// lock file was removed or taken over by another run, or no heartbeat could be
// written for StaleAfter (so another run may have broken it). It stays set.
func (l *Lock) Lost() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

func (l *Lock) setLost(err error) {
	l.mu.Lock()
	if l.lost == nil {
		l.lost = err
	}
	l.mu.Unlock()
}

func (l *Lock) heartbeat(ctx context.Context) {
	defer close(l.stopped)
	every := l.locker.opts.HeartbeatEvery
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ticker.C:
		}
		beatCtx, cancel := context.WithTimeout(ctx, max(every, 5*time.Second))
		goOn := l.beat(beatCtx)
		cancel()
		if !goOn {
			return
		}
	}
}

// beat rewrites the lock with a new heartbeat if it is still ours; it reports whether
// to go on beating.
func (l *Lock) beat(ctx context.Context) bool {
	lk := l.locker
	cur, err := lk.read(ctx)
	switch {
	case storage.IsNotExist(err):
		l.setLost(fmt.Errorf("the storage lock %s was removed by someone else while this run held it", lk.path))
		return false
	case err != nil:
		l.beatFailed(err)
		return true
	case cur.Unreadable:
		l.setLost(fmt.Errorf("the storage lock %s was overwritten with something else while this run held it", lk.path))
		return false
	case cur.Holder.ID != l.holder.ID:
		l.setLost(fmt.Errorf("the storage lock %s was taken over by pid %d on host %s while this run held it", lk.path, cur.Holder.PID, cur.Holder.Host))
		return false
	}
	next := l.holder
	next.Heartbeat = lk.opts.Now().UTC()
	data, err := json.Marshal(next)
	if err == nil {
		err = lk.w.WriteFile(ctx, lk.path, data, false)
	}
	if err != nil {
		l.beatFailed(err)
		return true
	}
	l.mu.Lock()
	l.holder, l.lastBeat = next, time.Now()
	l.mu.Unlock()
	return true
}

func (l *Lock) beatFailed(err error) {
	l.mu.Lock()
	since := time.Since(l.lastBeat)
	l.mu.Unlock()
	if since > l.locker.opts.StaleAfter {
		l.setLost(fmt.Errorf("no heartbeat of the storage lock could be written for %s, so another run may have taken it; last error: %w", since.Round(time.Second), err))
	}
}

// Release stops the heartbeat and removes the lock file if it is still this run's.
// Pass a context that is not cancelled: a run stopped by a signal should still
// release. Later calls return the first one's result.
func (l *Lock) Release(ctx context.Context) error {
	l.releaseOnce.Do(func() {
		close(l.stop)
		l.cancel()
		<-l.stopped
		lk := l.locker
		cur, err := lk.read(ctx)
		switch {
		case storage.IsNotExist(err):
			return
		case err != nil:
			l.releaseErr = fmt.Errorf("releasing the storage lock: %w", err)
			return
		case cur.Unreadable || cur.Holder.ID != l.holder.ID:
			return // not ours any more: Lost says so
		}
		if err := lk.w.RemoveFile(ctx, lk.path); err != nil {
			l.releaseErr = fmt.Errorf("releasing the storage lock: %w", err)
			return
		}
		// Leave the storage as the run found it: the tool's directory goes when empty
		// (a no-op on object stores, which have no directories).
		if err := lk.b.PruneDirs(ctx, []string{path.Dir(lk.path)}); err != nil {
			l.releaseErr = fmt.Errorf("releasing the storage lock: %w", err)
		}
	})
	return l.releaseErr
}
