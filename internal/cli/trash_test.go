package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/online"
)

func TestParseTrash(t *testing.T) {
	const run = "20261201T183629Z-1a2b3c4d"
	tests := []struct {
		args []string
		// want is checked when code is 0 and the command did not end in parsing.
		want trashCmd
		code int
		err  string
		done bool
	}{
		{args: []string{"trash", "list", "--root", "/r"}, want: trashCmd{name: "list"}},
		{args: []string{"trash", "list", "registry", "--json"}, want: trashCmd{name: "list", target: "registry"}},
		{args: []string{"trash", "purge", "--root", "/r", "--older-than", "2w"},
			want: trashCmd{name: "purge", olderThan: 14 * 24 * time.Hour, olderSet: true}},
		{args: []string{"trash", "purge", "--config", "/c.yml", run, "-n"}, want: trashCmd{name: "purge", runs: []string{run}}},
		{args: []string{"restore", "--root", "/r", run}, want: trashCmd{name: "restore", runs: []string{run}}},
		{args: []string{"restore", run, "app", "team/x:v1.2", "-n", "--root", "/r"}, want: trashCmd{name: "restore", runs: []string{run},
			selectors: []online.Selector{{Repo: "app"}, {Repo: "team/x", Tag: "v1.2"}}}},
		{args: []string{"restore", "-v", "--online", "data", run}, want: trashCmd{name: "restore", target: "data", runs: []string{run}}},

		{args: []string{"trash", "--help"}, code: ExitOK, done: true},
		{args: []string{"restore", "-h"}, code: ExitOK, done: true},
		{args: []string{"trash"}, code: ExitUsage, err: "say list or purge", done: true},
		{args: []string{"trash", "--root", "/r"}, code: ExitUsage, err: "say list or purge", done: true},
		{args: []string{"trash", "empty", "--root", "/r"}, code: ExitUsage, err: `unknown command "empty"`, done: true},
		{args: []string{"trash", "list", "--root", "/r", "extra"}, code: ExitUsage, err: "unexpected argument", done: true},
		{args: []string{"trash", "list", "-n", "--root", "/r"}, code: ExitUsage, err: "unknown shorthand flag", done: true},
		{args: []string{"trash", "list"}, code: ExitUsage, err: "no target", done: true},
		{args: []string{"trash", "purge", "--root", "/r", "--older-than", "-1d"}, code: ExitUsage, err: "negative", done: true},
		{args: []string{"trash", "purge", "--root", "/r", "--older-than", "3x"}, code: ExitUsage, err: "bad duration", done: true},
		{args: []string{"trash", "list", "--root", "/r", "--config", "/c"}, code: ExitUsage, err: "exclude each other", done: true},
		{args: []string{"trash", "list", "--root", ""}, code: ExitUsage, err: "needs a path", done: true},
		{args: []string{"trash", "list", "--root", "/r", "-j", "0"}, code: ExitUsage, err: "--jobs", done: true},
		{args: []string{"restore", "--root", "/r"}, code: ExitUsage, err: "which run", done: true},
		{args: []string{"restore", "registry"}, code: ExitUsage, err: "which run", done: true},
		{args: []string{"restore", "--root", "/r", "--online", run}, code: ExitUsage, err: "Docker targets", done: true},
		{args: []string{"restore", "--online", "--stop", "registry", run}, code: ExitUsage, err: "exclude each other", done: true},
		{args: []string{"trash", "purge", "--online", "--root", "/r"}, code: ExitUsage, err: "unknown flag: --online", done: true},
		{args: []string{"restore", "--root", "/r", "../../etc"}, code: ExitError, err: "invalid run", done: true},
		{args: []string{"restore", "--root", "/r", ".."}, code: ExitError, err: "invalid run", done: true},
		{args: []string{"trash", "purge", "--root", "/r", "a/b"}, code: ExitError, err: "invalid run", done: true},
		{args: []string{"restore", "--root", "/r", run, "Bad/Name"}, code: ExitError, err: "invalid repository or tag", done: true},
		{args: []string{"restore", "--root", "/r", run, "app/../x"}, code: ExitError, err: "invalid repository or tag", done: true},
		{args: []string{"restore", "--root", "/r", run, "app:-x"}, code: ExitError, err: "invalid repository or tag", done: true},
		{args: []string{"restore", "--root", "/r", run, "app@sha256:00"}, code: ExitError, err: "invalid repository or tag", done: true},
	}
	for _, tt := range tests {
		cmd, out, done := parseTrash("clean-registry", tt.args, io.Discard)
		if !parsedOn(t, tt.args, out, done, tt.done, tt.code, tt.err) {
			continue
		}
		got := cmd
		got.o = options{}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: parsed %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

// parsedOn checks how a subcommand's parse of args ended (done, status, an error
// saying errText) against the wanted end, and reports whether it went on to a
// command whose parsed fields the caller compares.
func parsedOn(t *testing.T, args []string, out subOutcome, done, wantDone bool, code int, errText string) bool {
	t.Helper()
	if done != wantDone || out.code != code {
		t.Errorf("%q: done %v, code %d (%v); want %v, %d", args, done, out.code, out.err, wantDone, code)
		return false
	}
	if errText != "" && (out.err == nil || !strings.Contains(out.err.Error(), errText)) {
		t.Errorf("%q: error %v, want one saying %q", args, out.err, errText)
	}
	return !done
}

// The seed's command line is untouched: "trash" and "restore" are subcommands
// only as the first argument.
func TestTrashDispatch(t *testing.T) {
	if code, out, _ := cli("trash", "--help"); code != ExitOK || !strings.Contains(out, "trash purge") {
		t.Fatalf("trash --help: %d %q", code, out)
	}
	if code, out, _ := cli("--help"); code != ExitOK || !strings.Contains(out, "--keep-deleted DURATION") {
		t.Fatalf("--help does not list --keep-deleted: %d", code)
	}
	// A bad command line with --json still prints one JSON document.
	code, out, errs := cli("trash", "list", "--json", "--bogus")
	var doc trashDoc
	if code != ExitUsage || json.Unmarshal([]byte(out), &doc) != nil || doc.Completed || doc.Stage != "command line" {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := cli("--keep-deleted", "-1d", "--root", t.TempDir()); code != ExitUsage || !strings.Contains(errs, "negative") {
		t.Fatalf("a negative --keep-deleted: code %d, %q", code, errs)
	}
}

// The whole cycle on a filesystem: a run keeps what it deletes, the trash lists
// it, a dry restore changes nothing, a restore puts it back, a purge ends a trash.
func TestTrashCycle(t *testing.T) {
	root := sample(t)
	before := files(t, root)
	code, out, errs := cli("--root", root, "--grace", "0", "--keep-deleted", "7d")
	if code != ExitOK || !strings.Contains(out, "moved to trash, freed when it expires") {
		t.Fatalf("real run: code %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli("trash", "list", "--root", root, "--json")
	var doc trashDoc
	if code != ExitOK || json.Unmarshal([]byte(out), &doc) != nil || doc.Runs == nil || len(*doc.Runs) != 1 {
		t.Fatalf("trash list: code %d\n%s%s", code, out, errs)
	}
	r := (*doc.Runs)[0]
	if r.State != "trash" || r.Keep != "7d" || r.Manifests != 1 || r.Blobs != 3 || r.Files != 6 || r.Bytes <= 0 ||
		!reflect.DeepEqual(r.Repositories, []string{"app"}) || r.Expires.Sub(r.Began) != 7*24*time.Hour {
		t.Fatalf("trash list says %+v", r)
	}
	if code, out, _ := cli("trash", "list", "--root", root); code != ExitOK || !strings.Contains(out, r.Run) {
		t.Fatalf("trash list (text): %d\n%s", code, out)
	}
	after := files(t, root)

	// Errors: an unknown run, a name the run holds nothing of.
	if code, _, errs := cli("restore", "--root", root, "20000101T000000Z-00000000"); code != ExitError || !strings.Contains(errs, "no run") {
		t.Fatalf("unknown run: %d %q", code, errs)
	}
	if code, _, errs := cli("restore", "--root", root, r.Run, "nope"); code != ExitError || !strings.Contains(errs, "holds nothing of it") {
		t.Fatalf("unknown repository: %d %q", code, errs)
	}
	if code, _, errs := cli("trash", "purge", "--root", root, "20000101T000000Z-00000000"); code != ExitError || !strings.Contains(errs, "no run") {
		t.Fatalf("purge of an unknown run: %d %q", code, errs)
	}

	code, out, _ = cli("restore", "-n", "--root", root, r.Run)
	if code != ExitOK || !strings.Contains(out, "would restore blob") || len(files(t, root)) != len(after) {
		t.Fatalf("dry restore: %d\n%s", code, out)
	}
	code, out, errs = cli("restore", "--root", root, r.Run, "--json")
	if code != ExitOK || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Restored) != 6 {
		t.Fatalf("restore: %d\n%s%s", code, out, errs)
	}
	if got := files(t, root); !reflect.DeepEqual(got, before) {
		t.Fatalf("after the restore the storage holds %d files, want the %d it held before the run", len(got), len(before))
	}
	// The run is gone from the trash once restored whole.
	if _, err := os.Stat(filepath.Join(root, layout.QuarantineDir)); !os.IsNotExist(err) {
		t.Fatalf("the trash is still there: %v", err)
	}

	// Trash again; purge with --older-than that spares it, then without.
	if code, _, errs := cli("--root", root, "-q", "--grace", "0", "--keep-deleted", "1h"); code != ExitOK {
		t.Fatalf("%d %s", code, errs)
	}
	if code, out, _ := cli("trash", "purge", "--root", root, "--older-than", "1d"); code != ExitOK || !strings.Contains(out, "nothing to purge") {
		t.Fatalf("purge --older-than 1d: %d %s", code, out)
	}
	if code, out, _ := cli("trash", "purge", "--root", root, "-n"); code != ExitOK || !strings.Contains(out, "would purge") {
		t.Fatalf("purge -n: %d %s", code, out)
	}
	if code, out, _ := cli("trash", "purge", "--root", root); code != ExitOK || !strings.Contains(out, "purged") {
		t.Fatalf("purge: %d %s", code, out)
	}
	if got := len(files(t, root)); got != len(before)-6 {
		t.Fatalf("after the purge: %d files, want %d", got, len(before)-6)
	}
	if _, err := os.Stat(filepath.Join(root, layout.ToolDir)); !os.IsNotExist(err) {
		t.Fatalf("the purge left %s: %v", layout.ToolDir, err)
	}
}

// An online run keeps what it deletes too: what its verification did not put back
// becomes the trash, and comes back whole.
func TestTrashOnline(t *testing.T) {
	root := sample(t)
	before := files(t, root)
	code, out, errs := cli("--root", root, "--grace", "0", "--online", "--settle", "0s", "--keep-deleted", "1d", "--json")
	var rep struct {
		KeepDeleted string `json:"keep_deleted"`
		Trash       *struct {
			Run   string `json:"run"`
			Files int    `json:"files"`
		} `json:"trash"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Trash == nil || rep.Trash.Files != 6 || rep.KeepDeleted != "1d" {
		t.Fatalf("online run: code %d\n%s%s", code, out, errs)
	}
	if code, _, errs := cli("restore", "-q", "--root", root, rep.Trash.Run); code != ExitOK {
		t.Fatalf("restore: %d %s", code, errs)
	}
	if got := files(t, root); !reflect.DeepEqual(got, before) {
		t.Fatalf("after the restore: %d files, want %d", len(got), len(before))
	}
}
