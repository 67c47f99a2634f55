package harness

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Config describes a registry to run.
type Config struct {
	// Root is the filesystem driver's rootdirectory; ignored when Storage is set.
	Root string
	// Storage replaces the filesystem driver: one driver name and its parameters,
	// e.g. {"s3": {"bucket": "b", "region": "us-east-1", ...}}. Nested maps are
	// map[string]any; values are strings, bools and numbers.
	Storage map[string]any
	// ReadOnly starts the registry in read-only maintenance mode.
	ReadOnly bool
	// Addr is host:port to listen on; empty picks a free loopback port.
	Addr string
	// Env adds environment variables (REGISTRY_* overrides) to the registry's; the
	// test's own REGISTRY_* variables never leak into it.
	Env []string
}

// YAML is the registry's config.yml for c: deletes enabled (as garbage-collect and
// clean-registry expect), the in-memory blob descriptor cache on (the registry's
// default, and the cache a clean makes stale), upload purging off so that the
// registry never changes the tree by itself, log level warn.
func (c Config) YAML() string {
	storage := map[string]any{
		"delete": map[string]any{"enabled": true},
		"cache":  map[string]any{"blobdescriptor": "inmemory"},
		"maintenance": map[string]any{
			"uploadpurging": map[string]any{"enabled": false},
			"readonly":      map[string]any{"enabled": c.ReadOnly},
		},
		// Object stores would otherwise redirect pulls to themselves.
		"redirect": map[string]any{"disable": true},
	}
	if len(c.Storage) > 0 {
		for driver, params := range c.Storage {
			storage[driver] = params
		}
	} else {
		storage["filesystem"] = map[string]any{"rootdirectory": c.Root}
	}
	addr := c.Addr
	if addr == "" {
		addr = "127.0.0.1:5000"
	}
	doc := map[string]any{
		"log": map[string]any{
			"level":     "warn",
			"accesslog": map[string]any{"disabled": true},
		},
		"storage": storage,
		"http":    map[string]any{"addr": addr},
	}
	var b strings.Builder
	b.WriteString("version: 0.1\n")
	writeYAML(&b, doc, 0)
	return b.String()
}

// WriteConfig writes c's config.yml to path.
func WriteConfig(path string, c Config) error {
	return os.WriteFile(path, []byte(c.YAML()), 0o644)
}

// writeYAML emits a block mapping, keys sorted, strings double-quoted.
func writeYAML(b *strings.Builder, m map[string]any, indent int) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pad := strings.Repeat("  ", indent)
	for _, k := range keys {
		switch v := m[k].(type) {
		case map[string]any:
			fmt.Fprintf(b, "%s%s:\n", pad, k)
			writeYAML(b, v, indent+1)
		case string:
			fmt.Fprintf(b, "%s%s: %s\n", pad, k, strconv.Quote(v))
		default:
			fmt.Fprintf(b, "%s%s: %v\n", pad, k, v)
		}
	}
}
