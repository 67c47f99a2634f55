package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Measure is one timed command: wall time, CPU time (user+sys of the process and the
// children it waited for, from wait4's rusage) and peak resident set size.
type Measure struct {
	Wall, CPU time.Duration
	MaxRSS    int64 // bytes
}

func (m Measure) add(o Measure) Measure {
	return Measure{Wall: m.Wall + o.Wall, CPU: m.CPU + o.CPU, MaxRSS: max(m.MaxRSS, o.MaxRSS)}
}

// rusageBin is the small launcher (bench/cmd/rusage) that measured commands start
// from, so that their peak RSS is their own and not the benchmark's.
var rusageBin string

// timed runs name args through rusageBin with stdout discarded (or written to stdout
// when not nil) and measures it. A non-zero exit is an error carrying the command's
// stderr.
func timed(ctx context.Context, stdout *os.File, name string, args ...string) (Measure, error) {
	if rusageBin == "" {
		return Measure{}, fmt.Errorf("the rusage launcher is not built")
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return Measure{}, err
	}
	defer reportR.Close()
	cmd := exec.CommandContext(ctx, rusageBin, append([]string{name}, args...)...)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{reportW}
	cmd.Env = append(os.Environ(), "RUSAGE_FD=3")
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return Measure{}, err
	}
	report, _ := io.ReadAll(reportR)
	err = cmd.Wait()
	var wallNs, cpuNs, rssKiB int64
	var code int
	if _, scanErr := fmt.Sscan(string(report), &wallNs, &cpuNs, &rssKiB, &code); scanErr != nil {
		return Measure{}, fmt.Errorf("%s %v: no measure (%v): %v\n%.2000s", name, args, scanErr, err, stderr.Bytes())
	}
	m := Measure{Wall: time.Duration(wallNs), CPU: time.Duration(cpuNs), MaxRSS: rssKiB * 1024}
	if err != nil {
		return m, fmt.Errorf("%s %v: %v\n%.2000s", name, args, err, stderr.Bytes())
	}
	return m, nil
}

// buildRusage builds the launcher next to the other binaries of the run.
func buildRusage(ctx context.Context, moduleRoot, binDir string) (string, error) {
	bin := filepath.Join(binDir, "rusage")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/cmd/rusage")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the rusage launcher: %v\n%s", err, out)
	}
	return bin, nil
}

// repeated runs a non-destructive command n times and keeps the run of median wall
// time, which a stray hiccup of the machine does not move.
func repeated(ctx context.Context, n int, name string, args ...string) (Measure, error) {
	var runs []Measure
	for range max(n, 1) {
		m, err := timed(ctx, nil, name, args...)
		if err != nil {
			return m, err
		}
		runs = append(runs, m)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Wall < runs[j].Wall })
	return runs[len(runs)/2], nil
}

// warm flushes pending writes and walks root once, untimed, so that every timed run
// finds the same warm cache and no write-back of an earlier step.
func warm(ctx context.Context, root string) error {
	syscall.Sync()
	_, err := timed(ctx, nil, "find", root, "-type", "f")
	return err
}
