// Package docker_test proves the Docker runtime against the real Docker Engine: a
// distribution registry built from source into a FROM-scratch image, run with a bind
// mount, a named volume and as a Swarm service, filled through its published port,
// quiesced, cleaned and restored.
package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// registryConfig is the image's /etc/distribution/config.yml: the official image's
// settings, an in-memory blob descriptor cache among them.
const registryConfig = `version: 0.1
log:
  level: warn
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
`

var (
	engineOnce sync.Once
	engineAPI  *client.Client
	engineErr  error
	// podmanEngine: the engine is Podman's Docker-compatible API (DOCKER_HOST at a
	// `podman system service` socket), whose events need a different query.
	podmanEngine bool

	registryImages lazyImage

	// created lists images to remove when all tests are done.
	createdMu     sync.Mutex
	createdImages []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	cliBin.remove()
	imageBin.remove()
	if engineAPI != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, img := range createdImages {
			engineAPI.ImageRemove(ctx, img, image.RemoveOptions{Force: true, PruneChildren: true})
		}
		cancel()
		engineAPI.Close()
	}
	os.Exit(code)
}

// engine returns the engine's API, or skips (fails under CLEAN_REGISTRY_REQUIRE_ALL=1)
// when no engine answers.
func engine(t *testing.T) *client.Client {
	t.Helper()
	engineOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := docker.NewClient(ctx)
		if err != nil {
			engineErr = err
			return
		}
		c.Close()
		engineAPI, engineErr = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if engineErr != nil {
			return
		}
		v, err := engineAPI.ServerVersion(ctx)
		if err != nil {
			engineErr = err
			return
		}
		for _, c := range v.Components {
			podmanEngine = podmanEngine || strings.Contains(c.Name, "Podman")
		}
	})
	if engineErr != nil {
		harness.Unavailable(t, "no Docker Engine answers (%v)", engineErr)
	}
	return engineAPI
}

// lazyImage is an image built once per test binary, by the first test that needs it.
type lazyImage struct {
	once sync.Once
	ref  string
	err  error
}

// get builds the image on first use; a failed build fails every test that needs it.
func (l *lazyImage) get(t *testing.T, what string, build func() (string, error)) string {
	t.Helper()
	l.once.Do(func() { l.ref, l.err = build() })
	if l.err != nil {
		t.Fatalf("%s image: %v", what, l.err)
	}
	return l.ref
}

// registryImage builds the FROM-scratch registry image once per test binary.
func registryImage(t *testing.T) string {
	t.Helper()
	api := engine(t)
	return registryImages.get(t, "registry", func() (string, error) {
		bin, err := harness.RegistryBinary(context.Background())
		if err != nil {
			return "", err
		}
		ref := fmt.Sprintf("crtest-registry:%s-%s", harness.RegistryVersion, randomHex(4))
		return ref, buildImage(api, ref, map[string]fileEntry{
			"Dockerfile": {data: []byte("FROM scratch\nCOPY registry /bin/registry\nCOPY config.yml /etc/distribution/config.yml\n" +
				"ENV OTEL_TRACES_EXPORTER=none\nENTRYPOINT [\"/bin/registry\"]\nCMD [\"serve\", \"/etc/distribution/config.yml\"]\n")},
			"config.yml": {data: []byte(registryConfig)},
			"registry":   {path: bin, mode: 0o755},
		})
	})
}

// buildStatic builds a package of this module into a static binary, one that runs
// in a FROM-scratch image.
func buildStatic(pkg, out string, flags ...string) error {
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", pkg, err, msg)
	}
	return nil
}

// lazyBinary is a binary built once per test binary into a temporary directory,
// which TestMain removes.
type lazyBinary struct {
	once sync.Once
	path string
	err  error
}

// get returns the binary, building it with build (which writes it at out) the
// first time; what names it when that fails.
func (l *lazyBinary) get(t *testing.T, what string, build func(out string) error) string {
	t.Helper()
	engine(t)
	l.once.Do(func() {
		dir, err := os.MkdirTemp("", "crtest-bin-")
		if err != nil {
			l.err = err
			return
		}
		l.path = filepath.Join(dir, "clean-registry")
		l.err = build(l.path)
	})
	if l.err != nil {
		t.Fatalf("%s: %v", what, l.err)
	}
	return l.path
}

func (l *lazyBinary) remove() {
	if l.path != "" {
		os.RemoveAll(filepath.Dir(l.path))
	}
}

type fileEntry struct {
	data []byte
	path string
	mode int64
}

// buildImage builds an image from an in-memory context (no base image: FROM scratch)
// and records it for removal.
func buildImage(api *client.Client, ref string, files map[string]fileEntry) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, f := range files {
		data := f.data
		if f.path != "" {
			var err error
			if data, err = os.ReadFile(f.path); err != nil {
				return err
			}
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		tw.Write(data)
	}
	tw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := api.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if msg.Error != "" {
			return fmt.Errorf("building %s: %s", ref, msg.Error)
		}
	}
	createdMu.Lock()
	createdImages = append(createdImages, ref)
	createdMu.Unlock()
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueName is a resource name the tests own: crtest-<what>-<random>.
func uniqueName(what string) string { return "crtest-" + what + "-" + randomHex(4) }

// registrySpec describes one registry container.
type registrySpec struct {
	name    string
	mounts  []mount.Mount
	env     []string
	cmd     []string
	publish bool
}

// startRegistry runs a registry container and waits until it answers, when
// published; it is removed when the test ends.
func startRegistry(t *testing.T, spec registrySpec) (id string, addr string) {
	t.Helper()
	api := engine(t)
	img := registryImage(t)
	ctx := context.Background()
	cfg := &container.Config{Image: img, Env: spec.env, Cmd: spec.cmd}
	hc := &container.HostConfig{Mounts: spec.mounts}
	if spec.publish {
		cfg.ExposedPorts = nat.PortSet{"5000/tcp": {}}
		hc.PortBindings = nat.PortMap{"5000/tcp": {{HostIP: "127.0.0.1"}}}
	}
	created, err := api.ContainerCreate(ctx, cfg, hc, nil, nil, spec.name)
	if err != nil {
		t.Fatalf("creating %s: %v", spec.name, err)
	}
	t.Cleanup(func() {
		api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v", spec.name, err)
	}
	if !spec.publish {
		return created.ID, ""
	}
	return created.ID, addrOf(t, created.ID)
}

// addrOf is where a registry container's port is published now (a restart may move
// it), once the registry answers there.
func addrOf(t *testing.T, id string) string {
	t.Helper()
	ins, err := engine(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("inspecting %s for its published port: %v", id, err)
	}
	b := ins.NetworkSettings.Ports["5000/tcp"]
	if len(b) == 0 {
		t.Fatalf("%s: port 5000 not published", ins.Name)
	}
	addr := "127.0.0.1:" + b[0].HostPort
	waitAnswers(t, addr)
	return addr
}

// startBindRegistry runs a published registry keeping its storage in a fresh
// bind-mounted directory, dir.
func startBindRegistry(t *testing.T, what string) (name, id, addr, dir string) {
	t.Helper()
	dir = t.TempDir()
	name = uniqueName(what)
	id, addr = startRegistry(t, registrySpec{name: name, publish: true,
		mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/var/lib/registry"}}})
	return name, id, addr, dir
}

// waitAnswers waits (bounded) until a registry answers /v2/.
func waitAnswers(t *testing.T, addr string) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for range 150 {
		resp, err := hc.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("registry at %s does not answer: %v", addr, last)
}

func namedVolume(t *testing.T) string {
	t.Helper()
	api := engine(t)
	n := uniqueName("vol")
	if _, err := api.VolumeCreate(context.Background(), volume.CreateOptions{Name: n}); err != nil {
		t.Fatalf("creating volume %s: %v", n, err)
	}
	t.Cleanup(func() {
		// Containers go first (their cleanups run earlier: registered later).
		api.VolumeRemove(context.Background(), n, true)
	})
	return n
}

// state is a container's state as the engine reports it, with its start time.
func state(t *testing.T, id string) (status string, started string) {
	t.Helper()
	ins, err := engine(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("inspecting %s: %v", id, err)
	}
	return ins.State.Status, ins.State.StartedAt
}

// pull pulls ref with every digest verified (manifests, configs, layers, index
// children) and checks that it resolves to want.
func pull(addr, ref, want string) error {
	p, err := harness.Pull(context.Background(), addr, ref)
	if err != nil {
		return err
	}
	if p.Digest != want {
		return fmt.Errorf("%s: digest %s, want %s", ref, p.Digest, want)
	}
	return nil
}

// statesDuring is a check for cleanRun: every container is in state want (paused,
// exited, or running for a read-only registry) and the run is told it is quiesced.
func statesDuring(t *testing.T, want string, ids ...string) func(ctx context.Context, quiesced bool) error {
	return func(ctx context.Context, quiesced bool) error {
		for _, id := range ids {
			if st, _ := state(t, id); st != want || !quiesced {
				return fmt.Errorf("during the run: %s is %s, quiesced %v (want %s, quiesced)", id[:12], st, quiesced, want)
			}
		}
		return nil
	}
}

// wantRestored fails the test unless the container runs again after a run, restarted
// (a new start time) exactly when wantRestart.
func wantRestored(t *testing.T, id, startedBefore string, wantRestart bool) {
	t.Helper()
	if st, started := state(t, id); st != "running" || (started != startedBefore) != wantRestart {
		t.Fatalf("after the run: %s is %s, restarted %v (want running, restarted %v)", id[:12], st, started != startedBefore, wantRestart)
	}
}

// cleanRun is what the CLI does inside WithQuiesced: clean the storage the runtime
// found, with the grace period 0 when quiesced.
func cleanRun(t *testing.T, reg *docker.Registry, check func(ctx context.Context, quiesced bool) error) docker.Run {
	return func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
		if check != nil {
			if err := check(ctx, quiesced); err != nil {
				return docker.Outcome{}, err
			}
		}
		b, err := fs.New(reg.Storage.Root, 8)
		if err != nil {
			return docker.Outcome{}, err
		}
		grace := time.Hour
		if quiesced {
			grace = 0
		}
		rep, err := clean.Run(ctx, b, clean.Options{Grace: grace, UploadAge: 24 * time.Hour, Jobs: 8})
		return docker.OutcomeOf(rep), err
	}
}

// client returns the runtime's client for the engine.
func runtimeClient(t *testing.T) *docker.Client {
	t.Helper()
	engine(t)
	c, err := docker.NewClient(context.Background())
	if err != nil {
		t.Fatalf("the runtime's engine client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// resolve resolves a target with the runtime, or fails the test.
func resolve(t *testing.T, c *docker.Client, target string, opts docker.Options) *docker.Registry {
	t.Helper()
	reg, err := c.Resolve(context.Background(), target, opts)
	if err != nil {
		t.Fatalf("resolving target %q (volume %v, stop %v): %v", target, opts.Volume, opts.Stop, err)
	}
	return reg
}

// runContainer runs an image to completion with the given mounts and no network, and
// returns its exit status; its output goes to stdout and stderr.
func runContainer(t *testing.T, img string, mounts []mount.Mount, stdout, stderr io.Writer, args ...string) int {
	t.Helper()
	api := engine(t)
	ctx := context.Background()
	created, err := api.ContainerCreate(ctx, &container.Config{Image: img, Cmd: args},
		&container.HostConfig{Mounts: mounts, NetworkMode: "none"}, nil, nil, uniqueName("run"))
	if err != nil {
		t.Fatalf("creating a container of %s: %v", img, err)
	}
	defer api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	waitC, errC := api.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting a container of %s: %v", img, err)
	}
	var code int
	select {
	case r := <-waitC:
		code = int(r.StatusCode)
	case err := <-errC:
		t.Fatalf("waiting for the container of %s to exit: %v", img, err)
	}
	logs, err := api.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("the logs of the container of %s: %v", img, err)
	}
	defer logs.Close()
	stdcopy.StdCopy(stdout, stderr, logs)
	return code
}

// logWriter sends the runtime's messages to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func options(t *testing.T) docker.Options {
	return docker.Options{Log: logWriter{t}, Warn: logWriter{t}}
}

func containerStopNow() container.StopOptions {
	timeout := 5
	return container.StopOptions{Timeout: &timeout}
}

func containerListAll() container.ListOptions { return container.ListOptions{All: true} }
