// Package gcs opens a registry's Google Cloud Storage through the registry's own gcs
// storage driver (distribution v3), behind storage.Backend.
package gcs

import (
	"context"
	"fmt"
	"strings"

	"github.com/clean-registry/clean-registry/v2/internal/storage/regdriver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	// Registers the registry's gcs driver with the factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
)

// DriverName is the registry configuration's name of the driver.
const DriverName = "gcs"

// New opens the storage named by the registry's gcs driver parameters (storage.gcs in
// its config.yml: bucket, rootdirectory, keyfile or credentials, else Google's
// application default credentials). jobs bounds the driver calls in flight. The
// bucket is listed once, so that a missing bucket or credential fails before anything
// is deleted.
func New(ctx context.Context, params map[string]any, jobs int) (*regdriver.DriverBackend, error) {
	d, err := factory.Create(ctx, DriverName, params)
	if err != nil {
		return nil, fmt.Errorf("gcs storage: %w", err)
	}
	name := "gcs://" + fmt.Sprint(params["bucket"])
	if root := strings.Trim(fmt.Sprint(params["rootdirectory"]), "/"); params["rootdirectory"] != nil && root != "" {
		name += "/" + root
	}
	b := regdriver.Wrap(d, name, jobs)
	if err := b.Check(ctx); err != nil {
		return nil, fmt.Errorf("gcs storage %s: cannot list the bucket (check it exists and the credentials may read and delete in it): %w", name, err)
	}
	return b, nil
}
