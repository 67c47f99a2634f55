// Command clean-registry cleans a Docker/OCI distribution registry's storage.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/clean-registry/clean-registry/internal/cli"
)

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		// The work is I/O-bound and the live heap small (about 40 MB for 130k files):
		// collecting at 30% growth instead of 100% keeps the peak near it, for a little
		// CPU the disks leave idle anyway.
		debug.SetGCPercent(30)
	}
	// CLEAN_REGISTRY_CPUPROFILE=FILE writes a pprof CPU profile of the run: how the
	// benchmark's figures are explained (docs/benchmarks.md).
	if file := os.Getenv("CLEAN_REGISTRY_CPUPROFILE"); file != "" {
		f, err := os.Create(file)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "clean-registry: CPU profile:", err)
			os.Exit(2)
		}
		code := cli.Main(os.Args[1:], os.Stdout, os.Stderr)
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(code)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
