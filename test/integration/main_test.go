// Package integration proves clean-registry end to end on the real upstream registry:
// images pushed over HTTP, storage cleaned by the built binary (and in-process where a
// test must interrupt it), the registry restarted, every kept image pulled with all
// digests verified and every deleted manifest answering 404.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// cleanBin is the clean-registry binary built once for the whole package.
var cleanBin string

func TestMain(m *testing.M) {
	if root := os.Getenv(envHoldLock); root != "" {
		holdLock(root) // a lock holder for the lock tests: never returns
	}
	dir, err := os.MkdirTemp("", "clean-registry-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cleanBin = filepath.Join(dir, "clean-registry")
	build := exec.Command("go", "build", "-o", cleanBin, "./cmd/clean-registry")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building clean-registry: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs clean-registry with args and returns its output and exit status.
func run(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command(cleanBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running clean-registry: %v", err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// Exit statuses of a cleaning: done, the storage sound; done, problems found in it.
const (
	exitOK       = 0
	exitProblems = 3
)

// mustRun runs clean-registry and fails the test unless it exits 0: done, and the
// storage sound.
func mustRun(t testing.TB, args ...string) result {
	t.Helper()
	return mustRunCode(t, []int{exitOK}, args...)
}

// mustRunProblems runs clean-registry on a storage with problems and fails the test
// unless it exits 3: done, problems found (and listed).
func mustRunProblems(t testing.TB, args ...string) result {
	t.Helper()
	return mustRunCode(t, []int{exitProblems}, args...)
}

// mustFinish runs clean-registry and fails the test unless the run is done, with or
// without problems in the storage (exit 0 or 3): for a rerun after a crash, whose
// leftovers (a directory whose link was unlinked) may or may not be there.
func mustFinish(t testing.TB, args ...string) result {
	t.Helper()
	return mustRunCode(t, []int{exitOK, exitProblems}, args...)
}

func mustRunCode(t testing.TB, codes []int, args ...string) result {
	t.Helper()
	r := run(t, args...)
	if !slices.Contains(codes, r.code) {
		t.Fatalf("clean-registry %s: want exit %v: %s", strings.Join(args, " "), codes, r)
	}
	return r
}

// env is one test's registry: its storage root, the process serving it, a client.
type env struct {
	t    *testing.T
	root string
	reg  *harness.Registry
	s    *harness.Session
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := filepath.Join(t.TempDir(), "storage")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatalf("making the storage root: %v", err)
	}
	reg := harness.StartFS(t, root)
	return &env{t: t, root: root, reg: reg, s: reg.Session(t)}
}

// clean stops the registry (as the tool's users quiesce theirs), runs clean-registry
// on the root with args, and restarts the registry with an empty blob descriptor
// cache; it fails the test unless the run exits 0.
func (e *env) clean(args ...string) result {
	e.t.Helper()
	return e.cleanCode(exitOK, args...)
}

// cleanProblems is clean on a storage with problems: it fails the test unless the
// run exits 3.
func (e *env) cleanProblems(args ...string) result {
	e.t.Helper()
	return e.cleanCode(exitProblems, args...)
}

func (e *env) cleanCode(code int, args ...string) result {
	e.t.Helper()
	e.reg.StopT(e.t)
	r := mustRunCode(e.t, []int{code}, append([]string{"--root", e.root}, args...)...)
	e.reg.RestartT(e.t)
	return r
}

// report is the part of the --json report the tests read.
type report struct {
	Completed bool `json:"completed"`
	Deletions []struct {
		Kind   string `json:"kind"`
		Path   string `json:"path"`
		Repo   string `json:"repository"`
		Tag    string `json:"tag"`
		Digest string `json:"digest"`
		Bytes  int64  `json:"bytes"`
		Reason string `json:"reason"`
	} `json:"deletions"`
	Problems []struct {
		Kind string `json:"kind"`
		Path string `json:"path"`
	} `json:"problems"`
	Failures []string `json:"failures"`
	Kept     struct {
		Blobs        int   `json:"blobs"`
		Bytes        int64 `json:"bytes"`
		UnknownSizes int   `json:"unknown_sizes"`
	} `json:"kept"`
}

func parseReport(t testing.TB, r result) report {
	t.Helper()
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("the --json report does not parse: %v\n%s", err, r)
	}
	return rep
}

// deleted lists the report's deletions of kind as "repo@digest" (or the digest alone
// for blobs).
func (rep report) deleted(kind string) map[string]bool {
	out := map[string]bool{}
	for _, d := range rep.Deletions {
		if d.Kind != kind {
			continue
		}
		if d.Repo != "" {
			out[d.Repo+"@"+d.Digest] = true
		} else {
			out[d.Digest] = true
		}
	}
	return out
}

// exists reports whether rel exists below the env's root.
func (e *env) exists(rel string) bool {
	_, err := os.Lstat(filepath.Join(e.root, filepath.FromSlash(rel)))
	return err == nil
}

// blobsPresent fails the test unless every digest's blob data is in storage.
func (e *env) blobsPresent(digests ...string) {
	e.t.Helper()
	for _, d := range digests {
		if !e.exists(harness.BlobDataPath(d)) {
			e.t.Errorf("blob %s was deleted; it must be kept", d)
		}
	}
}

// blobsGone fails the test unless no digest's blob directory is left in storage.
func (e *env) blobsGone(digests ...string) {
	e.t.Helper()
	for _, d := range digests {
		if e.exists(filepath.Dir(harness.BlobDataPath(d))) {
			e.t.Errorf("blob %s is still there; it should have been deleted", d)
		}
	}
}

// tree lists the storage.
func (e *env) tree() harness.Tree {
	e.t.Helper()
	tr, err := harness.ListTree(e.root)
	if err != nil {
		e.t.Fatalf("listing the storage: %v", err)
	}
	return tr
}
