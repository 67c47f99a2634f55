package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bounded inputs: out-of-range values and empty paths are usage errors (2), each
// with its own message.
func TestBoundedInputs(t *testing.T) {
	root := sample(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--root", root, "-j", "0"}, "--jobs must be within 1..1024, not 0"},
		{[]string{"--root", root, "-j", "1025"}, "--jobs must be within 1..1024, not 1025"},
		{[]string{"--root", root, "-j", "100000000"}, "--jobs must be within"},
		{[]string{"--root", ""}, "--root needs a path"},
		{[]string{"--root=", "app"}, "--root needs a path"},
		{[]string{"--config", " "}, "--config needs a path"},
		{[]string{"--root", root, "--grace", "-1s"}, `"--grace" flag: negative duration`},
		{[]string{"--root", root, "--upload-age", "-1h"}, `"--upload-age" flag: negative duration`},
		{[]string{"--root", root, "--wait", "-1s"}, `"--wait" flag: negative duration`},
		{[]string{"--root", root, "--config", "c.yml"}, "exclude each other"},
		{[]string{"--root", root, "--grace", "3x"}, `"--grace" flag`},
		{[]string{"--root", root, "--keep-last", "-1"}, "--keep-last: negative count"},
		{[]string{"--root", root, "--keep-within", "-1d"}, `"--keep-within" flag: negative duration`},
		{[]string{"--root", root, "--keep-tag", "("}, "--keep-tag"},
		{[]string{"--root", root, "--tags", "v.*"}, "--tags: needs"},
		{[]string{"--root", root, "--keep-last", "1", "-x", "app"}, "-x cannot be combined with keep rules"},
		{[]string{"--root", root, "--keep-last", "1", "app:v1"}, "not REPOSITORY:TAG"},
		{[]string{"--root", root, "--keep-last", "1", "--policy", "p.yml"}, "--policy cannot be combined"},
		{[]string{"--root", root, "--policy", ""}, "--policy needs a path"},
	}
	for _, tt := range tests {
		code, _, stderr := cli(tt.args...)
		if code != ExitUsage || !strings.Contains(stderr, tt.want) {
			first, _, _ := strings.Cut(stderr, "\n")
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tt.args, code, first, tt.want)
		}
	}
	if code, _, stderr := cli("--root", root, "-j", "1024", "-n", "-q"); code != ExitOK {
		t.Errorf("-j 1024: exit %d, %s", code, stderr)
	}
}

// With --json, stdout holds exactly one JSON document whatever the stage the run
// stops at, with completed false, the error and the stage.
func TestJSONOnEveryEarlyStop(t *testing.T) {
	notRegistry := t.TempDir()
	badConfig := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(badConfig, []byte("version: 0.1\nstorage: {nosuchdriver: {}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbledConfig := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(garbledConfig, []byte(":::: not yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		code  int
		stage string
	}{
		{"unknown flag", []string{"--json", "--nosuch"}, ExitUsage, "command line"},
		{"bad jobs", []string{"--json", "--root", notRegistry, "-j", "0"}, ExitUsage, "command line"},
		{"empty root", []string{"--json", "--root", ""}, ExitUsage, "command line"},
		{"bad name", []string{"--json", "--root", notRegistry, "UPPER"}, ExitError, "command line"},
		{"no target", []string{"--json"}, ExitError, "command line"},
		{"missing root", []string{"--json", "--root", filepath.Join(notRegistry, "nosuch")}, ExitError, "target"},
		{"missing config", []string{"--json", "--config", filepath.Join(notRegistry, "nosuch.yml")}, ExitError, "target"},
		{"unsupported driver", []string{"--json", "--config", badConfig}, ExitError, "target"},
		{"garbled config", []string{"--json", "--config", garbledConfig}, ExitError, "target"},
		{"not a registry", []string{"--json", "--root", notRegistry}, ExitError, "scan"},
		{"not a registry, dry run", []string{"--json", "-n", "--root", notRegistry}, ExitError, "scan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			dec := json.NewDecoder(strings.NewReader(stdout))
			var doc struct {
				Completed *bool  `json:"completed"`
				Error     string `json:"error"`
				Stage     string `json:"stage"`
			}
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("stdout is no JSON document: %v\n%s", err, stdout)
			}
			if dec.More() {
				t.Errorf("stdout holds more than one JSON document:\n%s", stdout)
			}
			if doc.Completed == nil || *doc.Completed || doc.Error == "" || doc.Stage != tt.stage {
				t.Errorf("completed %v, error %q, stage %q; want completed false, an error, stage %q", doc.Completed, doc.Error, doc.Stage, tt.stage)
			}
			if !strings.Contains(stderr, "ERROR: ") {
				t.Errorf("stderr %q has no ERROR line", stderr)
			}
		})
	}
}

// A bad policy file is a usage error naming file, line and key, found before any
// storage is opened (here: one that does not exist).
func TestBadPolicyFileBeforeStorage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(file, []byte("rules:\n  - repositories: [\"**\"]\n    keep-within: 3x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli("--root", filepath.Join(t.TempDir(), "nosuch"), "--policy", file)
	first, _, _ := strings.Cut(stderr, "\n")
	if code != ExitUsage || !strings.Contains(first, file+":3: keep-within") {
		t.Errorf("exit %d, %q; want exit 2 naming %s:3: keep-within", code, first, file)
	}
}

// --help and --version with --json print only what was asked for.
func TestJSONHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--json", "--help"}, {"--json", "-V"}} {
		code, stdout, _ := cli(args...)
		if code != ExitOK || strings.Contains(stdout, `"dry_run"`) {
			t.Errorf("%q: exit %d, stdout %q: want exit 0 and no report", args, code, stdout)
		}
	}
}
