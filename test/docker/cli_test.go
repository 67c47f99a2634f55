package docker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// cliBin is clean-registry built statically (so that the same binary serves the
// container image), once per test binary.
var cliBin lazyBinary

func cliBinary(t *testing.T) string {
	return cliBin.get(t, "the clean-registry binary", func(out string) error {
		return buildStatic("../../cmd/clean-registry", out)
	})
}

// containerActions lists the engine's events for a container between two times.
func containerActions(t *testing.T, id string, since, until time.Time) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api := engine(t)
	streamUntil := until
	if podmanEngine {
		// Podman 4 ends the stream at once, before reading its event log, when
		// until is past: ask up to a moment from now and drop what came later.
		streamUntil = time.Now().Add(time.Second)
	}
	msgs, errs := api.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Until:   fmt.Sprintf("%d.%09d", streamUntil.Unix(), streamUntil.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("container", id)),
	})
	var actions []string
	for {
		select {
		case m := <-msgs:
			if m.TimeNano < since.UnixNano() || m.TimeNano > until.UnixNano() {
				continue
			}
			actions = append(actions, string(m.Action))
		case err := <-errs:
			if err != nil && !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "EOF") {
				t.Fatalf("engine events: %v", err)
			}
			return actions
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runCLI runs clean-registry and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(cliBinary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running clean-registry %v: %v", args, err)
	}
	return code, out.String()
}

// TestCLITargets runs the binary against a container name and a volume: the engine
// records the pause and the restart, and every kept image pulls whole.
func TestCLITargets(t *testing.T) {
	cliBinary(t)
	vol := namedVolume(t)
	name := uniqueName("cli")
	id, addr := startRegistry(t, registrySpec{name: name, publish: true,
		mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/registry"}}})

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"container", []string{name}},
		{"volume", []string{"-v", vol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fill(t, addr)
			since := time.Now()
			code, out := runCLI(t, tc.args...)
			until := time.Now()
			if code != 0 {
				t.Fatalf("clean-registry %v: exit %d\n%s", tc.args, code, out)
			}
			actions := containerActions(t, id, since, until)
			if !contains(actions, "pause") || !contains(actions, "kill") || !contains(actions, "start") {
				t.Fatalf("engine events %v: want pause, then kill and start (a restart)\n%s", actions, out)
			}
			if st, _ := state(t, id); st != "running" {
				t.Fatalf("after the run: the registry is %s, want running", st)
			}
			addr = addrOf(t, id)
			f.verifyKept(t, addr)
			f.verifyRepushed(t, addr)
		})
	}

	t.Run("--stop", func(t *testing.T) {
		f := fill(t, addr)
		since := time.Now()
		code, out := runCLI(t, "--stop", name)
		actions := containerActions(t, id, since, time.Now())
		// Podman 4 records no stop event for a stop through its API, only the
		// container's death.
		stopped := contains(actions, "stop") || (podmanEngine && contains(actions, "die"))
		if code != 0 || !stopped || !contains(actions, "start") || contains(actions, "pause") {
			t.Fatalf("exit %d, engine events %v: want stop and start\n%s", code, actions, out)
		}
		addr = addrOf(t, id)
		f.verifyKept(t, addr)
	})
}

// TestCLISIGTERM sends SIGTERM to clean-registry once the engine reports the
// registry paused: it exits with status 1 and leaves the registry running.
func TestCLISIGTERM(t *testing.T) {
	bin := cliBinary(t)
	name, id, addr, dir := startBindRegistry(t, "cliterm")
	f := fill(t, addr)
	// Many untagged revisions whose manifests are missing make the run last.
	for i := range 1000 {
		d := fmt.Sprintf("sha256:%064x", i+1)
		if err := harness.WriteLink(dir, harness.RevisionLinkPath("bulk", d), d); err != nil {
			t.Fatalf("writing revision link %d of 1000: %v", i+1, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errs := engine(t).Events(ctx, events.ListOptions{
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("container", id))})
	cmd := exec.Command(bin, name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting clean-registry %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	signalled := false
wait:
	for {
		select {
		case m := <-msgs:
			if m.Action == "pause" && !signalled {
				cmd.Process.Signal(syscall.SIGTERM)
				signalled = true
			}
		case err := <-errs:
			t.Fatalf("engine events: %v", err)
		case <-exited:
			break wait
		}
	}
	if !signalled {
		t.Fatalf("the registry was never paused\n%s", out.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Logf("exit %d: the run may have finished before the signal\n%s", code, out.String())
	}
	if st, _ := state(t, id); st != "running" {
		t.Fatalf("after SIGTERM: the registry is %s, want running\n%s", st, out.String())
	}
	addr = addrOf(t, id)
	f.verifyKept(t, addr)
}
