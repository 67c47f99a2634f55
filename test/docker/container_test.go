package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// newSeed is a fresh seed for harness images: every fill of a registry (several may
// share one storage) gets layers of its own.
func newSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// filled is a registry holding an overwritten tag (one untagged image whose layers
// only it uses), a multi-arch index and a plain tagged image.
type filled struct {
	seed                uint64
	untaggedManifest    string
	current, keep       string
	index               string
	untaggedLayer       v1.Layer
	untaggedLayerDigest string
}

func fill(t *testing.T, addr string) filled {
	t.Helper()
	s := harness.NewSession(t, addr)
	f := filled{seed: newSeed()}
	image := func(purpose string) v1.Image {
		return harness.Image(harness.Derive(f.seed, purpose, 0), 2, harness.Docker)
	}
	untagged := image("untagged")
	f.untaggedManifest = s.PushImage("app:v1", untagged)
	f.current = s.PushImage("app:v1", image("current")) // overwrites the tag
	f.index = s.PushIndex("multi:latest", harness.Index(harness.Derive(f.seed, "index", 0), 2, 1, harness.OCI))
	f.keep = s.PushImage("tools/keep:1", image("keep"))
	layers, err := untagged.Layers()
	if err != nil {
		t.Fatalf("the untagged image's layers: %v", err)
	}
	f.untaggedLayer, f.untaggedLayerDigest = layers[0], harness.BlobsOf(untagged)[1]
	return f
}

// verifyKept pulls every kept image with its digests verified.
func (f filled) verifyKept(t *testing.T, addr string) {
	t.Helper()
	for _, kept := range []struct{ ref, digest string }{
		{"app:v1", f.current}, {"multi:latest", f.index}, {"tools/keep:1", f.keep},
	} {
		if err := pull(addr, kept.ref, kept.digest); err != nil {
			t.Errorf("%s after cleaning: %v", kept.ref, err)
		}
	}
}

// verifyLayerDeleted fails the test while the untagged image's layer is still stored
// below root.
func (f filled) verifyLayerDeleted(t *testing.T, root string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, harness.BlobDataPath(f.untaggedLayerDigest))); !os.IsNotExist(err) {
		t.Fatalf("the untagged image's layer was not deleted: %v", err)
	}
}

// repushDeleted pushes app:v2, a new image holding the untagged image's deleted
// layer, through pushTo and pulls it through every pullFrom (pushTo when none). A
// registry whose blob cache still claims the layer skips its upload: the pull fails.
func (f filled) repushDeleted(t *testing.T, pushTo string, pullFrom ...string) error {
	t.Helper()
	again := harness.ImageWithLayers(harness.Derive(f.seed, "again", 0), harness.Docker,
		f.untaggedLayer, harness.Layer(harness.Derive(f.seed, "again-fresh", 0), harness.Docker))
	d := harness.NewSession(t, pushTo).PushImage("app:v2", again)
	if len(pullFrom) == 0 {
		pullFrom = []string{pushTo}
	}
	for _, addr := range pullFrom {
		if err := pull(addr, "app:v2", d); err != nil {
			return err
		}
	}
	return nil
}

// verifyRepushed is repushDeleted for a registry that must store the layer again.
func (f filled) verifyRepushed(t *testing.T, pushTo string, pullFrom ...string) {
	t.Helper()
	if err := f.repushDeleted(t, pushTo, pullFrom...); err != nil {
		t.Fatalf("an image holding a layer deleted earlier is broken: %v", err)
	}
}

// TestContainerBindMount: the seed's main use, `clean-registry registry`, on a
// registry keeping its storage in a bind mount. The registry is paused during the
// run, restarted after it (its in-memory cache named the deleted blobs), keeps every
// tagged image, and a later push of a deleted layer stores it again.
func TestContainerBindMount(t *testing.T) {
	ctx := context.Background()
	name, id, addr, dir := startBindRegistry(t, "bind")
	f := fill(t, addr)

	c := runtimeClient(t)
	reg := resolve(t, c, name, options(t))
	if reg.Kind != docker.KindContainer || !strings.HasPrefix(reg.Version, harness.RegistryVersion) ||
		reg.Storage.Driver != "filesystem" || reg.Storage.Root != dir || reg.Storage.ContainerRoot != "/var/lib/registry" {
		t.Fatalf("resolved %+v, storage %+v; want a container of registry %s, filesystem storage at %s (/var/lib/registry inside)",
			reg, reg.Storage, harness.RegistryVersion, dir)
	}
	if len(reg.Containers) != 1 || !reg.Containers[0].Registry || reg.Containers[0].Cache != "inmemory" {
		t.Fatalf("containers %+v; want one registry with the inmemory cache", reg.Containers)
	}
	_, started := state(t, id)

	if err := c.WithQuiesced(ctx, reg, options(t), cleanRun(t, reg, statesDuring(t, "paused", id))); err != nil {
		t.Fatalf("cleaning %s while paused: %v", name, err)
	}
	wantRestored(t, id, started, true)
	f.verifyLayerDeleted(t, dir)
	addr = addrOf(t, id)
	harness.NewSession(t, addr).Gone("app@" + f.untaggedManifest)
	f.verifyKept(t, addr)

	// The stale-cache case: a push of the deleted layer must upload it again.
	f.verifyRepushed(t, addr)
}

// TestStaleCacheWithoutRestart is the control of the stale-cache case: with
// --no-restart the registry is only unpaused, its in-memory cache still claims the
// deleted layer, the push skips it, and the image is broken (distribution issues
// 1803, 3743). It proves the test above would see the defect.
func TestStaleCacheWithoutRestart(t *testing.T) {
	ctx := context.Background()
	name, id, addr, dir := startBindRegistry(t, "norestart")
	f := fill(t, addr)
	c := runtimeClient(t)
	opts := options(t)
	opts.NoRestart = true
	reg := resolve(t, c, name, opts)
	_, started := state(t, id)
	if err := c.WithQuiesced(ctx, reg, opts, cleanRun(t, reg, nil)); err != nil {
		t.Fatalf("cleaning %s with --no-restart: %v", name, err)
	}
	wantRestored(t, id, started, false)
	f.verifyLayerDeleted(t, dir)
	f.verifyKept(t, addr)
	if err := f.repushDeleted(t, addr); err == nil {
		t.Fatal("the registry's stale cache did not show: the restart test proves nothing")
	} else {
		t.Logf("as expected without a restart, the image is broken: %v", err)
	}
}
