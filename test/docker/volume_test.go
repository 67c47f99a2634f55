package docker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"

	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// TestNamedVolume: two registries serve one named volume (each at its own path, the
// storage in a subdirectory named by REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY).
// Targeting the volume (-v) finds both; targeting one container adds the other.
// --stop stops and starts both; the default pauses both and restarts both.
func TestNamedVolume(t *testing.T) {
	ctx := context.Background()
	vol := namedVolume(t)
	first, second := uniqueName("vol-a"), uniqueName("vol-b")
	idA, addr := startRegistry(t, registrySpec{name: first, publish: true,
		env:    []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry/store"},
		mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/registry"}}})
	idB, _ := startRegistry(t, registrySpec{name: second,
		env:    []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/data/store"},
		mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/data"}}})
	f := fill(t, addr)
	c := runtimeClient(t)

	volInfo, err := engine(t).VolumeInspect(ctx, vol)
	if err != nil {
		t.Fatalf("inspecting volume %s: %v", vol, err)
	}
	wantRoot := filepath.Join(volInfo.Mountpoint, "store")

	t.Run("volume with --stop", func(t *testing.T) {
		opts := options(t)
		opts.Volume, opts.Stop = true, true
		reg := resolve(t, c, vol, opts)
		if reg.Kind != docker.KindVolume || reg.Storage.Root != wantRoot || len(reg.Containers) != 2 {
			t.Fatalf("resolved %+v, storage %+v; want volume %s with its root at %s, used by 2 containers", reg, reg.Storage, vol, wantRoot)
		}
		for _, m := range reg.Containers {
			if !m.Registry || m.Cache != "inmemory" {
				t.Fatalf("container %+v not seen as a registry with the inmemory cache", m)
			}
		}
		if err := c.WithQuiesced(ctx, reg, opts, cleanRun(t, reg, statesDuring(t, "exited", idA, idB))); err != nil {
			t.Fatalf("cleaning volume %s with --stop: %v", vol, err)
		}
		for _, id := range []string{idA, idB} {
			if st, _ := state(t, id); st != "running" {
				t.Fatalf("after the run: %s is %s, want running", id[:12], st)
			}
		}
		f.verifyLayerDeleted(t, wantRoot)
		addr = addrOf(t, idA)
		f.verifyKept(t, addr)
		f.verifyRepushed(t, addr)
	})

	t.Run("container with a second registry on its storage", func(t *testing.T) {
		// Something to delete again, so that both caches go stale.
		g := fill(t, addr)
		reg := resolve(t, c, first, options(t))
		if len(reg.Containers) != 2 || !reg.Containers[1].Registry || !strings.Contains(strings.Join(reg.Notes, "\n"), second) {
			t.Fatalf("the second registry was not added: %+v, notes %q", reg.Containers, reg.Notes)
		}
		_, startedA := state(t, idA)
		_, startedB := state(t, idB)
		if err := c.WithQuiesced(ctx, reg, options(t), cleanRun(t, reg, statesDuring(t, "paused", idA, idB))); err != nil {
			t.Fatalf("cleaning %s and %s while paused: %v", first, second, err)
		}
		wantRestored(t, idA, startedA, true)
		wantRestored(t, idB, startedB, true)
		addr = addrOf(t, idA)
		g.verifyKept(t, addr)
	})
}

// TestConfigFromCommandAndEnvironment: the configuration file named on the command
// line (bind-mounted, read through the archive API), a storage below a bind mount,
// and no cache configured: the registry is only unpaused after deleting blobs.
func TestConfigFromCommandAndEnvironment(t *testing.T) {
	ctx := context.Background()
	cfgDir, dataDir := t.TempDir(), t.TempDir()
	cfg := strings.Replace(registryConfig, "  cache:\n    blobdescriptor: inmemory\n", "", 1)
	cfg = strings.Replace(cfg, "rootdirectory: /var/lib/registry", "rootdirectory: /srv/registry/data", 1)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatalf("writing the registry's config.yml: %v", err)
	}
	name := uniqueName("cmdcfg")
	id, addr := startRegistry(t, registrySpec{name: name, publish: true,
		cmd: []string{"serve", "/etc/alt/config.yml"},
		mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: cfgDir, Target: "/etc/alt", ReadOnly: true},
			{Type: mount.TypeBind, Source: dataDir, Target: "/srv/registry"},
		}})
	f := fill(t, addr)
	c := runtimeClient(t)
	reg := resolve(t, c, name, options(t))
	wantRoot := filepath.Join(dataDir, "data")
	if reg.Storage.Root != wantRoot || reg.Storage.ContainerRoot != "/srv/registry/data" || reg.Containers[0].Cache != "" {
		t.Fatalf("resolved storage %+v, containers %+v; want root %s (/srv/registry/data inside) and no cache", reg.Storage, reg.Containers, wantRoot)
	}
	_, started := state(t, id)
	if err := c.WithQuiesced(ctx, reg, options(t), cleanRun(t, reg, statesDuring(t, "paused", id))); err != nil {
		t.Fatalf("cleaning %s while paused: %v", name, err)
	}
	wantRestored(t, id, started, false) // no cache: nothing to refresh
	f.verifyLayerDeleted(t, wantRoot)
	f.verifyKept(t, addr)
	f.verifyRepushed(t, addr)
}

// TestReadOnlyAndStoppedRegistries: a registry in read-only maintenance mode is left
// running and counts as quiesced; a stopped one has its configuration read out of the
// stopped container and its release found by running its image once, and stays
// stopped.
func TestReadOnlyAndStoppedRegistries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bind := []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/var/lib/registry"}}
	writer, addr := startRegistry(t, registrySpec{name: uniqueName("writer"), publish: true, mounts: bind})
	f := fill(t, addr)
	if err := engine(t).ContainerStop(ctx, writer, containerStopNow()); err != nil {
		t.Fatalf("stopping the writing registry: %v", err)
	}
	c := runtimeClient(t)

	t.Run("read-only", func(t *testing.T) {
		name := uniqueName("readonly")
		id, addr := startRegistry(t, registrySpec{name: name, publish: true, mounts: bind,
			env: []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY={enabled: true}"}})
		reg := resolve(t, c, name, options(t))
		if !reg.Storage.ReadOnly || !reg.Containers[0].ReadOnly {
			t.Fatalf("read-only mode not seen: storage %+v, container %+v; want both read-only", reg.Storage, reg.Containers[0])
		}
		_, started := state(t, id)
		if err := c.WithQuiesced(ctx, reg, options(t), cleanRun(t, reg, statesDuring(t, "running", id))); err != nil {
			t.Fatalf("cleaning under a read-only registry: %v", err)
		}
		wantRestored(t, id, started, false)
		f.verifyKept(t, addr)
		engine(t).ContainerStop(ctx, id, containerStopNow())
	})

	t.Run("stopped", func(t *testing.T) {
		reg := resolve(t, c, writer, options(t))
		if !strings.HasPrefix(reg.Version, harness.RegistryVersion) || reg.Storage.Root != dir {
			t.Fatalf("resolved a stopped registry: version %q, storage %+v; want version %s, root %s", reg.Version, reg.Storage, harness.RegistryVersion, dir)
		}
		err := c.WithQuiesced(ctx, reg, options(t), func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
			if st, _ := state(t, writer); st != "exited" || !quiesced {
				return docker.Outcome{}, fmt.Errorf("during the run: %s, quiesced %v (want exited, quiesced)", st, quiesced)
			}
			return docker.Outcome{Blobs: []string{"sha256:" + strings.Repeat("0", 64)}}, nil
		})
		if err != nil {
			t.Fatalf("a run on a stopped registry: %v", err)
		}
		if st, _ := state(t, writer); st != "exited" {
			t.Fatalf("a stopped registry was started: it is %s, want exited", st)
		}
		// The throw-away container that ran `registry --version` is gone.
		list, err := engine(t).ContainerList(ctx, containerListAll())
		if err != nil {
			t.Fatalf("listing containers: %v", err)
		}
		for _, s := range list {
			if s.Labels["clean-registry.role"] == "version-probe" {
				t.Fatalf("version probe container %s left behind", s.ID[:12])
			}
		}
	})
}
