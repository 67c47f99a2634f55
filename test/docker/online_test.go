package docker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/go-connections/nat"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// onlineReport is the part of the JSON report the online tests read.
type onlineReport struct {
	Completed bool   `json:"completed"`
	Error     string `json:"error"`
	Online    *struct {
		Quarantined     int     `json:"quarantined"`
		SettleSeconds   float64 `json:"settle_seconds"`
		DowntimeSeconds float64 `json:"downtime_seconds"`
		RestartRequired bool    `json:"restart_required"`
	} `json:"online"`
}

// runCLIJSON runs clean-registry with --json and reads its report from stdout.
func runCLIJSON(t *testing.T, args ...string) (int, onlineReport, string) {
	t.Helper()
	cmd := exec.Command(cliBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running clean-registry %v: %v", args, err)
	}
	var rep onlineReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("clean-registry %v: exit %d, no JSON report (%v)\nstdout: %s\nstderr: %s", args, code, err, stdout.String(), stderr.String())
	}
	return code, rep, stderr.String()
}

// startFixedRegistry runs a registry published on a fixed loopback port (a restart
// keeps it, so that clients keep their address), its storage in a fresh directory.
func startFixedRegistry(t *testing.T, what string) (name, id, addr, dir string) {
	t.Helper()
	api := engine(t)
	dir = t.TempDir()
	name = uniqueName(what)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	ctx := context.Background()
	created, err := api.ContainerCreate(ctx,
		&container.Config{Image: registryImage(t), ExposedPorts: nat.PortSet{"5000/tcp": {}}},
		&container.HostConfig{
			Mounts:       []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/var/lib/registry"}},
			PortBindings: nat.PortMap{"5000/tcp": {{HostIP: "127.0.0.1", HostPort: port}}},
		}, nil, nil, name)
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	t.Cleanup(func() {
		api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	addr = "127.0.0.1:" + port
	waitAnswers(t, addr)
	return name, created.ID, addr, dir
}

// traffic pulls one image over and over (digests verified) while a run goes on, and
// watches the registry's container state.
type traffic struct {
	mu       sync.Mutex
	pulls    int
	failed   int
	longest  time.Duration // the longest single pull, failed or not
	outage   time.Duration // the longest time from a failed pull to the next success
	paused   bool
	lastErr  error
	stop     chan struct{}
	finished sync.WaitGroup
}

func startTraffic(t *testing.T, id, addr, ref, digest string) *traffic {
	api := engine(t)
	tr := &traffic{stop: make(chan struct{})}
	tr.finished.Add(2)
	go func() {
		defer tr.finished.Done()
		var down time.Time // when the current outage began
		for {
			select {
			case <-tr.stop:
				return
			default:
			}
			start := time.Now()
			err := pull(addr, ref, digest)
			took := time.Since(start)
			tr.mu.Lock()
			tr.pulls++
			tr.longest = max(tr.longest, took)
			if err != nil {
				tr.failed++
				tr.lastErr = err
				if down.IsZero() {
					down = start
				}
			} else if !down.IsZero() {
				tr.outage = max(tr.outage, time.Since(down))
				down = time.Time{}
			}
			tr.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		defer tr.finished.Done()
		for {
			select {
			case <-tr.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ins, err := api.ContainerInspect(context.Background(), id)
			if err == nil && ins.State != nil && ins.State.Paused {
				tr.mu.Lock()
				tr.paused = true
				tr.mu.Unlock()
			}
		}
	}()
	return tr
}

func (tr *traffic) end() {
	close(tr.stop)
	tr.finished.Wait()
}

func (tr *traffic) String() string {
	return fmt.Sprintf("%d pulls, %d failed (last: %v), longest pull %v, longest outage %v, paused %v",
		tr.pulls, tr.failed, tr.lastErr, tr.longest.Round(time.Millisecond), tr.outage.Round(time.Millisecond), tr.paused)
}

// quarantineLeft fails the test when an online run left its quarantine behind.
func quarantineLeft(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, layout.QuarantineDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("reading the quarantine: %v", err)
	}
	if len(entries) > 0 {
		t.Fatalf("the online run left its quarantine: %v", entries)
	}
}

// TestOnlineContainer: `clean-registry --online CONTAINER` never pauses the
// registry: a client pulling throughout sees at most the short outage of one
// restart (its in-memory cache named deleted blobs), which the report gives as the
// downtime; the settle is skipped since the restart ended every request; every
// kept image pulls whole, the deleted blobs are gone, and a later push of a deleted
// layer stores it again.
func TestOnlineContainer(t *testing.T) {
	cliBinary(t)
	name, id, addr, dir := startFixedRegistry(t, "online")
	f := fill(t, addr)
	_, started := state(t, id)

	tr := startTraffic(t, id, addr, "tools/keep:1", f.keep)
	time.Sleep(300 * time.Millisecond) // some pulls before the run
	since := time.Now()
	code, rep, stderr := runCLIJSON(t, "--online", "--grace", "0", "--json", name)
	until := time.Now()
	time.Sleep(500 * time.Millisecond) // and after it
	tr.end()
	t.Logf("run: %.2fs; traffic: %v\n%s", until.Sub(since).Seconds(), tr, stderr)

	if code != 0 || !rep.Completed || rep.Online == nil {
		t.Fatalf("clean-registry --online: exit %d, completed %v, error %q, online %+v\n%s", code, rep.Completed, rep.Error, rep.Online, stderr)
	}
	if tr.paused {
		t.Error("the registry was paused during an online run")
	}
	actions := containerActions(t, id, since, until)
	starts := 0
	for _, a := range actions {
		if a == "start" {
			starts++
		}
	}
	if contains(actions, "pause") || contains(actions, "unpause") || starts != 1 {
		t.Errorf("engine events %v: want one restart (one start), no pause", actions)
	}
	if _, now := state(t, id); now == started {
		t.Error("the registry was not restarted: its in-memory cache may name deleted blobs")
	}
	if rep.Online.DowntimeSeconds <= 0 || rep.Online.RestartRequired || rep.Online.SettleSeconds != 0 || rep.Online.Quarantined == 0 {
		t.Errorf("report online %+v: want a downtime, no restart required, no settle (the restart ended every request), files quarantined",
			*rep.Online)
	}
	// The client saw the restart, and only that: no pull blocked behind a paused
	// registry.
	if tr.pulls < 5 || tr.longest > 5*time.Second || tr.outage > 10*time.Second {
		t.Errorf("traffic during the run: %v; want short pulls and at most a short outage", tr)
	}
	if tr.outage.Seconds() > rep.Online.DowntimeSeconds+2 {
		t.Errorf("the client saw an outage of %v; the report says %.2fs of downtime", tr.outage, rep.Online.DowntimeSeconds)
	}

	f.verifyLayerDeleted(t, dir)
	quarantineLeft(t, dir)
	harness.NewSession(t, addr).Gone("app@" + f.untaggedManifest)
	f.verifyKept(t, addr)
	f.verifyRepushed(t, addr)
}

// TestOnlineNoRestart: with --no-restart the registry is neither paused nor
// restarted; the report says a restart is required, a warning says so, and the run
// waits the settle (no restart ended the requests in flight).
func TestOnlineNoRestart(t *testing.T) {
	cliBinary(t)
	name, id, addr, dir := startFixedRegistry(t, "onlinenr")
	f := fill(t, addr)
	_, started := state(t, id)

	tr := startTraffic(t, id, addr, "tools/keep:1", f.keep)
	since := time.Now()
	code, rep, stderr := runCLIJSON(t, "--online", "--grace", "0", "--settle", "1s", "--no-restart", "--json", name)
	until := time.Now()
	tr.end()
	t.Logf("run: %.2fs; traffic: %v\n%s", until.Sub(since).Seconds(), tr, stderr)

	if code != 0 || !rep.Completed || rep.Online == nil {
		t.Fatalf("clean-registry --online --no-restart: exit %d, completed %v, error %q, online %+v\n%s",
			code, rep.Completed, rep.Error, rep.Online, stderr)
	}
	if !rep.Online.RestartRequired || rep.Online.DowntimeSeconds != 0 || rep.Online.SettleSeconds < 1 {
		t.Errorf("report online %+v: want restart_required, no downtime, the settle waited", *rep.Online)
	}
	if !bytes.Contains([]byte(stderr), []byte("--no-restart")) {
		t.Errorf("no warning names --no-restart:\n%s", stderr)
	}
	actions := containerActions(t, id, since, until)
	if contains(actions, "pause") || contains(actions, "start") || contains(actions, "kill") || contains(actions, "stop") {
		t.Errorf("engine events %v: want none that pause or restart the registry", actions)
	}
	wantRestored(t, id, started, false)
	if tr.paused || tr.failed > 0 {
		t.Errorf("traffic during the run: %v; want no pause and no failure", tr)
	}
	f.verifyLayerDeleted(t, dir)
	quarantineLeft(t, dir)
	f.verifyKept(t, addr)
}

// TestOnlineSIGTERM: SIGTERM during an online run's settle stops the run at once
// (exit 1) with nothing to restore: the registry was never paused and serves every
// kept image; the quarantine the run left is verified and purged by the next run.
func TestOnlineSIGTERM(t *testing.T) {
	bin := cliBinary(t)
	name, id, addr, dir := startFixedRegistry(t, "onlineterm")
	f := fill(t, addr)
	tr := startTraffic(t, id, addr, "tools/keep:1", f.keep)

	// --no-restart keeps the settle (no restart ends the requests in flight): the
	// signal lands in it.
	cmd := exec.Command(bin, "--online", "--grace", "0", "--settle", "5m", "--no-restart", name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting clean-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for !quarantined(dir) {
		select {
		case err := <-exited:
			t.Fatalf("the run ended before its settle (%v)\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no quarantine after 2 minutes\n%s", out.String())
		}
	}
	time.Sleep(time.Second) // the moves done, the settle begun
	signalled := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("clean-registry still runs 30s after SIGTERM\n%s", out.String())
	}
	tr.end()
	t.Logf("exit %d %v after SIGTERM; traffic: %v\n%s", cmd.ProcessState.ExitCode(), time.Since(signalled), tr, out.String())
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d after SIGTERM, want 1", code)
	}
	if tr.paused || tr.failed > 0 {
		t.Errorf("traffic: %v; want no pause, no failure", tr)
	}
	if st, _ := state(t, id); st != "running" {
		t.Fatalf("after SIGTERM the registry is %s, want running", st)
	}
	f.verifyKept(t, addr)
	if !quarantined(dir) {
		t.Fatal("the interrupted run left no quarantine: was the signal too late?")
	}

	// The next run finishes the interrupted one's work.
	code, rep, stderr := runCLIJSON(t, "--online", "--grace", "0", "--settle", "1s", "--json", name)
	if code != 0 || !rep.Completed {
		t.Fatalf("the run after the interrupted one: exit %d, error %q\n%s", code, rep.Error, stderr)
	}
	quarantineLeft(t, dir)
	f.verifyLayerDeleted(t, dir)
	f.verifyKept(t, addr)
	f.verifyRepushed(t, addr)
}

// quarantined reports whether an online run's quarantine holds files below root.
func quarantined(root string) bool {
	found := false
	filepath.WalkDir(filepath.Join(root, layout.QuarantineDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) != "journal.json" {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// TestOnlineSwarmService: an online run of a two-task service pauses neither task;
// it stops them one at a time for Swarm to replace (the other serves meanwhile),
// skips the settle since both were replaced, and each fresh task serves every kept
// image and stores a deleted layer pushed again.
func TestOnlineSwarmService(t *testing.T) {
	ctx := context.Background()
	api := engine(t)
	img := registryImage(t)
	vol := namedVolume(t)
	swarmMode(t)
	cliBinary(t)

	replicas := uint64(2)
	delay := 200 * time.Millisecond
	svcName := uniqueName("onlinesvc")
	created, err := api.ServiceCreate(ctx, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: svcName},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: img,
				Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/registry"}}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP,
			TargetPort: 5000, PublishMode: swarm.PortConfigPublishModeHost}}},
	}, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	t.Cleanup(func() { removeService(t, created.ID) })
	before := runningTasks(t, created.ID, 2, nil)
	addr := addrOf(t, before[0])
	addrOf(t, before[1])
	f := fill(t, addr)

	since := time.Now()
	code, rep, stderr := runCLIJSON(t, "--online", "--grace", "0", "--json", svcName)
	until := time.Now()
	t.Logf("run: %.2fs, online %+v\n%s", until.Sub(since).Seconds(), rep.Online, stderr)
	if code != 0 || !rep.Completed || rep.Online == nil {
		t.Fatalf("clean-registry --online %s: exit %d, completed %v, error %q, online %+v", svcName, code, rep.Completed, rep.Error, rep.Online)
	}
	for _, id := range before {
		if actions := containerActions(t, id, since, until); contains(actions, "pause") || !contains(actions, "die") {
			t.Errorf("task %s: engine events %v; want it stopped (die), never paused", id[:12], actions)
		}
	}
	if rep.Online.SettleSeconds != 0 || rep.Online.DowntimeSeconds <= 0 || rep.Online.RestartRequired {
		t.Errorf("report online %+v: want no settle (both tasks replaced), a downtime, no restart required", *rep.Online)
	}
	after := runningTasks(t, created.ID, 2, map[string]bool{before[0]: true, before[1]: true})
	a0, a1 := addrOf(t, after[0]), addrOf(t, after[1])
	f.verifyKept(t, a0)
	f.verifyKept(t, a1)
	f.verifyRepushed(t, a0, a0, a1)
}
