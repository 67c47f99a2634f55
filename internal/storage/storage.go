// Package storage is the one small interface between clean-registry and a registry's
// storage, whatever holds it: a filesystem, an object store. Nothing above it knows
// which backend it talks to.
//
// Paths are relative to the storage root (the registry's rootdirectory), slash
// separated, without a leading slash, e.g. "docker/registry/v2/blobs/sha256/ab/ab12.../data".
package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// ErrNotExist is returned (wrapped) for paths that do not exist.
var ErrNotExist = fs.ErrNotExist

// File is one file found by Walk or Stat.
type File struct {
	Path string
	// Size is -1 when the listing does not tell it (a filesystem walk never stats).
	Size int64
	// ModTime is zero when the listing does not tell it.
	ModTime time.Time
	// ETag is an object store's entity tag, unquoted; for single-part uploads it is the
	// MD5 of the content, which lets small link files be checked without a read.
	ETag string
	// Irregular marks a symlink, device or other non-regular entry: it is reported,
	// never followed, read or deleted.
	Irregular bool
	// BadName marks an entry whose name the backend cannot represent as a storage
	// path (not UTF-8, say): never descended into, read or deleted. Path then holds
	// the raw bytes; show it with %q.
	BadName bool
	// EmptyDir marks a directory with nothing in it (filesystems only: object stores
	// have no directories). What a crash between two deletions leaves.
	EmptyDir bool
}

// Unit is a directory to delete with everything in it. Files names what the caller
// knows to be inside (relative to Dir), so that a backend can delete without listing
// first; a nil Files means "not known": the backend must find out.
type Unit struct {
	Dir   string
	Files []string
}

// Backend is a registry's storage.
type Backend interface {
	// Walk calls fn for every file below dir, recursively, in no particular order and
	// possibly from several goroutines at once. A missing dir walks nothing.
	// Irregular entries are passed to fn and never descended into; so are empty
	// directories, on backends that have directories.
	Walk(ctx context.Context, dir string, fn func(File) error) error
	// ReadFile returns a file's content, at most limit bytes of it: a larger file is
	// not read on (a *TooLargeError), so that garbage in the storage never sets the
	// memory a run needs. It never reads through a symbolic link.
	ReadFile(ctx context.Context, path string, limit int64) ([]byte, error)
	// Stat returns a file's size and modification time.
	Stat(ctx context.Context, path string) (File, error)
	// DirExists reports whether anything exists below dir.
	DirExists(ctx context.Context, dir string) (bool, error)
	// Delete removes each unit's directory and all it holds. What is already gone counts
	// as deleted, so that a rerun after a crash converges. Callers batch: a call may
	// carry up to a thousand units and several calls may run at once.
	Delete(ctx context.Context, units []Unit) error
	// PruneDirs removes each directory that is empty, deepest first, and never a
	// directory that still holds anything. Object stores have no directories: a no-op.
	PruneDirs(ctx context.Context, dirs []string) error
	// String names the storage for humans, e.g. "/var/lib/registry" or "s3://bucket/prefix".
	String() string
}

// LeafWalker is implemented by backends for which listing a directory costs more than
// knowing its content: given leaf, the walk does not list a directory for which leaf
// returns a file name, but passes that file to fn unseen (Size -1, no time). The caller
// must treat such a file as possibly missing (a read or a stat tells). Object stores
// list keys, not directories, and gain nothing from it.
type LeafWalker interface {
	WalkLeaves(ctx context.Context, dir string, leaf func(dir string) string, fn func(File) error) error
}

// RequestCounter is implemented by backends that count their requests by kind
// (e.g. "ListObjectsV2": 12), for the report.
type RequestCounter interface {
	Requests() map[string]int64
}

// TooLargeError says a file holds more than a read's limit.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than %d bytes; not read", e.Path, e.Limit)
}

// IsTooLarge reports whether err says a file was larger than a read's limit.
func IsTooLarge(err error) bool {
	var tl *TooLargeError
	return errors.As(err, &tl)
}

// IsNotExist reports whether err says a path does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
