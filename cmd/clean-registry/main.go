// Command clean-registry cleans a Docker/OCI distribution registry's storage.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/clean-registry/clean-registry/v2/internal/cli"
)

func main() {
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
