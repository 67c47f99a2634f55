package docker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// Retention through a Docker target: the registry is quiesced as for any run, the
// two most recently pushed tags stay and pull whole, the others answer 404; a policy
// file works the same way.
func TestCLIRetention(t *testing.T) {
	cliBinary(t)
	name, id, addr, dir := startBindRegistry(t, "retention")
	s := harness.NewSession(t, addr)
	seed := newSeed()
	var builds []string
	for i := 0; i < 4; i++ {
		builds = append(builds, s.PushImage(fmt.Sprintf("ci:b%d", i), harness.Image(harness.Derive(seed, "build", i), 2, harness.Docker)))
	}
	now := time.Now()
	for i := 0; i < 4; i++ {
		p := filepath.Join(dir, filepath.FromSlash(harness.TagCurrentLinkPath("ci", fmt.Sprintf("b%d", i))))
		at := now.Add(-time.Duration(10-i) * 24 * time.Hour)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatalf("setting the push time of ci:b%d: %v", i, err)
		}
	}
	code, dry := runCLI(t, "-n", "--keep-last", "2", name)
	if code != 0 || !strings.Contains(dry, "would remove") || !strings.Contains(dry, "tag ci:b0") {
		t.Fatalf("dry run: exit %d, want the tags to delete listed\n%s", code, dry)
	}
	code, out := runCLI(t, "--keep-last", "2", name)
	if code != 0 {
		t.Fatalf("retention run: exit %d\n%s", code, out)
	}
	if st, _ := state(t, id); st != "running" {
		t.Fatalf("after the run the registry is %s, want running", st)
	}
	addr = addrOf(t, id)
	s = harness.NewSession(t, addr)
	s.PullAll("ci:b2", "ci:b3")
	s.Gone("ci:b0", "ci:b1", "ci@"+builds[0], "ci@"+builds[1])

	policy := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [ci]\n    keep-last: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "--policy", policy, name); code != 0 {
		t.Fatalf("retention run with a policy file: exit %d\n%s", code, out)
	}
	s = harness.NewSession(t, addrOf(t, id))
	s.PullAll("ci:b3")
	s.Gone("ci:b2")
}
