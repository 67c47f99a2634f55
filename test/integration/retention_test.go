package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/policy"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// pushedAt sets a tag's push time: the time its current link was last written.
func (e *env) pushedAt(repo, tag string, t time.Time) {
	e.t.Helper()
	p := filepath.Join(e.root, filepath.FromSlash(harness.TagCurrentLinkPath(repo, tag)))
	if err := os.Chtimes(p, t, t); err != nil {
		e.t.Fatalf("setting the push time of %s:%s: %v", repo, tag, err)
	}
}

// Retention against the real registry: the kept tags pull whole, the deleted ones
// and the manifests only they kept answer 404; a multi-arch tag takes its children;
// a tag sharing a digest with a kept tag leaves it pullable; cosign signatures
// follow their subjects.
func TestRetentionKeepLast(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	day := 24 * time.Hour
	// CI repository: build-1 .. build-5, oldest first; build-2 shares its digest with
	// "latest", which keep-tag keeps.
	var builds []string
	for i := 1; i <= 5; i++ {
		builds = append(builds, e.s.PushImage("ci/app:build-"+string(rune('0'+i)), harness.Image(uint64(400+i), 2, harness.OCI)))
	}
	e.s.Tag("ci/app", builds[1], "latest")
	// Multi-arch: an old index and a new one.
	oldIdx := harness.Index(410, 2, 1, harness.OCI)
	oldIdxD := e.s.PushIndex("ci/multi:old", oldIdx)
	newIdx := harness.Index(411, 2, 1, harness.OCI)
	e.s.PushIndex("ci/multi:new", newIdx)
	e.s.PushImage("ci/multi:mid", harness.Image(412, 1, harness.OCI))
	// Cosign signatures of build-1 (deleted) and build-5 (kept).
	sigOld := e.s.PushImage("ci/app:sha256-"+strings.TrimPrefix(builds[0], "sha256:")+".sig", harness.Image(420, 1, harness.OCI))
	e.s.PushImage("ci/app:sha256-"+strings.TrimPrefix(builds[4], "sha256:")+".sig", harness.Image(421, 1, harness.OCI))
	e.reg.StopT(t)
	for i := 1; i <= 5; i++ {
		e.pushedAt("ci/app", "build-"+string(rune('0'+i)), now.Add(-time.Duration(10-i)*day))
	}
	e.pushedAt("ci/app", "latest", now.Add(-9*day))
	e.pushedAt("ci/multi", "old", now.Add(-5*day))
	e.pushedAt("ci/multi", "mid", now.Add(-3*day))
	e.pushedAt("ci/multi", "new", now.Add(-day))

	dry := parseReport(t, mustRun(t, "--root", e.root, "--grace", "0", "-n", "--json", "--keep-last", "2", "--keep-tag", "latest"))
	rep := parseReport(t, mustRun(t, "--root", e.root, "--grace", "0", "--json", "--keep-last", "2", "--keep-tag", "latest"))
	if len(dry.Deletions) != len(rep.Deletions) {
		t.Errorf("dry run planned %d deletions, the real run made %d", len(dry.Deletions), len(rep.Deletions))
	}
	tags := map[string]string{}
	for _, d := range rep.Deletions {
		if d.Kind == "tag" {
			tags[d.Repo+":"+d.Tag] = d.Reason
		}
	}
	sigTag := "ci/app:sha256-" + strings.TrimPrefix(builds[0], "sha256:") + ".sig"
	for _, want := range []string{"ci/app:build-1", "ci/app:build-2", "ci/app:build-3", "ci/multi:old", sigTag} {
		if _, ok := tags[want]; !ok {
			t.Errorf("tag %s not deleted; deleted: %v", want, tags)
		}
	}
	if len(tags) != 5 {
		t.Errorf("deleted tags %v, want exactly 5", tags)
	}
	if why := tags["ci/app:build-1"]; !strings.Contains(why, "command line") || !strings.Contains(why, "pushed") {
		t.Errorf("retention reason %q names neither the rule nor the push time", why)
	}
	e.reg.RestartT(t)
	e.s.PullAll("ci/app:build-4", "ci/app:build-5", "ci/app:latest", "ci/multi:new", "ci/multi:mid",
		"ci/app:sha256-"+strings.TrimPrefix(builds[4], "sha256:")+".sig", "ci/app@"+builds[1])
	e.s.Gone("ci/app:build-1", "ci/app:build-2", "ci/app:build-3", "ci/multi:old",
		"ci/app@"+builds[0], "ci/app@"+builds[2], "ci/multi@"+oldIdxD, "ci/app@"+sigOld)
	for _, child := range harness.ManifestsOf(oldIdx) {
		e.s.Gone("ci/multi@" + child)
	}
	for _, child := range harness.ManifestsOf(newIdx) {
		e.s.PullAll("ci/multi@" + child)
	}
}

// A policy file applies the first matching rule per repository; a repository no
// rule matches keeps every tag.
func TestRetentionPolicyFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	for _, repo := range []string{"team-a/svc", "base/os", "other"} {
		for i := 0; i < 3; i++ {
			e.s.PushImage(repo+":v"+string(rune('0'+i)), harness.Image(uint64(500+len(repo)*10+i), 1, harness.Docker))
		}
	}
	e.reg.StopT(t)
	for _, repo := range []string{"team-a/svc", "base/os", "other"} {
		for i := 0; i < 3; i++ {
			e.pushedAt(repo, "v"+string(rune('0'+i)), now.Add(-time.Duration(40-10*i)*24*time.Hour))
		}
	}
	policy := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(policy, []byte(`rules:
  - repositories: ["team-a/**"]
    keep-last: 1
  - repositories: ["base/*"]
    keep-within: 35d
`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.clean("--grace", "0", "--policy", policy)
	e.s.PullAll("team-a/svc:v2", "base/os:v1", "base/os:v2", "other:v0", "other:v1", "other:v2")
	e.s.Gone("team-a/svc:v0", "team-a/svc:v1", "base/os:v0")
}

// retentionScenario: six builds of "ci" pushed an hour apart (sharing a layer), a
// signature of the oldest, an old multi-arch tag, and a nested repository. keep-last 2
// keeps b4 and b5.
func retentionScenario(t *testing.T, e *env) (keep []string) {
	t.Helper()
	now := time.Now()
	shared := harness.Layer(600, harness.OCI)
	var builds []string
	for i := 0; i < 6; i++ {
		builds = append(builds, e.s.PushImage(fmt.Sprintf("ci:b%d", i),
			harness.ImageWithLayers(uint64(610+i), harness.OCI, shared, harness.Layer(uint64(620+i), harness.OCI))))
	}
	e.s.PushImage("ci:sha256-"+strings.TrimPrefix(builds[0], "sha256:")+".sig", harness.Image(630, 1, harness.OCI))
	e.s.PushIndex("ci:multi-old", harness.Index(631, 2, 1, harness.OCI))
	e.s.PushImage("nested/ci:keep", harness.Image(632, 1, harness.OCI))
	e.reg.StopT(t)
	for i := 0; i < 6; i++ {
		e.pushedAt("ci", fmt.Sprintf("b%d", i), now.Add(-time.Duration(10-i)*time.Hour))
	}
	e.pushedAt("ci", "multi-old", now.Add(-20*time.Hour))
	return []string{"ci:b4", "ci:b5", "nested/ci:keep"}
}

// A retention run crashed at points all through leaves every kept tag pullable,
// and a rerun converges to the state of an uninterrupted run.
func TestRetentionCrashAtEveryPoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := retentionScenario(t, e)
	keepLast := 2
	pol, err := policy.FromFlags(policy.Flags{KeepLast: &keepLast})
	if err != nil {
		t.Fatal(err)
	}
	crashEverywhere(t, e.root, keep, clean.Options{Grace: 0, Jobs: 4, Retention: pol})
}

// The real binary, SIGKILLed during a retention run at several points: every kept
// tag pulls, and a rerun converges.
func TestRetentionKillBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := retentionScenario(t, e)
	killRuns(t, e, keep, []string{"--grace", "0", "-j", "1", "--keep-last", "2"})
}
