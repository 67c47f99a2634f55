// Package regdriver puts any of the registry's own storage drivers (distribution's
// StorageDriver: gcs, azure, ...) behind storage.Backend.
package regdriver

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"strings"
	"sync"
	"unicode/utf8"

	gcsstorage "cloud.google.com/go/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/parallel"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// DriverBackend serves a registry's storage through one of the registry's own storage
// drivers (distribution's StorageDriver): exactly the registry's key layout,
// credentials and quirks, at the price of the driver's API: a directory listing does
// not tell files from directories, so every entry costs a Stat. Walks still run in
// parallel, bounded by jobs. Used for gcs and azure, where correctness matters more
// than speed; S3 has its own native backend.
type DriverBackend struct {
	d     storagedriver.StorageDriver
	name  string
	jobs  int
	mu    sync.Mutex
	calls map[string]int64
}

// Wrap puts a storage driver behind storage.Backend. name is shown to humans, e.g.
// "gcs://bucket/root".
func Wrap(d storagedriver.StorageDriver, name string, jobs int) *DriverBackend {
	return &DriverBackend{d: d, name: name, jobs: max(jobs, 1), calls: map[string]int64{}}
}

func (b *DriverBackend) String() string { return b.name }

// Requests counts the driver calls by method (each is one or a few HTTP requests).
func (b *DriverBackend) Requests() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int64, len(b.calls))
	for k, v := range b.calls {
		out[k] = v
	}
	return out
}

func (b *DriverBackend) count(method string) {
	b.mu.Lock()
	b.calls[method]++
	b.mu.Unlock()
}

// driverPath maps a storage path to the driver's absolute path.
func driverPath(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "/", nil
	}
	if !iofs.ValidPath(p) {
		return "", fmt.Errorf("invalid storage path %q", p)
	}
	return "/" + p, nil
}

func notFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return true
	}
	// The gcs driver compares with == an error the storage client now wraps, so a
	// missing object can arrive as a generic driver error; that type has no Unwrap.
	var de storagedriver.Error
	if errors.As(err, &de) {
		return errors.Is(de.Detail, gcsstorage.ErrObjectNotExist)
	}
	return errors.Is(err, gcsstorage.ErrObjectNotExist)
}

// Walk lists directories concurrently and stats every entry to learn what it is.
func (b *DriverBackend) Walk(ctx context.Context, dir string, fn func(storage.File) error) error {
	root, err := driverPath(dir)
	if err != nil {
		return err
	}
	return parallel.Walk(ctx, b.jobs, []string{root}, func(ctx context.Context, d string, push func(string)) error {
		b.count("List")
		entries, err := b.d.List(ctx, d)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return fmt.Errorf("listing %s: %w", d, err)
		}
		for _, e := range entries {
			if !utf8.ValidString(e) {
				// No storage path can name it: report it, never descend into it.
				if err := fn(storage.File{Path: strings.TrimPrefix(e, "/"), Size: -1, BadName: true}); err != nil {
					return err
				}
				continue
			}
			b.count("Stat")
			fi, err := b.d.Stat(ctx, e)
			if err != nil {
				if notFound(err) {
					continue // gone meanwhile
				}
				return fmt.Errorf("stat %s: %w", e, err)
			}
			if fi.IsDir() {
				push(e)
				continue
			}
			if err := fn(storage.File{Path: strings.TrimPrefix(e, "/"), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadFile reads a file's content through the driver, at most limit bytes: the
// driver's GetContent would read any size whole, so the read goes through Reader.
func (b *DriverBackend) ReadFile(ctx context.Context, p string, limit int64) ([]byte, error) {
	dp, err := driverPath(p)
	if err != nil {
		return nil, err
	}
	b.count("Reader")
	r, err := b.d.Reader(ctx, dp, 0)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("%s: %w", p, storage.ErrNotExist)
		}
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if int64(len(data)) > limit {
		return nil, &storage.TooLargeError{Path: p, Limit: limit}
	}
	return data, nil
}

// Stat returns a file's size and time; a directory counts as missing.
func (b *DriverBackend) Stat(ctx context.Context, p string) (storage.File, error) {
	dp, err := driverPath(p)
	if err != nil {
		return storage.File{}, err
	}
	b.count("Stat")
	fi, err := b.d.Stat(ctx, dp)
	if err != nil {
		if notFound(err) {
			return storage.File{}, fmt.Errorf("%s: %w", p, storage.ErrNotExist)
		}
		return storage.File{}, err
	}
	if fi.IsDir() {
		return storage.File{}, fmt.Errorf("%s is a directory: %w", p, storage.ErrNotExist)
	}
	return storage.File{Path: p, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// DirExists lists dir: the drivers report a prefix without objects as missing.
func (b *DriverBackend) DirExists(ctx context.Context, dir string) (bool, error) {
	dp, err := driverPath(dir)
	if err != nil {
		return false, err
	}
	b.count("List")
	entries, err := b.d.List(ctx, dp)
	if err != nil {
		if notFound(err) {
			return false, nil
		}
		return false, err
	}
	return len(entries) > 0, nil
}

// Delete removes each unit's directory with the driver's recursive Delete, units in
// parallel. Known file names do not help here: the driver lists anyway.
func (b *DriverBackend) Delete(ctx context.Context, units []storage.Unit) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for _, u := range units {
		dp, err := driverPath(u.Dir)
		if err != nil {
			return err
		}
		if dp == "/" {
			return fmt.Errorf("refusing to delete the storage root")
		}
		for _, f := range u.Files {
			if _, err := driverPath(path.Join(u.Dir, f)); err != nil || strings.Contains(f, "..") {
				return fmt.Errorf("invalid file %q in %s", f, u.Dir)
			}
		}
		g.Go(func() error {
			b.count("Delete")
			if err := b.d.Delete(gctx, dp); err != nil && !notFound(err) {
				return fmt.Errorf("deleting %s: %w", u.Dir, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// PruneDirs does nothing: object stores have no directories.
func (b *DriverBackend) PruneDirs(ctx context.Context, dirs []string) error { return nil }

// Check lists the storage root: it proves the bucket answers with these credentials.
func (b *DriverBackend) Check(ctx context.Context) error {
	b.count("List")
	_, err := b.d.List(ctx, "/")
	if err != nil && !notFound(err) {
		return err
	}
	return nil
}
