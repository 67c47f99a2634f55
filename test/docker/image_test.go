package docker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

var (
	imageBin lazyBinary

	// imageVersion is the version the image's binary is built with, as the
	// Dockerfile's build command sets it.
	imageVersion = "crtest-" + randomHex(4)

	cliImages lazyImage
)

// imageBinary builds clean-registry the way the Dockerfile says, static, trimmed and
// stripped, its version set with -X, into a temporary directory.
func imageBinary(t *testing.T) string {
	return imageBin.get(t, "the clean-registry binary for the image", func(out string) error {
		return buildStatic("../../cmd/clean-registry", out, "-trimpath",
			"-ldflags", "-s -w -X github.com/clean-registry/clean-registry/v2/internal/cli.Version="+imageVersion)
	})
}

// cliImage builds the project's Dockerfile the documented way (Dockerfile,
// docs/docker.md): the repository's root as the context, of which .dockerignore
// sends only build/clean-registry and build/ca-certificates.crt.
func cliImage(t *testing.T) string {
	t.Helper()
	bin := imageBinary(t)
	api := engine(t)
	return cliImages.get(t, "clean-registry", func() (string, error) {
		dockerfile, err := os.ReadFile("../../Dockerfile")
		if err != nil {
			return "", err
		}
		ignore, err := os.ReadFile("../../.dockerignore")
		if err != nil {
			return "", err
		}
		if err := contextAdmits(dockerfile, ignore); err != nil {
			return "", err
		}
		files := map[string]fileEntry{
			"Dockerfile":           {data: dockerfile},
			".dockerignore":        {data: ignore},
			"build/clean-registry": {path: bin, mode: 0o755},
		}
		if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
			files["build/ca-certificates.crt"] = fileEntry{path: "/etc/ssl/certs/ca-certificates.crt"}
		} else {
			files["build/ca-certificates.crt"] = fileEntry{data: []byte{}}
		}
		ref := "crtest-clean-registry:" + randomHex(4)
		return ref, buildImage(api, ref, files)
	})
}

// contextAdmits checks that .dockerignore excludes everything ("*") but lets through
// every file the Dockerfile copies (the engine's API takes the context as sent: the
// docker command applies .dockerignore, so this test sends what it would).
func contextAdmits(dockerfile, ignore []byte) error {
	admitted := map[string]bool{}
	all := false
	for line := range strings.Lines(string(ignore)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "*":
			all = true
		case strings.HasPrefix(line, "!"):
			admitted[strings.TrimPrefix(line, "!")] = true
		}
	}
	if !all {
		return fmt.Errorf(".dockerignore does not exclude everything (*): the whole repository would be sent")
	}
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	copies := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "COPY" {
			copies++
			if !admitted[f[1]] {
				return fmt.Errorf("the Dockerfile copies %s, which .dockerignore does not let through", f[1])
			}
		}
	}
	if copies == 0 {
		return fmt.Errorf("the Dockerfile copies nothing")
	}
	return nil
}

// TestImage runs the project's image as documented: "version"; with the registry's
// volume mounted, --root on it (a dry run, then a real one, the registry stopped);
// and with the engine's socket mounted, the registry container as the target,
// paused meanwhile. Every kept image pulls whole after each run.
func TestImage(t *testing.T) {
	img := cliImage(t)
	api := engine(t)
	ctx := context.Background()

	var out bytes.Buffer
	if code := runContainer(t, img, nil, &out, &out, "version"); code != 0 || out.String() != "clean-registry "+imageVersion+"\n" {
		t.Fatalf("version: exit %d, %q; want exit 0 and %q", code, out.String(), "clean-registry "+imageVersion+"\n")
	}

	vol := namedVolume(t)
	name := uniqueName("image")
	id, addr := startRegistry(t, registrySpec{name: name, publish: true,
		mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/registry"}}})
	storage := mount.Mount{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/registry"}

	t.Run("--root", func(t *testing.T) {
		f := fill(t, addr)
		// --root quiesces nothing: the registry is stopped, so --grace 0 is right.
		if err := api.ContainerStop(ctx, id, containerStopNow()); err != nil {
			t.Fatalf("stopping the registry: %v", err)
		}
		hex := strings.TrimPrefix(f.untaggedManifest, "sha256:")
		var dry bytes.Buffer
		code := runContainer(t, img, []mount.Mount{storage}, &dry, &dry, "-n", "--grace", "0", "--root", "/var/lib/registry")
		if code != 0 || !strings.Contains(dry.String(), "would remove") || !strings.Contains(dry.String(), hex) {
			t.Fatalf("dry run: exit %d; want exit 0 and the untagged manifest %s among what would go\n%s", code, f.untaggedManifest, dry.String())
		}

		var stdout, stderr bytes.Buffer
		code = runContainer(t, img, []mount.Mount{storage}, &stdout, &stderr, "--json", "--grace", "0", "--root", "/var/lib/registry")
		var rep struct {
			Completed bool `json:"completed"`
			DryRun    bool `json:"dry_run"`
			Deletions []struct {
				Digest  string `json:"digest"`
				Applied *bool  `json:"applied"`
			} `json:"deletions"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || code != 0 || !rep.Completed || rep.DryRun {
			t.Fatalf("real run: exit %d, report %+v (%v); want exit 0, completed\nstdout: %.2000s\nstderr: %s", code, rep, err, stdout.String(), stderr.String())
		}
		applied := false
		for _, d := range rep.Deletions {
			if d.Digest == f.untaggedManifest && d.Applied != nil && *d.Applied {
				applied = true
			}
		}
		if !applied {
			t.Fatalf("real run: no applied deletion of the untagged manifest %s\n%.2000s", f.untaggedManifest, stdout.String())
		}

		if err := api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			t.Fatalf("starting the registry again: %v", err)
		}
		addr = addrOf(t, id)
		f.verifyKept(t, addr)
		if _, err := harness.Pull(ctx, addr, "app@"+f.untaggedManifest); err == nil {
			t.Errorf("the untagged manifest %s still pulls after the real run", f.untaggedManifest)
		}
	})

	t.Run("socket", func(t *testing.T) {
		f := fill(t, addr)
		since := time.Now()
		var out bytes.Buffer
		code := runContainer(t, img, []mount.Mount{
			{Type: mount.TypeBind, Source: engineSocket(t), Target: "/var/run/docker.sock"},
			storage,
		}, &out, &out, name)
		actions := containerActions(t, id, since, time.Now())
		if code != 0 || !contains(actions, "pause") {
			t.Fatalf("through the socket: exit %d, engine events %v; want exit 0 and a pause\n%s", code, actions, out.String())
		}
		if st, _ := state(t, id); st != "running" {
			t.Fatalf("after the run through the socket: the registry is %s, want running", st)
		}
		addr = addrOf(t, id)
		f.verifyKept(t, addr)
		f.verifyRepushed(t, addr)
	})
}
