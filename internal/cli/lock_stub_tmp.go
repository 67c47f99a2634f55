package cli

import (
	"context"
	"io"

	"github.com/clean-registry/clean-registry/internal/storage"
)

func takeLock(ctx context.Context, b storage.Backend, o options, stderr io.Writer) (func(), error) {
	return func() {}, nil
}
