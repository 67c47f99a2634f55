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
	"github.com/docker/go-connections/nat"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/clean-registry/clean-registry/internal/clean"
	"github.com/clean-registry/clean-registry/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/internal/storage/fs"
)

// registryVersion is the distribution release the tests build and run.
const registryVersion = "v3.1.2"

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

	imageOnce sync.Once
	imageRef  string
	imageErr  error

	// created lists images to remove when all tests are done.
	createdMu     sync.Mutex
	createdImages []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cliPath != "" {
		os.RemoveAll(filepath.Dir(cliPath))
	}
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
	})
	if engineErr != nil {
		unavailable(t, "no Docker Engine answers (%v)", engineErr)
	}
	return engineAPI
}

func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CLEAN_REGISTRY_REQUIRE_ALL") == "1" {
		t.Fatalf(format+" and CLEAN_REGISTRY_REQUIRE_ALL=1", args...)
	}
	t.Skipf(format+"; skipping (set CLEAN_REGISTRY_REQUIRE_ALL=1 to fail instead)", args...)
}

func cacheDir() string {
	if d := os.Getenv("CLEAN_REGISTRY_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "clean-registry-cache")
	}
	return filepath.Join(home, ".cache", "clean-registry")
}

// registryBinary builds distribution's registry statically at the pinned release,
// once per cache directory.
func registryBinary() (string, error) {
	dir := filepath.Join(cacheDir(), "registry-"+registryVersion)
	bin := filepath.Join(dir, "registry")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "install", "github.com/distribution/distribution/v3/cmd/registry@"+registryVersion)
	cmd.Dir = os.TempDir() // outside this module: the pinned release's own go.mod rules
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the registry: %v\n%s", err, out)
	}
	return bin, nil
}

// registryImage builds the FROM-scratch registry image once per test binary.
func registryImage(t *testing.T) string {
	t.Helper()
	api := engine(t)
	imageOnce.Do(func() {
		bin, err := registryBinary()
		if err != nil {
			imageErr = err
			return
		}
		ref := fmt.Sprintf("crtest-registry:%s-%s", registryVersion, randomHex(4))
		imageErr = buildImage(api, ref, map[string]fileEntry{
			"Dockerfile": {data: []byte("FROM scratch\nCOPY registry /bin/registry\nCOPY config.yml /etc/distribution/config.yml\n" +
				"ENV OTEL_TRACES_EXPORTER=none\nENTRYPOINT [\"/bin/registry\"]\nCMD [\"serve\", \"/etc/distribution/config.yml\"]\n")},
			"config.yml": {data: []byte(registryConfig)},
			"registry":   {path: bin, mode: 0o755},
		})
		imageRef = ref
	})
	if imageErr != nil {
		t.Fatalf("registry image: %v", imageErr)
	}
	return imageRef
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
	ins, err := api.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := ins.NetworkSettings.Ports["5000/tcp"]
	if len(b) == 0 {
		t.Fatalf("%s: port 5000 not published", spec.name)
	}
	addr = "127.0.0.1:" + b[0].HostPort
	waitAnswers(t, addr)
	return created.ID, addr
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
		t.Fatal(err)
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

func ref(t *testing.T, addr, repoTag string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(addr+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func push(t *testing.T, addr, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(ref(t, addr, repoTag), img); err != nil {
		t.Fatalf("pushing %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func pushIndex(t *testing.T, addr, repoTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	if err := remote.WriteIndex(ref(t, addr, repoTag), idx); err != nil {
		t.Fatalf("pushing index %s: %v", repoTag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pullImage pulls an image and verifies every digest of it (manifest, config, layers).
func pullImage(addr, repoTag string, want v1.Hash) error {
	r, err := name.ParseReference(addr+"/"+repoTag, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(r)
	if err != nil {
		return err
	}
	if d, err := img.Digest(); err != nil || d != want {
		return fmt.Errorf("%s: digest %v, want %v (%v)", repoTag, d, want, err)
	}
	return validate.Image(img)
}

func pullIndex(addr, repoTag string, want v1.Hash) error {
	r, err := name.ParseReference(addr+"/"+repoTag, name.Insecure)
	if err != nil {
		return err
	}
	idx, err := remote.Index(r)
	if err != nil {
		return err
	}
	if d, err := idx.Digest(); err != nil || d != want {
		return fmt.Errorf("%s: digest %v, want %v (%v)", repoTag, d, want, err)
	}
	return validate.Index(idx)
}

// manifestExists asks the registry whether it serves a manifest by digest.
func manifestExists(t *testing.T, addr, repo string, d v1.Hash) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+addr+"/v2/"+repo+"/manifests/"+d.String(), nil)
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}, ","))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
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
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
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
