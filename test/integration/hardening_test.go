package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// A repository directory whose name is not UTF-8 hides what it links: the run must
// report it and delete no blob, so that the image behind it is whole once the
// directory gets its name back.
func TestNonUTF8DirectoryHidesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hidden := harness.Image(300, 2, harness.OCI)
	e.s.PushImage("team0/good:1", hidden)
	e.s.PushImage("other:1", harness.Image(301, 1, harness.OCI))
	overwritten := harness.Image(302, 1, harness.OCI)
	e.s.PushImage("other:1", overwritten) // the first image of "other" is now untagged
	e.reg.StopT(t)
	good := filepath.Join(e.root, filepath.FromSlash(harness.RepoPath("team0/good")))
	bad := filepath.Join(filepath.Dir(good), "bad\xff")
	if err := os.Rename(good, bad); err != nil {
		t.Fatalf("renaming the repository to a non-UTF-8 name: %v", err)
	}
	r := mustRunProblems(t, "--root", e.root, "--grace", "0", "--json")
	rep := parseReport(t, r)
	found := false
	for _, p := range rep.Problems {
		if p.Kind == "bad-name" && strings.Contains(p.Path, `bad\xff`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no bad-name problem with the escaped name in %+v", rep.Problems)
	}
	if n := len(rep.deleted("blob")); n != 0 {
		t.Errorf("%d blobs deleted while a directory hid content from the scan; want none", n)
	}
	e.blobsPresent(harness.BlobsOf(hidden)...)
	if err := os.Rename(bad, good); err != nil {
		t.Fatalf("renaming the repository back: %v", err)
	}
	e.reg.RestartT(t)
	e.s.PullAll("team0/good:1", "other:1")
}

// A stray symbolic link in a repository's _layers cannot hide a manifest reference:
// it is reported, and the overwritten image beside it is still purged with its
// blobs.
func TestSymlinkInLayersIsIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := harness.Image(310, 2, harness.Docker)
	oldD := e.s.PushImage("app:1", old)
	e.s.PushImage("app:1", harness.Image(311, 2, harness.Docker))
	e.reg.StopT(t)
	stray := filepath.Join(e.root, filepath.FromSlash(harness.RepoPath("app")), "_layers", "sha256", strings.Repeat("ab", 32))
	if err := os.Symlink(t.TempDir(), stray); err != nil {
		t.Fatalf("placing the stray symlink: %v", err)
	}
	r := mustRunProblems(t, "--root", e.root, "--grace", "0", "--json")
	rep := parseReport(t, r)
	if !rep.deleted("revision")["app@"+oldD] {
		t.Errorf("the overwritten manifest %s was kept; the symlink in _layers must not keep the repository whole", oldD)
	}
	e.blobsGone(harness.BlobsOf(old)...)
	if _, err := os.Lstat(stray); err != nil {
		t.Errorf("the stray symlink itself must be left alone: %v", err)
	}
	e.reg.RestartT(t)
	e.s.PullAll("app:1")
	e.s.Gone("app@" + oldD)
}

// A huge (sparse) manifest blob is not read: the run's peak memory stays far below
// its size, the blob is reported as a bad manifest and its repository kept whole.
func TestOversizedManifestIsNotRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.s.PushImage("big:1", harness.Image(320, 1, harness.OCI))
	e.s.PushImage("big:1", harness.Image(321, 1, harness.OCI)) // the first is untagged: kept all the same
	e.reg.StopT(t)
	// A blob of 512 MiB whose path names a digest it does not have: the registry's
	// layout is all the scan goes by. It is linked as a revision and tagged.
	digest := harness.Sha256([]byte("a manifest too big to be one"))
	data := filepath.Join(e.root, filepath.FromSlash(harness.BlobDataPath(digest)))
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		t.Fatalf("making the oversized blob's directory: %v", err)
	}
	f, err := os.Create(data)
	if err != nil {
		t.Fatalf("creating the oversized blob: %v", err)
	}
	if err := f.Truncate(512 << 20); err != nil {
		t.Fatalf("making a sparse 512 MiB blob: %v", err)
	}
	f.Close()
	if err := harness.LinkManifest(e.root, "big", digest, "huge"); err != nil {
		t.Fatalf("linking the oversized blob as big:huge: %v", err)
	}
	cmd := exec.Command(cleanBin, "--root", e.root, "--grace", "0", "--json", "-n")
	out, err := cmd.Output()
	if code := cmd.ProcessState.ExitCode(); code != exitProblems {
		t.Fatalf("dry run: %v, want exit %d (the bad manifest is a problem)\n%s", err, exitProblems, out)
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	if peak > 200<<20 {
		t.Errorf("peak RSS %d MiB with a 512 MiB manifest blob; want under 200 MiB", peak>>20)
	}
	var rep report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	bad := false
	for _, p := range rep.Problems {
		if p.Kind == "bad-manifest" && strings.Contains(p.Path, strings.TrimPrefix(digest, "sha256:")) {
			bad = true
		}
	}
	if !bad {
		t.Errorf("the oversized manifest is not reported as a bad manifest: %+v", rep.Problems)
	}
	if n := len(rep.Deletions); n != 0 {
		t.Errorf("%d deletions planned in a repository holding a manifest it cannot read: %+v", n, rep.Deletions)
	}
	t.Logf("peak RSS %d MiB", peak>>20)
}
