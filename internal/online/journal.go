// Package online lets a run clean beside a registry that keeps serving. What the
// plan deletes is moved into a quarantine (one per run, invisible to the registry);
// once every request that could have seen it in place has ended, a verification
// reads what the live registry wrote since the run began and puts back what it
// needs; then the quarantine is purged. A journal in the quarantine lets a later
// run finish a verification that a crash interrupted.
package online

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"golang.org/x/sync/errgroup"
)

// clockMargin widens "written since the run began" for the resolution of the
// storage's times (object stores: seconds) and small clock differences.
const clockMargin = 2 * time.Second

const journalName = "journal.json"

// Journal says what a run's quarantine is for.
type Journal struct {
	Run string `json:"run"`
	// Since is when the run began, on the storage's clock (its journal's time), less
	// a margin: whatever the registry wrote at or after it is new to the run's scan.
	Since time.Time `json:"since"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	// Verified is set once the verification put back all it had to: only the purge
	// remains, or, for a run that keeps what it deletes, the wait for Expires.
	Verified bool `json:"verified,omitempty"`
	// Keep is how long the run keeps what it deleted in its trash (--keep-deleted);
	// zero: purged once verified.
	Keep time.Duration `json:"keep_ns,omitempty"`
	// Expires is when a verified run's trash may be purged (Since, its margin back,
	// plus Keep); zero for a run that keeps nothing.
	Expires time.Time `json:"expires,omitzero"`
	// Purging is set on a trash before its purge deletes anything: what is left of
	// it may no longer hold whole images, and is not restored.
	Purging bool `json:"purging,omitempty"`
}

// IsTrash reports whether the quarantine is a verified run's trash, kept until it
// expires, rather than the pending quarantine of an interrupted run.
func (j *Journal) IsTrash() bool { return j != nil && j.Verified && !j.Expires.IsZero() }

// Began is when the run began, on the storage's clock.
func (j *Journal) Began() time.Time { return j.Since.Add(clockMargin) }

// Dir maps a storage directory to its place in the run's quarantine.
func (j *Journal) Dir(p string) string { return layout.Quarantined(j.Run, p) }

func journalPath(run string) string { return layout.QuarantineRun(run) + "/" + journalName }

// Begin starts a run's quarantine: it writes the journal and reads its time back,
// so that "since" is measured on the clock that stamps the registry's writes.
func Begin(ctx context.Context, b storage.Backend, now time.Time, keep time.Duration) (*Journal, error) {
	w, ok := b.(storage.Writer)
	if !ok {
		return nil, fmt.Errorf("%s: this storage cannot hold a quarantine, which an online run needs", b)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	j := &Journal{
		Run:   now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:]),
		Since: now.Add(-clockMargin),
		Host:  host,
		PID:   os.Getpid(),
		Keep:  keep,
	}
	if err := write(ctx, w, j); err != nil {
		return nil, err
	}
	f, err := b.Stat(ctx, journalPath(j.Run))
	if err != nil {
		return nil, fmt.Errorf("reading back the quarantine's journal: %w", err)
	}
	if !f.ModTime.IsZero() {
		j.Since = f.ModTime.Add(-clockMargin)
		if err := write(ctx, w, j); err != nil {
			return nil, err
		}
	}
	return j, nil
}

func write(ctx context.Context, w storage.Writer, j *Journal) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := w.WriteFile(ctx, journalPath(j.Run), append(data, '\n'), false); err != nil {
		return fmt.Errorf("writing the quarantine's journal: %w", err)
	}
	return nil
}

// Quarantine is one run's quarantine as found in the storage.
type Quarantine struct {
	// Journal is nil when the run's journal is gone or unreadable: the run's Since is
	// then unknown, and everything live counts as new.
	Journal *Journal
	Run     string
	// Files are the storage paths of what the quarantine holds (not its own paths),
	// when Listed.
	Files  []storage.File
	Listed bool
}

// Load reads the journal of every run's quarantine found in the storage, oldest run
// first. Where the storage can walk without listing leaf directories (a filesystem),
// the runs' files are not listed (a long trash would cost every run a walk of it):
// Listed tells, and LoadRun lists one run.
func Load(ctx context.Context, b storage.Backend) ([]*Quarantine, error) {
	if lw, ok := b.(storage.LeafWalker); ok {
		return load(ctx, b, layout.QuarantineDir, func(fn func(storage.File) error) error {
			return lw.WalkLeaves(ctx, layout.QuarantineDir, func(dir string) string {
				if path.Dir(dir) == layout.QuarantineDir {
					return journalName
				}
				return ""
			}, fn)
		}, false)
	}
	return load(ctx, b, layout.QuarantineDir, nil, true)
}

// LoadRun reads one run's quarantine.
func LoadRun(ctx context.Context, b storage.Backend, run string) (*Quarantine, error) {
	dir := layout.QuarantineRun(run)
	var walk func(func(storage.File) error) error
	if lw, ok := b.(storage.LeafWalker); ok {
		// The quarantine mirrors the layout: its leaf directories are the layout's.
		walk = func(fn func(storage.File) error) error {
			return lw.WalkLeaves(ctx, dir, func(d string) string {
				if p, ok := strings.CutPrefix(d, dir+"/"); ok {
					return layout.LeafFile(p)
				}
				return ""
			}, fn)
		}
	}
	qs, err := load(ctx, b, dir, walk, true)
	if err != nil || len(qs) == 0 {
		return &Quarantine{Run: run, Listed: err == nil}, err
	}
	return qs[0], nil
}

// List lists q's files, once.
func (q *Quarantine) List(ctx context.Context, b storage.Backend) error {
	if q.Listed {
		return nil
	}
	l, err := LoadRun(ctx, b, q.Run)
	if err != nil {
		return err
	}
	q.Files, q.Listed = l.Files, true
	return nil
}

func load(ctx context.Context, b storage.Backend, dir string, walk func(func(storage.File) error) error, listed bool) ([]*Quarantine, error) {
	if walk == nil {
		walk = func(fn func(storage.File) error) error { return b.Walk(ctx, dir, fn) }
	}
	var mu sync.Mutex
	runs := map[string]*Quarantine{}
	var journals []string
	err := walk(func(f storage.File) error {
		rest, ok := strings.CutPrefix(f.Path, layout.QuarantineDir+"/")
		if !ok || f.BadName {
			return nil
		}
		run, _, _ := strings.Cut(rest, "/")
		mu.Lock()
		defer mu.Unlock()
		q := runs[run]
		if q == nil {
			q = &Quarantine{Run: run, Listed: listed}
			runs[run] = q
		}
		if f.EmptyDir || f.Irregular {
			return nil
		}
		if p, ok := layout.Unquarantined(run, f.Path); ok {
			f.Path = p
			q.Files = append(q.Files, f)
		} else if f.Path == journalPath(run) {
			journals = append(journals, run)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the quarantine: %w", err)
	}
	for _, run := range journals {
		data, err := b.ReadFile(ctx, journalPath(run), 64<<10)
		if err != nil && !storage.IsNotExist(err) {
			return nil, fmt.Errorf("reading the quarantine's journal: %w", err)
		}
		var j Journal
		if err == nil && json.Unmarshal(data, &j) == nil && j.Run == run {
			runs[run].Journal = &j
		}
	}
	out := make([]*Quarantine, 0, len(runs))
	for _, q := range runs {
		out = append(out, q)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Run < out[k].Run })
	return out, nil
}

// Finish ends a verified quarantine: purged (counted in tr, see Purge), or, when its
// run keeps what it deleted, recorded as trash until it expires.
func Finish(ctx context.Context, b storage.Backend, q *Quarantine, jobs int, tr *progress.Tracker) (trash bool, err error) {
	if w, ok := b.(storage.Writer); ok && q.Journal != nil {
		j := *q.Journal
		j.Verified = true
		if j.Keep > 0 && len(q.Files) > 0 {
			j.Expires = j.Began().Add(j.Keep)
		}
		if err := write(ctx, w, &j); err != nil {
			return false, err
		}
		q.Journal = &j
		if j.IsTrash() {
			return true, nil
		}
	}
	return false, Purge(ctx, b, q, jobs, tr)
}

// Purge deletes a run's quarantine: its files first, in parallel batches as a
// run's deletions go (when q is listed), then what is left of its directories, its
// journal last, so that a journal always describes what is left. The files are
// counted, batch by batch, in a stage of tr: "purging the trash" for a trash,
// "purging the quarantine" for a quarantine.
func Purge(ctx context.Context, b storage.Backend, q *Quarantine, jobs int, tr *progress.Tracker) error {
	if w, ok := b.(storage.Writer); ok && q.Journal.IsTrash() && !q.Journal.Purging {
		j := *q.Journal
		j.Purging = true
		if err := write(ctx, w, &j); err != nil {
			return err
		}
		q.Journal = &j
	}
	if q.Listed && len(q.Files) > 0 {
		name := "purging the quarantine"
		if q.Journal.IsTrash() {
			name = "purging the trash"
		}
		st := tr.Begin(name, "files", int64(len(q.Files)))
		defer st.End()
		const batch = 1000
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(jobs, 1))
		for start := 0; start < len(q.Files); start += batch {
			files := q.Files[start:min(start+batch, len(q.Files))]
			g.Go(func() error {
				units := make([]storage.Unit, len(files))
				for i, f := range files {
					units[i] = storage.Unit{Dir: layout.Quarantined(q.Run, path.Dir(f.Path)), Files: []string{path.Base(f.Path)}}
				}
				if err := b.Delete(gctx, units); err != nil {
					return err
				}
				st.Add(int64(len(units)))
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("purging the quarantine: %w", err)
		}
	}
	dir := layout.QuarantineRun(q.Run)
	if err := b.Delete(ctx, []storage.Unit{{Dir: dir + "/" + layout.V2Dir}}); err != nil {
		return fmt.Errorf("purging the quarantine: %w", err)
	}
	if err := b.Delete(ctx, []storage.Unit{{Dir: dir}}); err != nil {
		return fmt.Errorf("purging the quarantine: %w", err)
	}
	// The now empty parents go too, so that a storage without quarantine shows none
	// (object stores have no directories: a no-op).
	return b.PruneDirs(ctx, []string{layout.QuarantineDir, layout.ToolDir})
}

// ErrBlind says a verification met something it cannot read or understand: it put
// back the whole quarantine rather than guess.
var ErrBlind = errors.New("verification could not tell what the registry needs")
