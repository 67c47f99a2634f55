package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

var _ storage.TimeKeepingMover = (*Backend)(nil)

// MovesKeepTimes reports true: a rename, or link(2) and unlink(2), keep the file.
func (b *Backend) MovesKeepTimes() bool { return true }

// Move renames each unit's directory to its destination: one atomic rename(2) when
// the destination does not exist yet (the quarantine's case), else file by file with
// link(2), which never replaces an existing file, and unlink(2).
func (b *Backend) Move(ctx context.Context, moves []storage.Move) error {
	for _, m := range moves {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.move(m); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) move(m storage.Move) error {
	src, err := b.abs(m.Dir)
	if err != nil {
		return err
	}
	dst, err := b.abs(m.To)
	if err != nil {
		return err
	}
	if src == b.root || dst == b.root {
		return fmt.Errorf("refusing to move the storage root")
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	err = os.Rename(src, dst)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOENT):
		if _, serr := os.Lstat(src); errors.Is(serr, iofs.ErrNotExist) {
			return nil // moved before (a rerun), or deleted: nothing to move
		}
		return err
	case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST), errors.Is(err, syscall.ENOTDIR):
		return mergeInto(src, dst)
	}
	return err
}

// mergeInto moves the files below src to the same places below dst, keeping any
// file dst already has, then removes src's directories that are left empty.
func mergeInto(src, dst string) error {
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			dirs = append(dirs, p)
			return os.MkdirAll(to, 0o755)
		}
		if err := os.Link(p, to); err != nil && !errors.Is(err, iofs.ErrExist) {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children before their parents
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && err != syscall.ENOENT && err != syscall.ENOTEMPTY && err != syscall.EEXIST {
			return &os.PathError{Op: "rmdir", Path: d, Err: err}
		}
	}
	return nil
}
