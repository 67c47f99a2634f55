package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/progress"
)

func TestProgressOnOrOff(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr") // a file: no terminal
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		mode  string
		quiet bool
		w     any
		want  bool
	}{
		{progressAuto, false, f, false}, // not a terminal
		{progressAuto, false, &bytes.Buffer{}, false},
		{progressAlways, false, f, true},
		{progressAlways, false, &bytes.Buffer{}, true},
		{progressNever, false, f, false},
		{progressAlways, true, f, false}, // -q: no output but errors
		{progressAuto, true, f, false},
	} {
		w := c.w.(interface{ Write([]byte) (int, error) })
		if got := progressOn(c.mode, c.quiet, w); got != c.want {
			t.Errorf("progressOn(%s, quiet %v, %T) = %v, want %v", c.mode, c.quiet, c.w, got, c.want)
		}
	}
	for _, m := range []string{"auto", "always", "never"} {
		if err := checkProgressMode(m); err != nil {
			t.Error(err)
		}
	}
}

// The renderer draws every stage, also those that began and ended between two
// refreshes, and leaves each as a line.
func TestProgressDrawsEveryStage(t *testing.T) {
	var w bytes.Buffer
	tr := progress.New()
	_, stop := startProgress(tr, &w, nil)
	tr.Begin("scanning", "entries", -1).Add(1234)
	st := tr.Begin("deleting blobs", "deletions", 10)
	st.SetTotalBytes(2048)
	st.Add(10)
	st.AddBytes(2048)
	st.End()
	stop()
	out := w.String()
	for _, s := range []string{"scanning", "1234", "deleting blobs (2.0 KiB of 2.0 KiB)", "10/10"} {
		if !strings.Contains(out, s) {
			t.Errorf("%q not in %q", s, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("%d lines, want 2: %q", n, out)
	}
}

func TestProgressFlag(t *testing.T) {
	root := sample(t)
	code, stdout, stderr := cli("-n", "--root", root, "--progress=always")
	if code != ExitOK || !strings.Contains(stderr, "scanning") || !strings.Contains(stderr, "reading manifests") {
		t.Fatalf("always: exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stdout, "scanning") {
		t.Fatalf("progress on stdout: %q", stdout)
	}
	code, _, stderr = cli("-n", "--root", root, "--progress=never")
	if code != ExitOK || stderr != "" {
		t.Fatalf("never: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli("-n", "--root", root) // auto, stderr no terminal
	if code != ExitOK || stderr != "" {
		t.Fatalf("auto: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli("-q", "-n", "--root", root, "--progress=always")
	if code != ExitOK || stderr != "" {
		t.Fatalf("-q: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr = cli("--grace", "0", "--root", root, "--progress=always", "--json")
	if code != ExitOK || !strings.Contains(stderr, "deleting") || !strings.HasPrefix(stdout, "{") {
		t.Fatalf("--json: exit %d, stderr %q, stdout %.40q", code, stderr, stdout)
	}
	code, _, stderr = cli("-n", "--root", root, "--progress=bogus")
	if code != ExitUsage || !strings.Contains(stderr, `--progress must be auto, always or never, not "bogus"`) {
		t.Fatalf("bogus: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli("check", "--root", root, "--progress=bogus")
	if code != ExitUsage || !strings.Contains(stderr, `--progress must be auto, always or never, not "bogus"`) {
		t.Fatalf("check bogus: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli("check", "--verify-digests", "--root", root, "--progress=always")
	if (code != ExitOK && code != ExitBroken) || !strings.Contains(stderr, "verifying digests") {
		t.Fatalf("check: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr = cli("du", "--root", root, "--progress=always")
	if code != ExitOK || !strings.Contains(stderr, "scanning") || !strings.Contains(stderr, "reading blob sizes") ||
		!strings.Contains(stdout, "UNIQUE") {
		t.Fatalf("du: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr = cli("du", "--root", root, "--progress=never"); code != ExitOK || stderr != "" {
		t.Fatalf("du --progress=never: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr = cli("du", "--root", root, "--progress=bogus"); code != ExitUsage ||
		!strings.Contains(stderr, `--progress must be auto, always or never, not "bogus"`) {
		t.Fatalf("du bogus: exit %d, stderr %q", code, stderr)
	}
}

// keepDeleted runs a real run on root that keeps what it deletes, and returns its
// trash's run.
func keepDeleted(t *testing.T, root string) string {
	t.Helper()
	code, out, errs := cli("--root", root, "-q", "--grace", "0", "--keep-deleted", "7d", "--json")
	var rep struct {
		Trash *struct{ Run string } `json:"trash"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Trash == nil {
		t.Fatalf("real run: code %d\n%s%s", code, out, errs)
	}
	return rep.Trash.Run
}

// trash purge and restore draw their stages on stderr with --progress=always, their
// own lines staying on stdout; never, -q and auto (stderr no terminal) draw nothing.
func TestTrashProgress(t *testing.T) {
	root := sample(t)
	run := keepDeleted(t, root)
	for _, args := range [][]string{{"--progress=never"}, {"-q", "--progress=always"}, {"-n", "--progress=always"}, nil} {
		code, _, errs := cli(append([]string{"restore", "--root", root, run, "app"}, args...)...)
		if len(args) > 0 && args[0] == "-n" {
			// A dry restore plans and checks, and puts nothing back.
			if code != ExitOK || !strings.Contains(errs, "planning the restore") || strings.Contains(errs, "putting back") {
				t.Fatalf("restore %q: code %d, stderr %q", args, code, errs)
			}
			continue
		}
		if code != ExitOK || errs != "" {
			t.Fatalf("restore %q: code %d, stderr %q", args, code, errs)
		}
		run = keepDeleted(t, root) // it was restored: a new trash
	}
	code, out, errs := cli("restore", "--root", root, run, "--progress=always")
	for _, s := range []string{"planning the restore", "checking what the images need", "putting back", "6/6"} {
		if !strings.Contains(errs, s) {
			t.Errorf("restore: %q not on stderr %q", s, errs)
		}
	}
	if code != ExitOK || strings.Contains(out, "putting back") || !strings.Contains(out, "Restored 6 files") {
		t.Fatalf("restore: code %d, stdout %q", code, out)
	}

	for _, args := range [][]string{{"--progress=never"}, {"-q", "--progress=always"}, nil} {
		root := sample(t)
		keepDeleted(t, root)
		if code, _, errs := cli(append([]string{"trash", "purge", "--root", root}, args...)...); code != ExitOK || errs != "" {
			t.Fatalf("trash purge %q: code %d, stderr %q", args, code, errs)
		}
	}
	keepDeleted(t, root)
	code, out, errs = cli("trash", "purge", "--root", root, "--progress=always")
	if code != ExitOK || !strings.Contains(errs, "purging the trash") || !strings.Contains(errs, "6/6") ||
		!strings.Contains(out, "purged ") || strings.Contains(out, "purging") {
		t.Fatalf("trash purge: code %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, cmd := range [][]string{{"trash", "purge"}, {"restore", run}} {
		code, _, errs := cli(append(cmd, "--root", root, "--progress=bogus")...)
		if code != ExitUsage || !strings.Contains(errs, `--progress must be auto, always or never, not "bogus"`) {
			t.Fatalf("%q bogus: exit %d, stderr %q", cmd, code, errs)
		}
	}
	if code, _, errs := cli("trash", "list", "--root", root, "--progress=always"); code != ExitUsage || !strings.Contains(errs, "unknown flag: --progress") {
		t.Fatalf("trash list --progress: exit %d, stderr %q", code, errs)
	}
}

// An online run draws its settle, verification and purge.
func TestOnlineProgress(t *testing.T) {
	root := sample(t)
	code, _, errs := cli("--root", root, "--grace", "0", "--online", "--settle", "1ms", "--progress=always")
	for _, s := range []string{"settling", "verifying the quarantine: listing", "verifying the quarantine: reading times", "purging the quarantine"} {
		if !strings.Contains(errs, s) {
			t.Errorf("%q not on stderr %q", s, errs)
		}
	}
	if code != ExitOK {
		t.Fatalf("online run: exit %d, stderr %q", code, errs)
	}
}
