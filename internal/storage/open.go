package storage

import (
	"context"
	"io"
)

// Opener is implemented by backends that can stream a file's content: a blob of
// gigabytes is hashed as it is read, never held (check --verify-digests).
type Opener interface {
	// Open returns the file's content as a stream; a missing file is ErrNotExist. It
	// never reads through a symbolic link. The caller closes it.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
}
