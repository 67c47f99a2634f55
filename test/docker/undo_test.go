package docker_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// trashRunOf runs `trash list --json` on a Docker target and returns its one run.
func trashRunOf(t *testing.T, target string) string {
	t.Helper()
	code, out := runCLI(t, "trash", "list", "--json", target)
	var doc struct {
		Runs []struct{ Run string } `json:"runs"`
	}
	if i := strings.IndexByte(out, '{'); code != 0 || i < 0 || json.Unmarshal([]byte(out[i:]), &doc) != nil || len(doc.Runs) != 1 {
		t.Fatalf("trash list %s: exit %d, want one run:\n%s", target, code, out)
	}
	return doc.Runs[0].Run
}

// Undo on a Docker target: a run with --keep-deleted, then a restore that pauses
// the registry as a cleaning does, and one with --online that does not; what was
// restored pulls whole.
func TestUndoDocker(t *testing.T) {
	cliBinary(t)
	name, id, addr, _ := startBindRegistry(t, "undo")
	f := fill(t, addr)
	for _, c := range []struct {
		repo, ref, digest string
		online            bool
	}{
		{"tools/keep", "tools/keep:1", f.keep, false},
		{"multi", "multi:latest", f.index, true},
	} {
		if code, out := runCLI(t, "--keep-deleted", "7d", "-x", name, c.repo); code != 0 {
			t.Fatalf("clean-registry -x %s: exit %d\n%s", c.repo, code, out)
		}
		addr = addrOf(t, id)
		if code, err := harness.ManifestStatus(t.Context(), addr, c.ref); err != nil || code != 404 {
			t.Fatalf("%s after -x: status %d (%v), want 404", c.ref, code, err)
		}
		run := trashRunOf(t, name)
		args := []string{"restore", name, run, c.ref}
		if c.online {
			args = []string{"restore", "--online", name, run}
		}
		since := time.Now()
		code, out := runCLI(t, args...)
		actions := containerActions(t, id, since, time.Now())
		if code != 0 {
			t.Fatalf("clean-registry %v: exit %d\n%s", args, code, out)
		}
		if paused := contains(actions, "pause") && contains(actions, "unpause"); paused == c.online {
			t.Errorf("clean-registry %v: engine events %v (want a pause: %v)\n%s", args, actions, !c.online, out)
		}
		if st, _ := state(t, id); st != "running" {
			t.Fatalf("after the restore the registry is %s, want running", st)
		}
		addr = addrOf(t, id)
		if err := pull(addr, c.ref, c.digest); err != nil {
			t.Errorf("%s after the restore: %v", c.ref, err)
		}
	}
	f.verifyKept(t, addr)
}
