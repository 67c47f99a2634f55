// Command clean-registry cleans a Docker/OCI distribution registry's storage.
package main

import (
	"os"
	"runtime/debug"

	"github.com/clean-registry/clean-registry/internal/cli"
)

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		// The work is I/O-bound and the live heap small (about 40 MB for 130k files):
		// collecting at 30% growth instead of 100% keeps the peak near it, for a little
		// CPU the disks leave idle anyway.
		debug.SetGCPercent(30)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
