// Package azure opens a registry's Azure Blob Storage through the registry's own azure
// storage driver (distribution v3), behind storage.Backend.
package azure

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	// Registers the registry's azure driver with the factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"

	"github.com/clean-registry/clean-registry/v2/internal/storage/regdriver"
)

// DriverName is the registry configuration's name of the driver.
const DriverName = "azure"

// New opens the storage named by the registry's azure driver parameters (storage.azure
// in its config.yml: accountname, container, credentials, serviceurl, rootdirectory,
// realm). jobs bounds the driver calls in flight. The container is listed once, so
// that a missing container or credential fails before anything is deleted.
func New(ctx context.Context, params map[string]any, jobs int) (*regdriver.DriverBackend, error) {
	d, err := factory.Create(ctx, DriverName, params)
	if err != nil {
		return nil, fmt.Errorf("azure storage: %w", err)
	}
	name := "azure://" + fmt.Sprint(params["accountname"]) + "/" + fmt.Sprint(params["container"])
	if root := strings.Trim(fmt.Sprint(params["rootdirectory"]), "/"); params["rootdirectory"] != nil && root != "" {
		name += "/" + root
	}
	b := regdriver.Wrap(d, name, jobs)
	if err := b.Check(ctx); err != nil {
		return nil, fmt.Errorf("azure storage %s: cannot list the container (check it exists and the credentials may read and delete in it): %w", name, err)
	}
	return b, nil
}
