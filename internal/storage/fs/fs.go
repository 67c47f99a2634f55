// Package fs is the filesystem storage backend: the registry's filesystem driver's
// rootdirectory on a local or mounted disk.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/clean-registry/clean-registry/v2/internal/parallel"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Backend serves a registry root directory. It never follows a symbolic link found
// inside the root: walks report links as irregular files, reads refuse them, and
// deletions remove the link itself, never its target.
type Backend struct {
	root string // absolute, cleaned
	jobs int
}

// New opens the storage below root, a registry's rootdirectory. jobs bounds the
// directory reads a walk runs at once.
func New(root string, jobs int) (*Backend, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return nil, fmt.Errorf("storage root %s does not exist", abs)
	case err != nil:
		return nil, fmt.Errorf("storage root %s: %w", abs, err)
	case !st.IsDir():
		return nil, fmt.Errorf("storage root %s is not a directory", abs)
	}
	if jobs < 1 {
		jobs = 1
	}
	return &Backend{root: abs, jobs: jobs}, nil
}

func (b *Backend) String() string { return b.root }

// abs maps a storage path to the host path, refusing anything that would leave the root.
func (b *Backend) abs(p string) (string, error) {
	if p == "" {
		return b.root, nil
	}
	if path.IsAbs(p) || !iofs.ValidPath(p) {
		return "", fmt.Errorf("invalid storage path %q", p)
	}
	return filepath.Join(b.root, filepath.FromSlash(p)), nil
}

// Walk reads directories in parallel with a bounded pool. It takes file types from
// the directory listing (d_type) and never stats: sizes and times stay unknown.
func (b *Backend) Walk(ctx context.Context, dir string, fn func(storage.File) error) error {
	return b.WalkLeaves(ctx, dir, nil, fn)
}

// WalkLeaves is Walk without listing the directories whose only file leaf names: on a
// registry most directories are such leaves (one per blob, one per link), so this
// saves most of the directory reads of a walk.
func (b *Backend) WalkLeaves(ctx context.Context, dir string, leaf func(string) string, fn func(storage.File) error) error {
	if _, err := b.abs(dir); err != nil {
		return err
	}
	return parallel.Walk(ctx, b.jobs, []string{dir}, func(_ context.Context, d string, push func(string)) error {
		return b.readDir(d, leaf, fn, push)
	})
}

// readDir passes dir's files to fn and its subdirectories to push. A directory gone
// meanwhile holds nothing.
func (b *Backend) readDir(dir string, leaf func(string) string, fn func(storage.File) error, push func(string)) error {
	p, err := b.abs(dir)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	for seen := 0; ; {
		entries, err := f.ReadDir(512)
		if err != nil && err != io.EOF {
			if errors.Is(err, iofs.ErrNotExist) {
				// Removed while it was read (a live registry completes an upload, a
				// tag is deleted through the API): what it held is gone with it.
				return nil
			}
			// A directory that cannot be read must not pass for an empty one: what it
			// holds would be invisible to the scan.
			return err
		}
		seen += len(entries)
		if seen == 0 {
			return fn(storage.File{Path: dir, Size: -1, EmptyDir: true})
		}
		for _, e := range entries {
			child := e.Name()
			if dir != "" {
				child = dir + "/" + child
			}
			if !utf8.ValidString(e.Name()) {
				// No storage path can name it (paths are UTF-8): report it, never
				// descend into it. Whatever it holds is invisible to the scan.
				if err := fn(storage.File{Path: child, Size: -1, BadName: true}); err != nil {
					return err
				}
				continue
			}
			switch t := e.Type(); {
			case t.IsDir():
				if leaf != nil {
					if name := leaf(child); name != "" {
						if err := fn(storage.File{Path: child + "/" + name, Size: -1}); err != nil {
							return err
						}
						continue
					}
				}
				push(child)
			case t.IsRegular():
				if err := fn(storage.File{Path: child, Size: -1}); err != nil {
					return err
				}
			default:
				if err := fn(storage.File{Path: child, Size: -1, Irregular: true}); err != nil {
					return err
				}
			}
		}
		if err == io.EOF || len(entries) == 0 {
			return nil
		}
	}
}

// ReadFile reads a regular file, refusing a symbolic link in its last component
// (the walk never descends through one in the others).
func (b *Backend) ReadFile(ctx context.Context, p string, limit int64) ([]byte, error) {
	ap, err := b.abs(p)
	if err != nil {
		return nil, err
	}
	data, err := readNoFollow(ap, limit)
	if err == errTooLarge {
		return nil, &storage.TooLargeError{Path: p, Limit: limit}
	}
	return data, err
}

var errTooLarge = errors.New("too large")

// readNoFollow reads a file with bare system calls: open, read, close. Link files are
// tiny and there are hundreds of thousands of them; os.Open would add an fstat and a
// poller registration to each. One pooled buffer takes the read, and the result is
// allocated at its exact size. Past limit bytes it stops: errTooLarge.
func readNoFollow(path string, limit int64) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		if err == syscall.ELOOP {
			return nil, &os.PathError{Op: "open", Path: path, Err: errors.New("refusing to read through a symbolic link")}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	bp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bp)
	buf := *bp
	var out []byte
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if out == nil && n < len(buf) && int64(n) <= limit {
			// A short read of a regular file is its end: a link or a manifest costs one read.
			return append(make([]byte, 0, n), buf[:n]...), nil
		}
		if int64(len(out)+n) > limit {
			return nil, errTooLarge
		}
		out = append(out, buf[:n]...)
		if n == 0 {
			return out, nil
		}
	}
}

var readBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// Stat returns size and modification time, without following a final symbolic link.
func (b *Backend) Stat(ctx context.Context, p string) (storage.File, error) {
	ap, err := b.abs(p)
	if err != nil {
		return storage.File{}, err
	}
	st, err := os.Lstat(ap)
	if err != nil {
		return storage.File{}, err
	}
	return storage.File{Path: p, Size: st.Size(), ModTime: st.ModTime(), Irregular: !st.Mode().IsRegular()}, nil
}

// DirExists reports whether dir is a directory (not a link to one).
func (b *Backend) DirExists(ctx context.Context, dir string) (bool, error) {
	ap, err := b.abs(dir)
	if err != nil {
		return false, err
	}
	st, err := os.Lstat(ap)
	if errors.Is(err, iofs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.IsDir(), nil
}

// Delete unlinks each unit's known files and removes its directory; whatever else
// turned up inside (a transient *.tmp file, say) goes with a recursive removal, which
// removes symbolic links themselves and never what they point at.
func (b *Backend) Delete(ctx context.Context, units []storage.Unit) error {
	for _, u := range units {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.deleteUnit(u); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) deleteUnit(u storage.Unit) error {
	dir, err := b.abs(u.Dir)
	if err != nil {
		return err
	}
	if dir == b.root {
		return fmt.Errorf("refusing to delete the storage root")
	}
	for _, f := range u.Files {
		if strings.Contains(f, "..") {
			return fmt.Errorf("invalid file %q in %s", f, u.Dir)
		}
		err := syscall.Unlink(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil && err != syscall.ENOENT && err != syscall.ENOTDIR {
			// A file we did not expect to be a directory, or permission trouble:
			// the recursive removal below settles the first and reports the second.
			break
		}
	}
	err = syscall.Rmdir(dir)
	if err == nil || err == syscall.ENOENT {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return nil
}

// PruneDirs removes the directories that are empty, deepest first. rmdir refuses a
// directory that holds anything, so nothing with content can go.
func (b *Backend) PruneDirs(ctx context.Context, dirs []string) error {
	sorted := append([]string(nil), dirs...)
	sort.Slice(sorted, func(i, j int) bool {
		ci, cj := strings.Count(sorted[i], "/"), strings.Count(sorted[j], "/")
		if ci != cj {
			return ci > cj
		}
		return sorted[i] < sorted[j]
	})
	for _, d := range sorted {
		ap, err := b.abs(d)
		if err != nil {
			return err
		}
		if ap == b.root {
			continue
		}
		if err := syscall.Rmdir(ap); err != nil && err != syscall.ENOENT && err != syscall.ENOTEMPTY && err != syscall.EEXIST {
			return &os.PathError{Op: "rmdir", Path: ap, Err: err}
		}
	}
	return nil
}
