package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// RegistryVersion is the upstream distribution release the tests run against.
const RegistryVersion = "v3.1.2"

const registryModule = "github.com/distribution/distribution/v3/cmd/registry"

// EnvRequireAll makes a missing engine, server or tool a test failure instead of a skip (CI).
const EnvRequireAll = "CLEAN_REGISTRY_REQUIRE_ALL"

// CacheDir is where built tools are kept between runs: $CLEAN_REGISTRY_CACHE, else
// $HOME/.cache/clean-registry.
func CacheDir() string {
	if d := os.Getenv("CLEAN_REGISTRY_CACHE"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "clean-registry")
	}
	return filepath.Join(os.TempDir(), "clean-registry-cache")
}

// RegistryBinaryPath is where the registry binary lives once built.
func RegistryBinaryPath() string {
	return filepath.Join(CacheDir(), "registry-"+RegistryVersion, "registry")
}

var buildMu sync.Mutex

// RegistryBinary returns the upstream registry binary, building it with `go install`
// from the module proxy the first time (a few minutes).
func RegistryBinary(ctx context.Context) (string, error) {
	return cachedBuild(&buildMu, RegistryBinaryPath(), func(tmp string) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, "go", "install", registryModule+"@"+RegistryVersion)
		cmd.Dir = tmp // outside any module: go.mod and go.work must not interfere
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
		return cmd, nil
	}, registryModule+"@"+RegistryVersion)
}

// cachedBuild returns the binary at p, building it first when it is missing: build
// prepares tmp and gives the command that writes a binary of p's name into it. A file lock keeps
// parallel test processes from building it twice, and the binary appears by an
// atomic rename, so nobody ever runs a half-written one. what names it in errors.
func cachedBuild(mu *sync.Mutex, p string, build func(tmp string) (*exec.Cmd, error), what string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(p); err == nil { // built by another process while we waited
		return p, nil
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd, err := build(tmp)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", what, err, out.Bytes())
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(p)), p); err != nil {
		return "", err
	}
	return p, nil
}

// RegistryBinaryT is RegistryBinary for tests: without a registry the test skips, or
// fails when CLEAN_REGISTRY_REQUIRE_ALL=1.
func RegistryBinaryT(t testing.TB) string {
	t.Helper()
	p, err := RegistryBinary(context.Background())
	if err != nil {
		Unavailable(t, "no registry %s binary: %v", RegistryVersion, err)
	}
	return p
}

// Unavailable skips the test for a missing tool, engine or server, or fails it when
// CLEAN_REGISTRY_REQUIRE_ALL=1 says everything must be there (CI). It is the one way
// a test in test/ or bench/ skips: call it rather than t.Skip, so that CI never
// passes a test that did not run.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequireAll) == "1" {
		t.Fatalf("%s (%s=1)", msg, EnvRequireAll)
	}
	t.Skip(msg)
}
