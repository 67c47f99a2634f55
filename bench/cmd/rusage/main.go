// Command rusage runs a command and reports its wall time, user+sys CPU time and peak
// resident set size, from wait4:
//
//	rusage find /var/lib/registry -type f
//
// It prints "wall_ns cpu_ns maxrss_kib exit_status" on stderr, or on file descriptor
// 3 when RUSAGE_FD=3 says the caller passed one, and exits with the command's status.
//
// The benchmark runs commands through it because Linux charges a child, at exec, the
// peak RSS of the address space it leaves: a child started straight from the
// benchmark (vfork shares its memory) would report the benchmark's own peak, hundreds
// of MiB. This small process is what the measured command starts from instead.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rusage COMMAND [ARG...]")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "rusage:", err)
		os.Exit(127)
	}
	report := os.Stderr
	if os.Getenv("RUSAGE_FD") == "3" {
		report = os.NewFile(3, "report")
		os.Unsetenv("RUSAGE_FD")
	}
	start := time.Now()
	pid, err := syscall.ForkExec(path, os.Args[1:], &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rusage:", err)
		os.Exit(126)
	}
	var status syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &status, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	wall := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rusage:", err)
		os.Exit(1)
	}
	code := status.ExitStatus()
	if status.Signaled() {
		code = 128 + int(status.Signal())
	}
	fmt.Fprintf(report, "%d %d %d %d\n", wall.Nanoseconds(), ru.Utime.Nano()+ru.Stime.Nano(), ru.Maxrss, code)
	os.Exit(code)
}
