// Command clean-registry cleans a Docker/OCI distribution registry's storage.
package main

import (
	"os"

	"github.com/clean-registry/clean-registry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
