// Package regconfig reads a registry's own config.yml with the registry's own
// configuration package, so that clean-registry sees the storage exactly as the
// registry does, REGISTRY_* environment overrides included.
//
// The overrides come from an explicit environment (for a Docker target, the
// registry container's), never from this process's: the package neither reads
// this process's REGISTRY_* variables nor changes its environment, so it is safe
// to use from concurrent goroutines and inside a registry's own container.
package regconfig

import (
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/clean-registry/clean-registry/v2/internal/blobcache"
)

// DefaultRootDirectory is the filesystem driver's default rootdirectory.
const DefaultRootDirectory = "/var/lib/registry"

// Storage is what clean-registry needs of a registry's configuration.
type Storage struct {
	// Driver is the storage driver's name: filesystem, s3, s3aws, gcs, azure, inmemory...
	Driver string
	// Parameters are the driver's parameters, as the registry reads them.
	Parameters map[string]any
	// ReadOnly is set when the registry runs in read-only maintenance mode: nothing can
	// be pushed, so no grace period is needed.
	ReadOnly bool
	// BlobDescriptorCache is the cache the registry keeps of blob descriptors:
	// blobcache.KindInMemory ("inmemory"), blobcache.KindRedis ("redis") or
	// blobcache.KindNone ("": none, also for a value the registry does not know).
	// After blobs are deleted, a running registry must be restarted (inmemory) or
	// its redis cleared (Redis.Clear) so it forgets them.
	BlobDescriptorCache string
	// Redis is how the registry reaches its redis (blobcache.ParseRedis), when
	// BlobDescriptorCache is "redis"; nil otherwise, or when the redis section
	// cannot be read (the registry would not start with it either).
	Redis *blobcache.Redis
}

// Load parses the config file at path. env holds "NAME=value" entries that override
// it the registry's way (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY, ...); pass
// os.Environ() for this process's environment.
func Load(path string, env []string) (*Storage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, env)
}

// Parse parses config.yml content with env overrides applied. env holds
// "NAME=value" entries; only its REGISTRY_* ones matter, and this process's own
// environment plays no part.
func Parse(data []byte, env []string) (*Storage, error) {
	cfg, err := parseConfig(data, env)
	if err != nil {
		return nil, fmt.Errorf("registry configuration: %w", err)
	}
	s := storageOf(cfg)
	if s.BlobDescriptorCache == blobcache.KindRedis {
		// An error only costs the automatic clearing: Redis.Clear then says so.
		s.Redis, _ = blobcache.ParseRedis(data, env)
	}
	return s, nil
}

// storageOf extracts what clean-registry needs, reading the keys the way the
// registry's handlers.NewApp does.
func storageOf(cfg *configuration.Configuration) *Storage {
	s := &Storage{Driver: cfg.Storage.Type(), Parameters: map[string]any{}}
	for k, v := range cfg.Storage.Parameters() {
		s.Parameters[k] = v
	}
	// The registry only accepts readonly as a mapping decoded from YAML
	// (map[any]any) with a boolean enabled, and panics at startup otherwise (an
	// override such as REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED creates a
	// map[string]any): anything else is not read-only here.
	if ro, ok := cfg.Storage["maintenance"]["readonly"].(map[any]any); ok {
		if enabled, ok := ro["enabled"].(bool); ok {
			s.ReadOnly = enabled
		}
	}
	// The registry keeps a blob descriptor cache only when storage.cache names one
	// it knows ("layerinfo" is the old key); the official images' config.yml does:
	// inmemory. blobcache.Parse finds the same from the file and environment.
	v, ok := cfg.Storage["cache"]["blobdescriptor"]
	if !ok {
		v = cfg.Storage["cache"]["layerinfo"]
	}
	s.BlobDescriptorCache = blobcache.KindOf(v)
	if s.Driver == "filesystem" {
		if _, ok := s.Parameters["rootdirectory"]; !ok {
			s.Parameters["rootdirectory"] = DefaultRootDirectory
		}
	}
	return s
}

// RootDirectory is the filesystem driver's rootdirectory.
func (s *Storage) RootDirectory() string {
	if v, ok := s.Parameters["rootdirectory"]; ok {
		return fmt.Sprint(v)
	}
	return DefaultRootDirectory
}

// noProcessEnv is the environment prefix given to the registry's parser. The
// parser snapshots os.Environ() and applies the variables named
// strings.ToUpper(prefix)+"_"...; a name never contains "=" (os.Environ entries
// are split at their first "="), so with this prefix nothing of this process's
// environment is applied. The overrides of the given env are applied by
// applyOverrides instead.
const noProcessEnv = "="

// The defaults configuration.Parse gives when converting a version 0.1
// configuration (unexported upstream; TestAgainstUpstream checks them).
const (
	defaultMaxEntries = 1000
	defaultMaxTags    = 1000
)

// parseConfig is configuration.Parse with the REGISTRY_* overrides taken from env
// rather than from the process environment: the registry's parser checks the
// version and decodes the YAML; the overrides and then the version 0.1
// conversion upstream's Parse does are applied in the ConversionFunc, which the
// parser calls right after decoding (where it would have applied its own
// environment).
//
// Where the registry would panic (several storage drivers, some malformed
// overrides), parseConfig returns an error.
func parseConfig(data []byte, env []string) (cfg *configuration.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("the registry would fail on this configuration: %v", r)
		}
	}()
	overrides := registryOverrides(env)
	p := configuration.NewParser(noProcessEnv, []configuration.VersionedParseInfo{{
		Version: configuration.MajorMinorVersion(0, 1),
		// v0_1Configuration, which upstream's Parse decodes into, is defined as
		// Configuration: same fields, same tags, no methods of its own.
		ParseAs: reflect.TypeFor[configuration.Configuration](),
		ConversionFunc: func(c any) (any, error) {
			cfg, ok := c.(*configuration.Configuration)
			if !ok {
				return nil, fmt.Errorf("expected *configuration.Configuration, received %#v", c)
			}
			if err := applyOverrides(cfg, overrides); err != nil {
				return nil, err
			}
			return cfg, convertV01(cfg)
		},
	}})
	cfg = new(configuration.Configuration)
	if err := p.Parse(data, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// convertV01 does what configuration.Parse's version 0.1 conversion does: log level
// and limit defaults, and the checks on maxtags and the storage driver.
func convertV01(cfg *configuration.Configuration) error {
	if cfg.Log.Level == "" {
		//lint:ignore SA1019 the old key the registry still reads, as it does
		cfg.Log.Level = cfg.Loglevel
		if cfg.Log.Level == "" {
			cfg.Log.Level = "info"
		}
	}
	//lint:ignore SA1019 cleared after its use, as the registry does
	cfg.Loglevel = ""
	if cfg.Catalog.MaxEntries <= 0 {
		cfg.Catalog.MaxEntries = defaultMaxEntries
	}
	switch {
	case cfg.Tags.MaxTags < 0:
		return errors.New("maxtags limit must be a non-negative integer value")
	case cfg.Tags.MaxTags == 0:
		cfg.Tags.MaxTags = defaultMaxTags
	}
	typ, err := storageType(cfg.Storage)
	if err != nil {
		return err
	}
	if typ == "" {
		return errors.New("no storage configuration provided")
	}
	return nil
}

// storageType is Storage.Type, with its panic on several drivers (say a file's
// filesystem and an override's s3) as an error.
func storageType(s configuration.Storage) (typ string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return s.Type(), nil
}
