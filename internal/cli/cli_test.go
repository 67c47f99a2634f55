package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
)

// sample writes a registry root with repository "app": tag v1 on one image, and an
// untagged image whose blobs nothing else references.
func sample(t *testing.T) string {
	t.Helper()
	tr := layouttest.New(t)
	v1 := tr.Image("app", "one")
	tr.Image("app", "two")
	tr.Tag("app", "v1", v1)
	tr.Link(layout.TagCurrentLink("app", "v2"), v1)
	return tr.Root
}

func cli(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSeedCommandLine(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"-h"}, ExitOK, "Usage:", ""},
		{[]string{"--help"}, ExitOK, "-x, --remove", ""},
		{[]string{"-V"}, ExitOK, Version, ""},
		{nil, ExitError, "Usage:", ""},
		{[]string{"--bogus"}, ExitUsage, "", "unknown flag"},
		{[]string{"registry", "Bad/Name"}, ExitError, "", "ERROR: Invalid Docker repository/tag: Bad/Name"},
		{[]string{"registry", "a/../b"}, ExitError, "", "ERROR: Invalid Docker repository/tag: a/../b"},
		{[]string{"registry", "a:-tag"}, ExitError, "", "ERROR: Invalid Docker repository/tag: a:-tag"},
		{[]string{"-x", "registry"}, ExitError, "", "ERROR: The -x option requires"},
		{[]string{"--root", "/x", "--config", "/y"}, ExitUsage, "", "exclude each other"},
		{[]string{"--root", "/nonexistent/registry"}, ExitError, "", "ERROR: "},
		{[]string{"--root", os.TempDir(), "-j", "0"}, ExitUsage, "", "--jobs"},
		{[]string{"--root", os.TempDir(), "--stop"}, ExitUsage, "", "ERROR: --stop is for Docker targets, not with --root"},
		{[]string{"--config", "/x.yml", "--no-restart"}, ExitUsage, "", "ERROR: --no-restart is for Docker targets, not with --config"},
		{[]string{"-v", "--root", os.TempDir()}, ExitUsage, "", "ERROR: --volume is for Docker targets, not with --root"},
	}
	for _, tt := range tests {
		code, out, errs := cli(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
			t.Errorf("%q: code %d, stdout %.80q, stderr %.200q; want %d, %q, %q", tt.args, code, out, errs, tt.code, tt.out, tt.err)
		}
	}
}

func TestNotARegistry(t *testing.T) {
	code, _, errs := cli("--root", t.TempDir())
	if code != ExitError || !strings.Contains(errs, "not a registry") {
		t.Fatalf("code %d, stderr %q", code, errs)
	}
}

func files(t *testing.T, root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestDryRunPrintsWhatTheRunDoes(t *testing.T) {
	root := sample(t)
	before := files(t, root)
	code, dry, _ := cli("--root", root, "-n", "--grace", "0")
	if code != ExitOK || len(files(t, root)) != len(before) {
		t.Fatalf("dry run: code %d, or it changed files", code)
	}
	code, real, _ := cli("--root", root, "--grace", "0")
	if code != ExitOK {
		t.Fatalf("real run: code %d", code)
	}
	lines := func(s, verb string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if rest, ok := strings.CutPrefix(l, verb+" directory "); ok {
				out = append(out, rest)
			}
		}
		return out
	}
	d, r := lines(dry, "would remove"), lines(real, "removed")
	if len(d) == 0 || strings.Join(d, "\n") != strings.Join(r, "\n") {
		t.Fatalf("dry run and real run differ:\n%s\n---\n%s", dry, real)
	}
	if got := len(before) - len(files(t, root)); got != 6 {
		t.Fatalf("deleted %d files, want 6: a revision link, 2 layer links, 3 blobs", got)
	}
	code, again, _ := cli("--root", root, "--grace", "0")
	if code != ExitOK || len(lines(again, "removed")) != 0 || strings.Count(again, "\n") != 1 || !strings.HasPrefix(again, "Nothing to delete in ") {
		t.Fatalf("a rerun must find nothing to do, and say so in one line:\n%s", again)
	}
}

func TestGraceKeepsFreshObjects(t *testing.T) {
	root := sample(t)
	before := len(files(t, root))
	if code, _, _ := cli("--root", root, "-q"); code != ExitOK {
		t.Fatal(code)
	}
	if len(files(t, root)) != before {
		t.Fatal("the default grace must keep what was just written")
	}
}

func TestRemoveAndFailures(t *testing.T) {
	root := sample(t)
	// -x of one tag of two on the same digest: only that tag goes.
	if code, _, errs := cli("--root", root, "-q", "--grace", "0", "-x", "app:v2"); code != ExitOK {
		t.Fatalf("code %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(layout.TagCurrentLink("app", "v1")))); err != nil {
		t.Fatal("removing app:v2 removed app:v1")
	}
	// Unknown names fail with the seed's messages; the run goes on, exit 1.
	code, out, errs := cli("--root", root, "--json", "--grace", "0", "-x", "nope", "app:nope")
	if code != ExitError || !strings.Contains(errs, "ERROR: No such repository: nope") ||
		!strings.Contains(errs, "ERROR: No such tag: nope in repository app") {
		t.Fatalf("code %d, stderr %q", code, errs)
	}
	var rep struct {
		Failures  []string `json:"failures"`
		Completed bool     `json:"completed"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Failures) != 2 || !rep.Completed {
		t.Fatalf("JSON report %v: %s", err, out)
	}
	// -x of the last tag removes the repository.
	if code, _, errs := cli("--root", root, "-q", "--grace", "0", "-x", "app:v1"); code != ExitOK {
		t.Fatalf("code %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(layout.RepoDir("app")))); !os.IsNotExist(err) {
		t.Fatalf("repository still there: %v", err)
	}
	if n := len(files(t, root)); n != 0 {
		t.Fatalf("%d files left after removing the only repository", n)
	}
}

// TestCrashLeftovers: what a crash between two deletions leaves is cleaned by a rerun.
func TestCrashLeftovers(t *testing.T) {
	root := sample(t)
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var d layout.Digest
	d[0] = 7
	// A revision directory whose link was unlinked, and a repository skeleton whose
	// contents were all deleted.
	mkdir(layout.RevisionDir("app", d))
	mkdir(layout.RepoDir("ghost") + "/_manifests/revisions/sha256")
	mkdir(layout.RepoDir("ghost") + "/_layers/sha256")
	mkdir(layout.RepoDir("team/left"))
	// The revision without link is a problem found in the storage: the run exits 3,
	// a dry run too, and a rerun finds the storage sound. A failure wins: 1.
	if code, out, errs := cli("--root", root, "-n", "--grace", "0", "nope"); code != ExitError {
		t.Fatalf("no such repository, and problems: code %d, want %d: %s %s", code, ExitError, out, errs)
	}
	if code, out, errs := cli("--root", root, "-n", "--grace", "0"); code != ExitProblems {
		t.Fatalf("dry run: code %d, want %d: %s %s", code, ExitProblems, out, errs)
	}
	if code, out, errs := cli("--root", root, "--grace", "0"); code != ExitProblems || !strings.Contains(out, "Problems found in the storage (2)") {
		t.Fatalf("code %d, want %d: %s %s", code, ExitProblems, out, errs)
	}
	if code, out, errs := cli("--root", root, "--grace", "0"); code != ExitOK {
		t.Fatalf("rerun: code %d: %s %s", code, out, errs)
	}
	for _, p := range []string{layout.RevisionDir("app", d), layout.RepoDir("ghost"), layout.RepoDir("team")} {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); !os.IsNotExist(err) {
			t.Errorf("%s survived: %v", p, err)
		}
	}
}

// "clean" introduces the seed's form, so that a container named like a subcommand
// can still be cleaned: clean-registry clean du.
func TestCleanSubcommand(t *testing.T) {
	root := sample(t)
	if code, _, errs := cli("clean", "--root", root, "-q", "--grace", "0", "-x", "app:v2"); code != ExitOK {
		t.Fatalf("code %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(layout.TagCurrentLink("app", "v2")))); !os.IsNotExist(err) {
		t.Fatalf("clean --root ... -x app:v2 left the tag: %v", err)
	}
	if code, _, _ := cli("clean"); code == ExitOK {
		t.Fatal("clean with no target: exit 0")
	}
}
