package regdriver

import (
	"context"
	"fmt"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

var _ storage.Writer = (*DriverBackend)(nil)

// ExclusiveCreate is false: the StorageDriver API has no conditional write.
func (b *DriverBackend) ExclusiveCreate() bool { return false }

// WriteFile stores data with the driver's PutContent, which the drivers write whole
// (one object upload). With ifAbsent a Stat comes first: a concurrent writer can slip
// in between the two.
func (b *DriverBackend) WriteFile(ctx context.Context, p string, data []byte, ifAbsent bool) error {
	dp, err := driverPath(p)
	if err != nil {
		return err
	}
	if dp == "/" {
		return fmt.Errorf("invalid storage path %q", p)
	}
	if ifAbsent {
		b.count("Stat")
		_, err := b.d.Stat(ctx, dp)
		if err == nil {
			return fmt.Errorf("%s: %w", p, storage.ErrExist)
		}
		if !notFound(err) {
			return fmt.Errorf("stat %s: %w", p, err)
		}
	}
	b.count("PutContent")
	if err := b.d.PutContent(ctx, dp, data); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// RemoveFile deletes one file. The driver's Delete is recursive, so a directory is
// refused first rather than emptied.
func (b *DriverBackend) RemoveFile(ctx context.Context, p string) error {
	dp, err := driverPath(p)
	if err != nil {
		return err
	}
	if dp == "/" {
		return fmt.Errorf("invalid storage path %q", p)
	}
	b.count("Stat")
	fi, err := b.d.Stat(ctx, dp)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("removing %s: is a directory", p)
	}
	b.count("Delete")
	if err := b.d.Delete(ctx, dp); err != nil && !notFound(err) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}
