package docker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/clean-registry/clean-registry/internal/runtime/docker"
)

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imageWithLayer is a new image holding an existing layer plus a fresh one.
func imageWithLayer(t *testing.T, l v1.Layer) v1.Image {
	t.Helper()
	fresh, err := random.Layer(1024, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l, fresh)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func firstLayer(t *testing.T, img v1.Image) (v1.Layer, v1.Hash) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ls[0], d
}

func blobPath(root string, d v1.Hash) string {
	return filepath.Join(root, "docker/registry/v2/blobs", d.Algorithm, d.Hex[:2], d.Hex, "data")
}

// addrOf is where the registry's port is published now (a restart may move it).
func addrOf(t *testing.T, id string) string {
	t.Helper()
	ins, err := engine(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b := ins.NetworkSettings.Ports["5000/tcp"]
	if len(b) == 0 {
		t.Fatalf("%s: port 5000 not published", ins.Name)
	}
	return "127.0.0.1:" + b[0].HostPort
}

// filled is a registry holding an overwritten tag (one untagged image whose layers
// only it uses), a multi-arch index and a plain tagged image.
type filled struct {
	untagged                v1.Image
	current, keep           v1.Hash
	index                   v1.Hash
	untaggedLayer           v1.Layer
	untaggedLayerDigest     v1.Hash
	untaggedManifestDigests v1.Hash
}

func fill(t *testing.T, addr string) filled {
	t.Helper()
	var f filled
	f.untagged = randomImage(t)
	f.untaggedManifestDigests = push(t, addr, "app:v1", f.untagged)
	f.current = push(t, addr, "app:v1", randomImage(t)) // overwrites the tag
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	f.index = pushIndex(t, addr, "multi:latest", idx)
	f.keep = push(t, addr, "tools/keep:1", randomImage(t))
	f.untaggedLayer, f.untaggedLayerDigest = firstLayer(t, f.untagged)
	return f
}

// verifyKept pulls every kept image with its digests verified.
func (f filled) verifyKept(t *testing.T, addr string) {
	t.Helper()
	if err := pullImage(addr, "app:v1", f.current); err != nil {
		t.Errorf("app:v1 after cleaning: %v", err)
	}
	if err := pullIndex(addr, "multi:latest", f.index); err != nil {
		t.Errorf("multi:latest after cleaning: %v", err)
	}
	if err := pullImage(addr, "tools/keep:1", f.keep); err != nil {
		t.Errorf("tools/keep:1 after cleaning: %v", err)
	}
}

// TestContainerBindMount: the seed's main use, `clean-registry registry`, on a
// registry keeping its storage in a bind mount. The registry is paused during the
// run, restarted after it (its in-memory cache named the deleted blobs), keeps every
// tagged image, and a later push of a deleted layer stores it again.
func TestContainerBindMount(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	name := uniqueName("bind")
	id, addr := startRegistry(t, registrySpec{name: name, publish: true,
		mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/var/lib/registry"}}})
	f := fill(t, addr)

	c := runtimeClient(t)
	reg, err := c.Resolve(ctx, name, options(t))
	if err != nil {
		t.Fatal(err)
	}
	if reg.Kind != docker.KindContainer || !strings.HasPrefix(reg.Version, registryVersion) ||
		reg.Storage.Driver != "filesystem" || reg.Storage.Root != dir || reg.Storage.ContainerRoot != "/var/lib/registry" {
		t.Fatalf("resolved %+v, storage %+v", reg, reg.Storage)
	}
	if len(reg.Containers) != 1 || !reg.Containers[0].Registry || reg.Containers[0].Cache != "inmemory" {
		t.Fatalf("containers %+v", reg.Containers)
	}
	_, started := state(t, id)

	err = c.WithQuiesced(ctx, reg, options(t), cleanRun(t, reg, func(ctx context.Context, quiesced bool) error {
		if st, _ := state(t, id); st != "paused" || !quiesced {
			return fmt.Errorf("during the run: state %s, quiesced %v", st, quiesced)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	st, restarted := state(t, id)
	if st != "running" || restarted == started {
		t.Fatalf("after the run: state %s, restarted %v (want running, restarted)", st, restarted != started)
	}
	if _, err := os.Stat(blobPath(dir, f.untaggedLayerDigest)); !os.IsNotExist(err) {
		t.Fatalf("the untagged image's layer was not deleted: %v", err)
	}
	addr = addrOf(t, id)
	waitAnswers(t, addr)
	if manifestExists(t, addr, "app", f.untaggedManifestDigests) {
		t.Error("the untagged manifest is still served")
	}
	f.verifyKept(t, addr)

	// The stale-cache case: a push of the deleted layer must upload it again.
	again := imageWithLayer(t, f.untaggedLayer)
	d := push(t, addr, "app:v2", again)
	if err := pullImage(addr, "app:v2", d); err != nil {
		t.Fatalf("an image holding a layer deleted earlier is broken: %v", err)
	}
}

// TestStaleCacheWithoutRestart is the control of the stale-cache case: with
// --no-restart the registry is only unpaused, its in-memory cache still claims the
// deleted layer, the push skips it, and the image is broken (distribution issues
// 1803, 3743). It proves the test above would see the defect.
func TestStaleCacheWithoutRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	name := uniqueName("norestart")
	id, addr := startRegistry(t, registrySpec{name: name, publish: true,
		mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/var/lib/registry"}}})
	f := fill(t, addr)
	c := runtimeClient(t)
	opts := options(t)
	opts.NoRestart = true
	reg, err := c.Resolve(ctx, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, started := state(t, id)
	if err := c.WithQuiesced(ctx, reg, opts, cleanRun(t, reg, nil)); err != nil {
		t.Fatal(err)
	}
	if st, s := state(t, id); st != "running" || s != started {
		t.Fatalf("--no-restart: state %s, restarted %v", st, s != started)
	}
	if _, err := os.Stat(blobPath(dir, f.untaggedLayerDigest)); !os.IsNotExist(err) {
		t.Fatalf("the untagged image's layer was not deleted: %v", err)
	}
	f.verifyKept(t, addr)
	again := imageWithLayer(t, f.untaggedLayer)
	d := push(t, addr, "app:v2", again)
	if err := pullImage(addr, "app:v2", d); err == nil {
		t.Fatal("the registry's stale cache did not show: the restart test proves nothing")
	} else {
		t.Logf("as expected without a restart, the image is broken: %v", err)
	}
}
