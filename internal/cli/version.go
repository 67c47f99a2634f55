package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

const versionUsageHead = `Usage: %[1]s version [--json]

Prints the version, as --version does. With --json, one JSON document: the
version, and what the binary says of its build (the module version "go install"
recorded, the commit, the Go version and the platform).

Options:
`

const versionUsageTail = `
Exit status: 0 done; 2 a bad command line.
`

// versionDoc is "version --json".
type versionDoc struct {
	Program string `json:"program"`
	Version string `json:"version"`
	// Module is the module version the Go tool recorded: v1.2.3 or a pseudo-version
	// for "go install ...@VERSION", "(devel)" or a VCS-stamped one for a local build.
	Module   string `json:"module,omitempty"`
	Revision string `json:"vcs_revision,omitempty"`
	Time     string `json:"vcs_time,omitempty"`
	Modified bool   `json:"vcs_modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// versionUsage is version's --help, its options generated from its flags.
func versionUsage(prog string) string {
	var help, asJSON bool
	return fmt.Sprintf(versionUsageHead, prog) + flagHelp(versionFlags(prog, &help, &asJSON)) + versionUsageTail
}

// versionFlags defines version's flags, with their help, on help and asJSON.
func versionFlags(prog string, help, asJSON *bool) *pflag.FlagSet {
	flags := pflag.NewFlagSet(prog+" version", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	flags.BoolVar(asJSON, "json", false, "Print one JSON document on stdout instead of text.")
	flags.BoolVarP(help, "help", "h", false, "Show this help and exit.")
	return flags
}

// runVersion is "clean-registry version": the --version line, or its JSON document.
func runVersion(prog string, args []string, stdout, stderr io.Writer) int {
	var help, asJSON bool
	flags := versionFlags(prog, &help, &asJSON)
	err := flags.Parse(args)
	if err == nil && flags.NArg() > 0 {
		err = fmt.Errorf("version takes no arguments, not %q", flags.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(stderr, "ERROR: version: "+err.Error())
		fmt.Fprint(stderr, versionUsage(prog))
		return ExitUsage
	}
	switch {
	case help:
		fmt.Fprint(stdout, versionUsage(prog))
	case asJSON:
		if !writeDoc(versionInfo(prog), stdout, stderr) {
			return ExitError
		}
	default:
		fmt.Fprintf(stdout, "%s %s\n", prog, version())
	}
	return ExitOK
}

// version is the version the binary says: Version when the build set it, else the
// module version the Go tool recorded for "go install ...@vX.Y.Z" (X.Y.Z), else
// devVersion (a local build, go test).
func version() string {
	if Version != devVersion {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v, ok := releaseVersion(bi.Main.Version); ok {
			return v
		}
	}
	return Version
}

// releaseVersion turns a module version into the tool's: v2.1.0 -> 2.1.0. Local
// builds ("(devel)", "") and pseudo-versions (v2.0.1-0.20261202031500-abcdef123456,
// possibly +dirty) are not releases.
func releaseVersion(mod string) (string, bool) {
	if !semver.IsValid(mod) || module.IsPseudoVersion(mod) || strings.Contains(mod, "+") {
		return "", false
	}
	return strings.TrimPrefix(mod, "v"), true
}

// versionInfo is the version and what the binary's build information holds.
func versionInfo(prog string) versionDoc {
	doc := versionDoc{Program: prog, Version: version(), Go: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return doc
	}
	doc.Module = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			doc.Revision = s.Value
		case "vcs.time":
			doc.Time = s.Value
		case "vcs.modified":
			doc.Modified = s.Value == "true"
		}
	}
	return doc
}
