package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

var _ storage.Writer = (*Backend)(nil)

// ExclusiveCreate is true: a hard link fails atomically when its name exists, on local
// disks and on NFS alike (where a retried link can report EEXIST for its own success:
// callers that write their identity can tell).
func (b *Backend) ExclusiveCreate() bool { return true }

// WriteFile writes a complete temporary file beside path and fsyncs it, then puts it
// in place: with ifAbsent as a hard link, which fails when path exists (ErrExist),
// else by renaming it over path. Readers see the old content or the new, never a part
// (except after an exclusive create on a filesystem without hard links, see below).
// Missing parent directories are created (0755). Nothing is written through a
// symbolic link: see openDir.
func (b *Backend) WriteFile(ctx context.Context, p string, data []byte, ifAbsent bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, name, err := b.openDir(p, true)
	if err != nil {
		return err
	}
	defer dir.Close()
	removeDeadTemps(dir, name)
	tmp, err := tempName(name)
	if err != nil {
		return err
	}
	if err := writeSynced(dir, tmp, data); err != nil {
		dir.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if ifAbsent {
		err = dir.Link(tmp, name)
		dir.Remove(tmp)
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
			// A filesystem without hard links (vfat, some FUSE and SMB mounts): an
			// exclusive create of the final name is as atomic, though a reader may
			// then see the file before its content.
			err = writeSynced(dir, name, data)
			if err != nil && !errors.Is(err, iofs.ErrExist) {
				dir.Remove(name) // ours, partly written
			}
		}
		if errors.Is(err, iofs.ErrExist) {
			return fmt.Errorf("%s: %w", p, storage.ErrExist)
		}
	} else {
		err = dir.Rename(tmp, name)
		if err != nil {
			dir.Remove(tmp)
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	// The new name is durable only once its directory is synced.
	if d, err := dir.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// RemoveFile unlinks path (a symbolic link itself, never its target); a missing file
// counts as removed, a directory is refused.
func (b *Backend) RemoveFile(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, name, err := b.openDir(p, false)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer dir.Close()
	st, err := dir.Lstat(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("removing %s: is a directory", p)
	}
	if err := dir.Remove(name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	return nil
}

// openDir opens the directory holding p, one component at a time from the storage
// root, and returns it with p's last component. Each component must be a real
// directory: a symbolic link is refused, and the directory opened is checked to be
// the very one inspected, so that a component swapped for a link meanwhile is refused
// too. With create, missing directories are made.
func (b *Backend) openDir(p string, create bool) (*os.Root, string, error) {
	if _, err := b.abs(p); err != nil || p == "" || p == "." {
		return nil, "", fmt.Errorf("invalid storage path %q", p)
	}
	parts := strings.Split(p, "/")
	dir, err := os.OpenRoot(b.root)
	if err != nil {
		return nil, "", err
	}
	for i, part := range parts[:len(parts)-1] {
		sub, err := openSubdir(dir, part, create)
		dir.Close()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", strings.Join(parts[:i+1], "/"), err)
		}
		dir = sub
	}
	return dir, parts[len(parts)-1], nil
}

func openSubdir(parent *os.Root, name string, create bool) (*os.Root, error) {
	st, err := parent.Lstat(name)
	if errors.Is(err, iofs.ErrNotExist) && create {
		if err := parent.Mkdir(name, 0o755); err != nil && !errors.Is(err, iofs.ErrExist) {
			return nil, err
		}
		st, err = parent.Lstat(name)
	}
	if err != nil {
		return nil, err
	}
	if st.Mode()&iofs.ModeSymlink != 0 {
		return nil, errors.New("refusing to write through a symbolic link")
	}
	if !st.IsDir() {
		return nil, errors.New("not a directory")
	}
	sub, err := parent.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	if opened, err := sub.Stat("."); err != nil || !os.SameFile(st, opened) {
		sub.Close()
		return nil, errors.New("replaced while being opened; refusing")
	}
	return sub, nil
}

// tempName is a hidden, unique name beside name.
func tempName(name string) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return tempPrefix(name) + strconv.Itoa(os.Getpid()) + "-" + hostname() + "-" + hex.EncodeToString(r[:]), nil
}

// tempPrefix starts the names of name's temporary files, which also name the
// writer's process and host: "." + name + ".tmp-<pid>-<host>-<random>".
func tempPrefix(name string) string { return "." + name + ".tmp-" }

func hostname() string {
	h, _ := os.Hostname()
	return strings.ReplaceAll(h, "/", "_")
}

// removeDeadTemps removes the temporary files of name that a writer killed between
// writing and renaming left behind: those of a process of this host that no longer
// exists. (A writer in another PID namespace with the same host name can be taken
// for dead: its write then fails, and nothing else is lost.)
func removeDeadTemps(dir *os.Root, name string) {
	d, err := dir.Open(".")
	if err != nil {
		return
	}
	entries, _ := d.ReadDir(-1)
	d.Close()
	host := "-" + hostname() + "-"
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix(name))
		if !ok {
			continue
		}
		pidText, rest, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || !strings.HasPrefix("-"+rest, host) {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			dir.Remove(e.Name())
		}
	}
}

// writeSynced creates name (never an existing file, nor through a link) with data,
// flushed to the disk before it is given its final name.
func writeSynced(dir *os.Root, name string, data []byte) error {
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
