// Command downtime measures what clients of a registry see while clean-registry
// cleans it: the registry runs as a Docker container (distribution built FROM
// scratch, as the tests build it) on a generated benchmark tree, and a prober pulls
// one small image (manifest and blobs, digests verified) and pushes a new small
// image, each every 100 ms, while clean-registry runs a real clean of the container,
// once per mode on a fresh tree: pause (the default: the registry is paused, then
// restarted) and --online (it keeps serving; restarted once, between the moves and
// the verification). It prints a markdown table: the run's time, the prober's failed
// and blocked time, the longest wait for a success, and whether every image the
// prober pushed pulls whole afterwards. Run it from the module root, as root or
// with the Docker socket:
//
//	go run ./bench/cmd/downtime -preset medium
//
// See docs/benchmarks.md.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

type options struct {
	preset   string
	work     string
	cleanBin string
	modes    string
	interval time.Duration
	blocked  time.Duration
	before   time.Duration
	after    time.Duration
	keep     bool
	out      string
	crArgs   string
}

func main() {
	var o options
	flag.StringVar(&o.preset, "preset", "medium", "generator preset of the registry's tree: "+strings.Join(gen.PresetNames(), ", "))
	flag.StringVar(&o.work, "work", filepath.Join(os.TempDir(), "clean-registry-bench", "downtime"), "work directory for the trees (one per mode)")
	flag.StringVar(&o.cleanBin, "clean-registry", "", "clean-registry binary (default: build ./cmd/clean-registry)")
	flag.StringVar(&o.modes, "modes", "pause,online", "comma-separated modes: pause (the default run), online (--online)")
	flag.DurationVar(&o.interval, "interval", 100*time.Millisecond, "the prober's interval, per stream (pull, push)")
	flag.DurationVar(&o.blocked, "blocked", 500*time.Millisecond, "a request slower than this counts its excess as blocked time")
	flag.DurationVar(&o.before, "before", 2*time.Second, "probing before clean-registry starts")
	flag.DurationVar(&o.after, "after", 3*time.Second, "probing after clean-registry ends")
	flag.BoolVar(&o.keep, "keep", false, "keep the trees and the registry image")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	flag.StringVar(&o.crArgs, "cr-args", "", "more clean-registry arguments, space-separated, for every mode")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "downtime:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

// Result is one mode's run.
type Result struct {
	Mode       string
	Files      int
	Run        time.Duration
	Began      time.Time
	Ended      time.Time
	ExitCode   int
	Deleted    int
	Downtime   float64 // the report's online.downtime_seconds
	Settle     float64
	Pull, Push Stats
	PushedOK   int
	Broken     []string
	RunError   string
}

func run(ctx context.Context, o options) error {
	cfg, ok := gen.Presets[o.preset]
	if !ok {
		return fmt.Errorf("unknown preset %q (have %s)", o.preset, strings.Join(gen.PresetNames(), ", "))
	}
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer api.Close()
	if _, err := api.Ping(ctx); err != nil {
		return fmt.Errorf("no Docker Engine answers: %w", err)
	}
	if o.cleanBin == "" {
		o.cleanBin = filepath.Join(o.work, "clean-registry")
		logf("building clean-registry")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.cleanBin, "./cmd/clean-registry")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building clean-registry (run from the module root): %v\n%s", err, out)
		}
	}
	logf("locating the registry %s binary (building it once takes about 2 minutes)", harness.RegistryVersion)
	regBin, err := harness.RegistryBinary(ctx)
	if err != nil {
		return err
	}
	img, err := buildRegistryImage(ctx, api, regBin)
	if err != nil {
		return err
	}
	if !o.keep {
		defer api.ImageRemove(context.Background(), img, image.RemoveOptions{Force: true, PruneChildren: true})
	}
	machine := describeMachine(ctx, api, o.work)

	var results []*Result
	for _, mode := range strings.Split(o.modes, ",") {
		mode = strings.TrimSpace(mode)
		if mode != "pause" && mode != "online" {
			return fmt.Errorf("unknown mode %q (pause, online)", mode)
		}
		r, err := runMode(ctx, o, api, img, cfg, mode)
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		results = append(results, r)
		logf("%s: %s", mode, r.line())
	}
	report := markdown(o, machine, results)
	fmt.Print(report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	for _, r := range results {
		if len(r.Broken) > 0 || r.ExitCode != 0 {
			return fmt.Errorf("%s: clean-registry exited %d; %d pushed image(s) broken", r.Mode, r.ExitCode, len(r.Broken))
		}
	}
	return nil
}

// registryConfig is the image's configuration: the official image's, an in-memory
// blob descriptor cache among them, without access logs.
const registryConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
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

// buildRegistryImage builds the FROM-scratch registry image from the binary (no
// base image is pulled).
func buildRegistryImage(ctx context.Context, api *client.Client, bin string) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY registry /bin/registry\nCOPY config.yml /etc/distribution/config.yml\n" +
			"ENV OTEL_TRACES_EXPORTER=none\nENTRYPOINT [\"/bin/registry\"]\nCMD [\"serve\", \"/etc/distribution/config.yml\"]\n")},
		{"config.yml", 0o644, []byte(registryConfig)},
		{"registry", 0o755, data},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return "", err
		}
		tw.Write(f.data)
	}
	tw.Close()
	ref := "crbench-registry:" + harness.RegistryVersion
	resp, err := api.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		return "", err
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
			return "", err
		}
		if msg.Error != "" {
			return "", fmt.Errorf("building %s: %s", ref, msg.Error)
		}
	}
	return ref, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// runMode generates a fresh tree, serves it from a registry container, and runs
// clean-registry on the container under the prober.
func runMode(ctx context.Context, o options, api *client.Client, img string, cfg gen.Config, mode string) (*Result, error) {
	r := &Result{Mode: mode}
	root := filepath.Join(o.work, mode)
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if !o.keep {
		defer os.RemoveAll(root)
	}
	logf("%s: generating the %s tree in %s", mode, o.preset, root)
	st, err := gen.Generate(ctx, root, cfg)
	if err != nil {
		return nil, err
	}
	r.Files = int(st.Files)
	// Old enough for the default grace period (1h) of a registry that keeps running.
	if err := harness.Backdate(root, time.Now().Add(-2*time.Hour)); err != nil {
		return nil, err
	}
	syscall.Sync()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	name := "crbench-" + mode + "-" + randomHex(4)
	created, err := api.ContainerCreate(ctx,
		&container.Config{Image: img, ExposedPorts: nat.PortSet{"5000/tcp": {}}},
		&container.HostConfig{
			Mounts:       []mount.Mount{{Type: mount.TypeBind, Source: root, Target: "/var/lib/registry"}},
			PortBindings: nat.PortMap{"5000/tcp": {{HostIP: "127.0.0.1", HostPort: port}}},
		}, nil, nil, name)
	if err != nil {
		return nil, err
	}
	defer api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + port
	if err := waitAnswers(ctx, addr); err != nil {
		return nil, err
	}

	var seed [8]byte
	rand.Read(seed[:])
	p := newProber(addr, binary.LittleEndian.Uint64(seed[:]))
	if err := p.prepare(ctx); err != nil {
		return nil, fmt.Errorf("pushing the probe image: %w", err)
	}
	p.start(o.interval)
	time.Sleep(o.before)

	args := []string{"--json"}
	if mode == "online" {
		args = append(args, "--online")
	}
	args = append(append(args, strings.Fields(o.crArgs)...), name)
	logf("%s: clean-registry %s", mode, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, o.cleanBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	r.Run = time.Since(start)
	r.Began, r.Ended = start, start.Add(r.Run)
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		r.ExitCode = ee.ExitCode()
	} else if err != nil {
		p.stop()
		return nil, err
	}
	time.Sleep(o.after)
	p.stop()

	var rep struct {
		Error string `json:"error"`
		Total struct {
			Count int `json:"count"`
		} `json:"total"`
		Online *struct {
			SettleSeconds   float64 `json:"settle_seconds"`
			DowntimeSeconds float64 `json:"downtime_seconds"`
		} `json:"online"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("clean-registry's JSON report: %v\n%s", err, stderr.String())
	}
	r.RunError, r.Deleted = rep.Error, rep.Total.Count
	if rep.Online != nil {
		r.Downtime, r.Settle = rep.Online.DowntimeSeconds, rep.Online.SettleSeconds
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		logf("%s: clean-registry's stderr:\n%s", mode, s)
	}
	r.Pull, r.Push = p.pull.stats(o.blocked), p.push.stats(o.blocked)

	// What the clean left must serve every image: the probe's pushes included.
	if err := waitAnswers(ctx, addr); err != nil {
		return nil, err
	}
	if got, err := harness.Pull(ctx, addr, "probe/pull:latest"); err != nil || got.Digest != p.pulled {
		r.Broken = append(r.Broken, fmt.Sprintf("probe/pull:latest: %v", err))
	}
	ok, broken := p.verifyPushed(ctx)
	r.PushedOK = ok
	r.Broken = append(r.Broken, broken...)
	sort.Strings(r.Broken)
	return r, nil
}

func waitAnswers(ctx context.Context, addr string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the registry at %s does not answer: %v", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *Result) line() string {
	return fmt.Sprintf("run %.2fs (exit %d), downtime reported %.2fs; pull: %d ops, %d failed, failed %.2fs, blocked %.2fs, longest %.2fs; "+
		"push: %d ops, %d failed, failed %.2fs, blocked %.2fs, longest %.2fs; %d pushed images verified, %d broken",
		r.Run.Seconds(), r.ExitCode, r.Downtime,
		r.Pull.Ops, r.Pull.Failed, r.Pull.FailedTime.Seconds(), r.Pull.BlockedTime.Seconds(), r.Pull.Longest.Seconds(),
		r.Push.Ops, r.Push.Failed, r.Push.FailedTime.Seconds(), r.Push.BlockedTime.Seconds(), r.Push.Longest.Seconds(),
		r.PushedOK, len(r.Broken))
}

// Machine describes where the figures were taken.
type Machine struct {
	CPUs                  int
	CPUModel, Memory      string
	Kernel, FS, Disk      string
	Engine, StorageDriver string
	Date                  string
}

func describeMachine(ctx context.Context, api *client.Client, work string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.Memory = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", work).Output(); err == nil {
		m.FS = strings.Join(strings.Fields(string(out)), " ")
		dev := strings.TrimPrefix(strings.Fields(m.FS)[0], "/dev/")
		if out, err := exec.Command("lsblk", "-dn", "-o", "NAME,SIZE,ROTA", "/dev/"+dev).Output(); err == nil {
			m.Disk = strings.Join(strings.Fields(string(out)), " ") + " (NAME SIZE ROTA)"
		}
	}
	if info, err := api.Info(ctx); err == nil {
		m.Engine, m.StorageDriver = info.ServerVersion, info.Driver
	}
	return m
}

func markdown(o options, m Machine, results []*Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Downtime: %s tree, the registry in a Docker container\n\n", o.preset)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s memory, kernel %s; trees on %s, disk %s; Docker Engine %s (%s). Date: %s.\n\n",
		m.CPUs, m.CPUModel, m.Memory, m.Kernel, m.FS, m.Disk, m.Engine, m.StorageDriver, m.Date)
	fmt.Fprintf(&b, "A prober pulls one image (manifest, config, 2 layers, digests verified) and pushes a new one-layer image, "+
		"each stream every %v, from %v before clean-registry starts until %v after it ends. Failed time: for each failed request, "+
		"the time until the next one; blocked time: the excess over %v of each slower successful request; longest wait: the "+
		"longest time between two successes of a stream. failed+blocked is the worse stream's.\n\n", o.interval, o.before, o.after, o.blocked)
	b.WriteString("| mode | files | deleted | run (s) | reported downtime (s) | pulls (failed) | pull failed (s) | pull blocked (s) | " +
		"pushes (failed) | push failed (s) | push blocked (s) | failed+blocked (s) | longest wait (s) | pushed images intact |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		fb := max(r.Pull.FailedTime+r.Pull.BlockedTime, r.Push.FailedTime+r.Push.BlockedTime)
		intact := fmt.Sprintf("%d of %d", r.PushedOK, r.PushedOK+len(r.Broken))
		down := "–"
		if r.Mode == "online" {
			down = fmt.Sprintf("%.2f", r.Downtime)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %s | %d (%d) | %.2f | %.2f | %d (%d) | %.2f | %.2f | **%.2f** | %.2f | %s |\n",
			r.Mode, r.Files, r.Deleted, r.Run.Seconds(), down, r.Pull.Ops, r.Pull.Failed, r.Pull.FailedTime.Seconds(),
			r.Pull.BlockedTime.Seconds(), r.Push.Ops, r.Push.Failed, r.Push.FailedTime.Seconds(), r.Push.BlockedTime.Seconds(),
			fb.Seconds(), max(r.Pull.Longest, r.Push.Longest).Seconds(), intact)
	}
	for _, r := range results {
		for _, e := range append(r.Pull.FirstErrs, r.Push.FirstErrs...) {
			fmt.Fprintf(&b, "\n- %s, first errors: %s", r.Mode, e)
		}
		for _, e := range r.Pull.Slowest {
			fmt.Fprintf(&b, "\n- %s, slowest pulls: %s", r.Mode, e)
		}
		for _, e := range r.Push.Slowest {
			fmt.Fprintf(&b, "\n- %s, slowest pushes: %s", r.Mode, e)
		}
		for _, e := range r.Broken {
			fmt.Fprintf(&b, "\n- %s, broken: %s", r.Mode, e)
		}
		fmt.Fprintf(&b, "\n- %s: clean-registry ran from %s to %s", r.Mode, r.Began.Format("15:04:05.000"), r.Ended.Format("15:04:05.000"))
		if r.RunError != "" {
			fmt.Fprintf(&b, "\n- %s: clean-registry: %s", r.Mode, r.RunError)
		}
	}
	b.WriteString("\n")
	return b.String()
}
