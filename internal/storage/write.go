package storage

import (
	"context"
	"errors"
	"io/fs"
)

// ErrExist is returned (wrapped) by a create-if-absent write that found the file there.
var ErrExist = fs.ErrExist

// Writer is implemented by backends that can write small files of clean-registry's
// own (a lock, a journal) beside the registry's content. Nothing of the registry's
// layout is ever written through it.
type Writer interface {
	// WriteFile stores data at path, whole or not at all as far as readers can tell.
	// With ifAbsent it fails with ErrExist when path already exists: on a filesystem
	// atomically (a hard link of a complete temporary file); on an object store with a
	// conditional request where the server honours one (see ExclusiveCreate).
	WriteFile(ctx context.Context, path string, data []byte, ifAbsent bool) error
	// RemoveFile deletes one file; a missing one counts as removed.
	RemoveFile(ctx context.Context, path string) error
	// ExclusiveCreate reports whether WriteFile with ifAbsent is atomic against a
	// concurrent writer on this backend. Where it is not, callers read back what they
	// wrote to learn whether they won. A backend that learns it from its server (S3)
	// knows only after its first WriteFile with ifAbsent, and says false until then:
	// ask after that write.
	ExclusiveCreate() bool
}

// IsExist reports whether err says a file already exists.
func IsExist(err error) bool { return errors.Is(err, fs.ErrExist) }
