package cli

import (
	"bytes"
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
