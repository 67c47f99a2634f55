package docker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
)

var (
	probeOnce sync.Once
	probeRef  string
	probeErr  error
)

// probeImage builds test/docker/probe statically into a FROM-scratch image: the
// runtime used from inside a container, as a dockerized clean-registry uses it.
func probeImage(t *testing.T) string {
	t.Helper()
	api := engine(t)
	probeOnce.Do(func() {
		bin := filepath.Join(t.TempDir(), "probe")
		cmd := exec.Command("go", "build", "-o", bin, "./probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = err
			t.Logf("%s", out)
			return
		}
		probeRef = "crtest-probe:" + randomHex(4)
		probeErr = buildImage(api, probeRef, map[string]fileEntry{
			"Dockerfile": {data: []byte("FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n")},
			"probe":      {path: bin, mode: 0o755},
		})
	})
	if probeErr != nil {
		t.Fatalf("probe image: %v", probeErr)
	}
	return probeRef
}

// engineSocket is the engine's unix socket on this host, to mount into a container.
func engineSocket(t *testing.T) string {
	t.Helper()
	host := engine(t).DaemonHost()
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Skipf("the engine is at %s, not a local socket: nothing to mount into a container", host)
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
	api := engine(t)
	ctx := context.Background()
	mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: engineSocket(t), Target: "/var/run/docker.sock"})
	created, err := api.ContainerCreate(ctx, &container.Config{Image: probeImage(t), Cmd: args},
		&container.HostConfig{Mounts: mounts, NetworkMode: "none"}, nil, nil, uniqueName("probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	waitC, errC := api.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatal(err)
	}
	logs, err := api.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	stdcopy.StdCopy(&stdout, &stderr, logs)
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
			t.Fatalf("after the run: %s", st)
		}
		addr = addrOf(t, id)
		waitAnswers(t, addr)
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
			t.Fatalf("after a refused run: %s", st)
		}
	})

	t.Run("bind mount below a mounted parent", func(t *testing.T) {
		parent := t.TempDir()
		sub := filepath.Join(parent, "reg")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		bname := uniqueName("dzbind")
		_, baddr := startRegistry(t, registrySpec{name: bname, publish: true,
			mounts: []mount.Mount{{Type: mount.TypeBind, Source: sub, Target: "/var/lib/registry"}}})
		f := fill(t, baddr)
		res := runProbe(t, []mount.Mount{{Type: mount.TypeBind, Source: parent, Target: "/host"}}, bname)
		if res.Error != "" || res.Root != "/host/reg" || res.HostRoot != sub {
			t.Fatalf("probe saw %+v; want root /host/reg", res)
		}
		baddr = addrOf(t, bname)
		waitAnswers(t, baddr)
		f.verifyKept(t, baddr)
	})
}
