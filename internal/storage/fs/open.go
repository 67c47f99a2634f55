package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"
)

// Open opens a file for reading, refusing a symbolic link (as ReadFile does).
func (b *Backend) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	ap, err := b.abs(p)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(ap, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &os.PathError{Op: "open", Path: ap, Err: errors.New("refusing to read through a symbolic link")}
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}
