package harness

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Tree is what a directory holds: relative slash paths, sorted.
type Tree struct {
	Files []string
	// Dirs are the directories below the root (the root itself excluded).
	Dirs []string
}

// ListTree lists every file and directory below root.
func ListTree(root string) (Tree, error) {
	var t Tree
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			t.Dirs = append(t.Dirs, filepath.ToSlash(rel))
		} else {
			t.Files = append(t.Files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(t.Files)
	sort.Strings(t.Dirs)
	return t, err
}

// Diff lists what only a holds and what only b holds.
func Diff(a, b []string) (onlyA, onlyB []string) {
	inB := make(map[string]bool, len(b))
	for _, s := range b {
		inB[s] = true
	}
	inA := make(map[string]bool, len(a))
	for _, s := range a {
		inA[s] = true
		if !inB[s] {
			onlyA = append(onlyA, s)
		}
	}
	for _, s := range b {
		if !inA[s] {
			onlyB = append(onlyB, s)
		}
	}
	return onlyA, onlyB
}

// CopyTree copies src to dst (which must not exist yet) with file modes and
// modification times, so that a copy cleans exactly as the original would.
// Symbolic links are copied as links.
func CopyTree(src, dst string) error {
	type dirTime struct {
		path string
		mod  time.Time
	}
	var dirs []dirTime
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{target, info.ModTime()})
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		if err := copyFile(p, target, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(target, info.ModTime(), info.ModTime())
	})
	if err != nil {
		return err
	}
	// Directories last: creating their entries changed their times.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].mod, dirs[i].mod); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Backdate sets the modification (and access) time of everything below root, root
// included, to t: objects pushed "now" become old enough for any grace period.
func Backdate(root string, t time.Time) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		return os.Chtimes(p, t, t)
	})
}
