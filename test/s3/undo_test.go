package s3

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/cli"
	"github.com/clean-registry/clean-registry/v2/test/harness"
	"github.com/clean-registry/clean-registry/v2/test/s3/s3test"
)

// trashCommand runs a trash command (trash list, trash purge, restore) on the
// storage config names, with --json, and returns its document; it fails the test
// unless the exit status is code.
func trashCommand(t *testing.T, config string, code int, args ...string) map[string]any {
	t.Helper()
	var stdout, stderr bytes.Buffer
	got := cli.Main(append(args, "--config", config, "--json", "-j", "8"), &stdout, &stderr)
	if got != code {
		t.Fatalf("clean-registry %s: exit %d, want %d: %s\n%s", strings.Join(args, " "), got, code, stderr.String(), stdout.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("clean-registry %s: the JSON document does not parse: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return doc
}

// The trash on S3: -x of a repository and of a tag with --keep-deleted move into
// the bucket's trash (server-side copies); one tag comes back, then the whole run;
// everything restored pulls with its digests verified after a restart of the
// registry; what was not restored stays gone; trash purge empties the trash.
func TestUndoOnS3(t *testing.T) {
	srv := server.Get(t)
	bucket := newBucket(t, srv)
	reg := harness.StartT(t, harness.Config{Storage: map[string]any{"s3": srv.DriverParams(bucket, "/registry")}})
	s := reg.Session(t)
	want := map[string]string{}
	for i, ref := range []string{"app:1", "app:2", "team/x:v1", "team/x:v2", "other:1"} {
		want[ref] = s.PushImage(ref, harness.Image(uint64(5000+i), 2, harness.OCI))
	}
	want["multi:1"] = s.PushIndex("multi:1", harness.Index(5010, 2, 1, harness.OCI))
	config := reg.ConfigPath()
	pullAll := func(refs ...string) {
		t.Helper()
		s := reg.Session(t)
		for _, ref := range refs {
			if p := s.Pull(ref); p.Digest != want[ref] {
				t.Errorf("%s resolves to %s, want %s", ref, p.Digest, want[ref])
			}
		}
	}

	reg.StopT(t)
	rep := cleanWithConfigArgs(t, config, []string{"-x", "team/x", "app:2", "multi:1", "--keep-deleted", "7d"})
	if rep.Trash == nil || rep.KeepDeleted != "7d" {
		t.Fatalf("the report says no trash: %+v", rep.Trash)
	}
	t.Logf("requests of the run moving into the trash: %v", rep.Requests)
	reg.RestartT(t)
	reg.Session(t).Gone("team/x:v1", "team/x:v2", "app:2", "multi:1")
	pullAll("app:1", "other:1")

	doc := trashCommand(t, config, 0, "trash", "list")
	runs, _ := doc["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("trash list: %v", doc)
	}
	r := runs[0].(map[string]any)
	if r["run"] != rep.Trash.Run || r["state"] != "trash" || r["tags"].(float64) != 4 || r["bytes"].(float64) <= 0 {
		t.Errorf("trash list says %v", r)
	}
	keys := strings.Join(listKeys(t, srv, bucket), "\n")
	if !strings.Contains(keys, "registry/clean-registry/quarantine/"+rep.Trash.Run+"/docker/registry/v2/repositories/team/x/") {
		t.Errorf("the trash does not hold team/x:\n%s", keys)
	}
	run := rep.Trash.Run

	// Part: one tag of the removed repository, and the index with its children.
	reg.StopT(t)
	doc = trashCommand(t, config, 0, "restore", "-n", run, "team/x:v1")
	if n := len(doc["restored"].([]any)); n == 0 || listKeysEqual(t, srv, bucket, keys) != "" {
		t.Errorf("restore -n: %d items, and the bucket changed: %s", n, listKeysEqual(t, srv, bucket, keys))
	}
	trashCommand(t, config, 0, "restore", run, "team/x:v1", "multi:1")
	reg.RestartT(t)
	pullAll("team/x:v1", "multi:1", "app:1", "other:1")
	reg.Session(t).Gone("team/x:v2", "app:2")

	// Again: nothing changes.
	reg.StopT(t)
	keys = strings.Join(listKeys(t, srv, bucket), "\n")
	doc = trashCommand(t, config, 0, "restore", run, "team/x:v1")
	if doc["restored"] != nil || listKeysEqual(t, srv, bucket, keys) != "" {
		t.Errorf("a second restore restored %v; bucket changes: %s", doc["restored"], listKeysEqual(t, srv, bucket, keys))
	}

	// The whole run.
	trashCommand(t, config, 0, "restore", run)
	reg.RestartT(t)
	pullAll("team/x:v1", "team/x:v2", "app:1", "app:2", "other:1", "multi:1")
	if doc := trashCommand(t, config, 0, "trash", "list"); len(doc["runs"].([]any)) != 0 {
		t.Errorf("the trash is not empty after the whole run came back: %v", doc)
	}

	// Expiry by trash purge: what it purges cannot come back.
	reg.StopT(t)
	rep = cleanWithConfigArgs(t, config, []string{"-x", "other", "--keep-deleted", "1h"})
	trashCommand(t, config, 0, "trash", "purge", "--older-than", "1d")
	if doc := trashCommand(t, config, 0, "trash", "list"); len(doc["runs"].([]any)) != 1 {
		t.Errorf("trash purge --older-than 1d purged a run of now: %v", doc)
	}
	trashCommand(t, config, 0, "trash", "purge", rep.Trash.Run)
	trashCommand(t, config, 1, "restore", rep.Trash.Run)
	for _, k := range listKeys(t, srv, bucket) {
		if strings.HasPrefix(k, "registry/clean-registry/") {
			t.Errorf("left in the bucket after trash purge: %s", k)
		}
	}
	reg.RestartT(t)
	reg.Session(t).Gone("other:1")
	pullAll("team/x:v1", "team/x:v2", "app:1", "app:2", "multi:1")
}

// listKeysEqual says how the bucket's keys differ from keys ("" when not).
func listKeysEqual(t *testing.T, srv *s3test.Server, bucket, keys string) string {
	t.Helper()
	now := strings.Join(listKeys(t, srv, bucket), "\n")
	if now == keys {
		return ""
	}
	a, b := harness.Diff(strings.Split(keys, "\n"), strings.Split(now, "\n"))
	var out []string
	for _, k := range a {
		if !strings.HasSuffix(k, "clean-registry/lock") {
			out = append(out, "gone "+k)
		}
	}
	for _, k := range b {
		if !strings.HasSuffix(k, "clean-registry/lock") {
			out = append(out, "new "+k)
		}
	}
	return strings.Join(out, ", ")
}
