package regdriver

import (
	"context"
	"fmt"
	"io"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Open streams a file through the driver's Reader.
func (b *DriverBackend) Open(ctx context.Context, p string) (io.ReadCloser, error) {
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
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return r, nil
}
