package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/storage/azure"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/internal/storage/gcs"
	"github.com/clean-registry/clean-registry/v2/internal/storage/s3"
)

// openBackend opens the storage a registry's configuration names: driver and its
// parameters as the registry reads them; fsRoot is the filesystem driver's root as
// this process reaches it. Object-storage backends check their access before they
// return, so that bad credentials or a missing bucket stop the run before anything.
func openBackend(ctx context.Context, driver string, params map[string]any, fsRoot string, jobs int) (storage.Backend, error) {
	switch driver {
	case "filesystem":
		return fs.New(fsRoot, jobs)
	case "s3", "s3aws":
		return s3.New(ctx, params, jobs)
	case gcs.DriverName:
		return gcs.New(ctx, params, jobs)
	case "azure":
		return azure.New(ctx, params, jobs)
	case "inmemory":
		return nil, errors.New("the inmemory storage driver keeps nothing to clean")
	default:
		return nil, fmt.Errorf("unsupported storage driver: %s", driver)
	}
}
