package docker_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

var probeImages lazyImage

// probeImage builds test/docker/probe statically into a FROM-scratch image: the
// runtime used from inside a container, as a dockerized clean-registry uses it.
func probeImage(t *testing.T) string {
	t.Helper()
	api := engine(t)
	return probeImages.get(t, "probe", func() (string, error) {
		bin := filepath.Join(t.TempDir(), "probe")
		if err := buildStatic("./probe", bin); err != nil {
			return "", err
		}
		ref := "crtest-probe:" + randomHex(4)
		return ref, buildImage(api, ref, map[string]fileEntry{
			"Dockerfile": {data: []byte("FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n")},
			"probe":      {path: bin, mode: 0o755},
		})
	})
}

// engineSocket is the engine's unix socket on this host, to mount into a container.
// An engine reached otherwise (DOCKER_HOST=tcp://...) has no socket to mount: the
// test skips, or fails under CLEAN_REGISTRY_REQUIRE_ALL=1, since CI's engine is the
// local one at unix:///var/run/docker.sock.
func engineSocket(t *testing.T) string {
	t.Helper()
	host := engine(t).DaemonHost()
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		harness.Unavailable(t, "the engine is at %s, not a local socket: nothing to mount into a container", host)
	}
	return sock
}

type probeResult struct {
	Kind      string   `json:"kind"`
	Root      string   `json:"root"`
	HostRoot  string   `json:"host_root"`
	Quiesced  bool     `json:"quiesced"`
	States    []string `json:"states_during"`
	Deletions int      `json:"deletions"`
	Error     string   `json:"error"`
}

// runProbe runs the probe in a container with the engine socket and the given
// mounts, and returns what it printed.
func runProbe(t *testing.T, mounts []mount.Mount, args ...string) probeResult {
	t.Helper()
	mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: engineSocket(t), Target: "/var/run/docker.sock"})
	var stdout, stderr bytes.Buffer
	runContainer(t, probeImage(t), mounts, &stdout, &stderr, args...)
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" {
			t.Logf("probe: %s", l)
		}
	}
	var res probeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("probe output %q: %v", stdout.String(), err)
	}
	return res
}

// TestDockerized: the runtime inside a container (engine socket and storage
// mounted) recognises its own container, maps the registry's storage to where it is
// mounted there, quiesces the registry (never itself) and restores it.
func TestDockerized(t *testing.T) {
	vol := namedVolume(t)
	name := uniqueName("dz")
	id, addr := startRegistry(t, registrySpec{name: name, publish: true,
		mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/registry"}}})
	probeImage(t)

	check := func(t *testing.T, res probeResult, root string) {
		t.Helper()
		if res.Error != "" || res.Root != root || !res.Quiesced || res.Deletions == 0 ||
			len(res.States) != 1 || res.States[0] != "paused" {
			t.Fatalf("probe saw %+v; want root %s, the registry paused, deletions", res, root)
		}
		if st, _ := state(t, id); st != "running" {
			t.Fatalf("after the run: the registry is %s, want running", st)
		}
		addr = addrOf(t, id)
	}

	t.Run("container target", func(t *testing.T) {
		f := fill(t, addr)
		res := runProbe(t, []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/storage"}}, name)
		check(t, res, "/storage")
		f.verifyKept(t, addr)
	})

	t.Run("volume target", func(t *testing.T) {
		f := fill(t, addr)
		res := runProbe(t, []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/data"}}, "-v", vol)
		check(t, res, "/data")
		f.verifyKept(t, addr)
	})

	t.Run("storage not mounted", func(t *testing.T) {
		res := runProbe(t, nil, name)
		if !strings.Contains(res.Error, "not mounted into clean-registry's container") {
			t.Fatalf("got %+v, want the storage reported as not mounted", res)
		}
		if st, _ := state(t, id); st != "running" {
			t.Fatalf("after a refused run: the registry is %s, want running", st)
		}
	})

	t.Run("bind mount below a mounted parent", func(t *testing.T) {
		parent := t.TempDir()
		sub := filepath.Join(parent, "reg")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatalf("making the bind-mounted storage directory: %v", err)
		}
		bname := uniqueName("dzbind")
		_, baddr := startRegistry(t, registrySpec{name: bname, publish: true,
			mounts: []mount.Mount{{Type: mount.TypeBind, Source: sub, Target: "/var/lib/registry"}}})
		f := fill(t, baddr)
		res := runProbe(t, []mount.Mount{{Type: mount.TypeBind, Source: parent, Target: "/host"}}, bname)
		if res.Error != "" || res.Root != "/host/reg" || res.HostRoot != sub {
			t.Fatalf("probe saw %+v; want root /host/reg, host root %s, no error", res, sub)
		}
		baddr = addrOf(t, bname)
		f.verifyKept(t, baddr)
	})
}
