package docker_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// podmanTests are the tests of this package that TestPodman runs again against
// Podman's Docker-compatible API: a container target and a volume target paused
// (and --stop), restore of a --keep-deleted run pausing again, and --online
// restarting the registry once for its in-memory cache.
var podmanTests = []string{"TestCLITargets", "TestUndoDocker", "TestOnlineContainer"}

// TestPodman starts its own `podman system service` on a temporary socket and runs
// podmanTests in a child of this test binary with DOCKER_HOST at that socket: the
// same harness (a FROM-scratch registry image built through the socket, pushes,
// the real clean-registry binary, the engine's events and states) against Podman.
func TestPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		harness.Unavailable(t, "podman is not installed (Debian package podman)")
	}
	host := startPodmanService(t)

	var out bytes.Buffer
	run := "^(" + strings.Join(podmanTests, "|") + ")$"
	cmd := exec.Command(os.Args[0], "-test.run", run, "-test.count", "1", "-test.v", "-test.timeout", "10m")
	cmd.Env = append(withoutEnv(os.Environ(), "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"),
		"DOCKER_HOST="+host)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	passed := regexp.MustCompile(`(?m)^--- PASS: (\w+)`).FindAllStringSubmatch(out.String(), -1)
	if err != nil || len(passed) != len(podmanTests) {
		t.Fatalf("the tests against Podman (DOCKER_HOST=%s): %v, %d of %d passed\n%s", host, err, len(passed), len(podmanTests), out.String())
	}
	t.Logf("against Podman (DOCKER_HOST=%s), passed: %v", host, podmanTests)
}

// startPodmanService runs `podman system service` on a socket in a temporary
// directory until the test ends, and returns its DOCKER_HOST once it answers.
func startPodmanService(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "crtest-podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	host := "unix://" + filepath.Join(dir, "podman.sock")
	var log bytes.Buffer
	svc := exec.Command("podman", "system", "service", "--time=0", host)
	svc.Stdout, svc.Stderr = &log, &log
	if err := svc.Start(); err != nil {
		t.Fatalf("starting podman system service: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- svc.Wait() }()
	t.Cleanup(func() {
		svc.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			svc.Process.Kill()
			<-exited
		}
	})

	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := api.Ping(ctx)
		cancel()
		if err == nil {
			return host
		}
		select {
		case e := <-exited:
			t.Fatalf("podman system service exited (%v)\n%s", e, log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("podman system service does not answer at %s: %v\n%s", host, fmt.Sprint(err), log.String())
		}
	}
}

// withoutEnv is env without the named variables.
func withoutEnv(env []string, names ...string) []string {
	var kept []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			kept = append(kept, kv)
		}
	}
	return kept
}
