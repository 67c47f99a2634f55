// Package regconfig reads a registry's own config.yml with the registry's own
// configuration package, so that clean-registry sees the storage exactly as the
// registry does, REGISTRY_* environment overrides included.
package regconfig

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
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
	// BlobDescriptorCache is the cache the registry keeps of blob descriptors
	// ("inmemory", "redis" or "" for none): after blobs are deleted, a running
	// registry must be restarted (or redis cleared) so it forgets them.
	BlobDescriptorCache string
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

// Parse parses config.yml content with env overrides applied.
func Parse(data []byte, env []string) (*Storage, error) {
	cfg, err := parseWithEnv(data, env)
	if err != nil {
		return nil, fmt.Errorf("registry configuration: %w", err)
	}
	s := &Storage{Driver: cfg.Storage.Type(), Parameters: map[string]any{}}
	for k, v := range cfg.Storage.Parameters() {
		s.Parameters[k] = v
	}
	if ro, ok := cfg.Storage["maintenance"]["readonly"].(map[any]any); ok {
		if enabled, ok := ro["enabled"].(bool); ok {
			s.ReadOnly = enabled
		}
	}
	// The registry keeps a blob descriptor cache only when storage.cache names one
	// ("layerinfo" is the old name); the official images' config.yml does: inmemory.
	if c, ok := cfg.Storage["cache"]; ok {
		v, ok := c["blobdescriptor"]
		if !ok {
			v = c["layerinfo"]
		}
		s.BlobDescriptorCache, _ = v.(string)
	}
	if s.Driver == "filesystem" {
		if _, ok := s.Parameters["rootdirectory"]; !ok {
			s.Parameters["rootdirectory"] = DefaultRootDirectory
		}
	}
	return s, nil
}

// RootDirectory is the filesystem driver's rootdirectory.
func (s *Storage) RootDirectory() string {
	if v, ok := s.Parameters["rootdirectory"]; ok {
		return fmt.Sprint(v)
	}
	return DefaultRootDirectory
}

// parseWithEnv runs the registry's parser, which reads overrides from the process
// environment, with exactly the given environment's REGISTRY_* variables in place.
func parseWithEnv(data []byte, env []string) (*configuration.Configuration, error) {
	restore := swapRegistryEnv(env)
	defer restore()
	return configuration.Parse(bytes.NewReader(data))
}

var envLock = make(chan struct{}, 1)

func swapRegistryEnv(env []string) (restore func()) {
	envLock <- struct{}{}
	saved := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGISTRY_") {
			saved[k] = v
			os.Unsetenv(k)
		}
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGISTRY_") {
			os.Setenv(k, v)
		}
	}
	return func() {
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "REGISTRY_") {
				os.Unsetenv(k)
			}
		}
		for k, v := range saved {
			os.Setenv(k, v)
		}
		<-envLock
	}
}
