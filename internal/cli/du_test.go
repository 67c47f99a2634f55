package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDu(t *testing.T) {
	tests := []struct {
		args []string
		want duCmd // checked when the command did not end in parsing
		code int
		err  string
		done bool
	}{
		{args: []string{"--root", "/r"}, want: duCmd{}},
		{args: []string{"registry", "--json", "--top", "3"}, want: duCmd{target: "registry", top: 3}},
		{args: []string{"--config", "/c.yml", "app", "team/x"}, want: duCmd{repos: []string{"app", "team/x"}}},
		{args: []string{"-v", "data", "app"}, want: duCmd{target: "data", repos: []string{"app"}}},

		{args: []string{"-h"}, code: ExitOK, done: true},
		{args: nil, code: ExitUsage, err: "no target", done: true},
		{args: []string{"--root", "/r", "--top", "-1"}, code: ExitUsage, err: "--top", done: true},
		{args: []string{"--root", "/r", "--top", "x"}, code: ExitUsage, err: "invalid argument", done: true},
		{args: []string{"--root", "/r", "--config", "/c"}, code: ExitUsage, err: "exclude each other", done: true},
		{args: []string{"--root", ""}, code: ExitUsage, err: "needs a path", done: true},
		{args: []string{"--root", "/r", "-j", "0"}, code: ExitUsage, err: "--jobs", done: true},
		{args: []string{"--root", "/r", "-v"}, code: ExitUsage, err: "volume", done: true},
		{args: []string{"--root", "/r", "-x"}, code: ExitUsage, err: "unknown shorthand flag", done: true},
		{args: []string{"--root", "/r", "app:v1"}, code: ExitUsage, err: "not REPOSITORY:TAG", done: true},
		{args: []string{"--root", "/r", "Bad/Name"}, code: ExitError, err: "invalid repository", done: true},
	}
	for _, tt := range tests {
		cmd, out, done := parseDu("clean-registry", tt.args, io.Discard)
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

// du on the sample: every blob is app's (one tagged image, one untagged), nothing
// is shared or unreferenced, and nothing in the storage changes.
func TestDu(t *testing.T) {
	root := sample(t)
	before := files(t, root)
	var blobBytes int64
	for _, f := range before {
		if filepath.Base(f) == "data" {
			st, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			blobBytes += st.Size()
		}
	}
	code, out, errs := cli("du", "--root", root, "--json")
	var doc duDoc
	if code != ExitOK || json.Unmarshal([]byte(out), &doc) != nil || !doc.Completed || doc.Totals == nil {
		t.Fatalf("du --json: code %d\n%s%s", code, out, errs)
	}
	if len(doc.Repositories) != 1 {
		t.Fatalf("rows %+v, want app's only", doc.Repositories)
	}
	r := doc.Repositories[0]
	if r.Name != "app" || r.Tags != 2 || r.Manifests != 2 || r.Blobs != 6 || r.Bytes != blobBytes || r.UniqueBytes != blobBytes ||
		r.SharedBytes != 0 || r.LowerBound != "" {
		t.Errorf("app: %+v; want 2 tags, 2 manifests, 6 blobs, all %d bytes unique", r, blobBytes)
	}
	if tt := doc.Totals; tt.Bytes != blobBytes || tt.ReferencedBytes != blobBytes || tt.UnreferencedBytes != 0 || tt.Blobs != 6 {
		t.Errorf("totals %+v", tt)
	}
	if got := files(t, root); !reflect.DeepEqual(got, before) {
		t.Errorf("du changed the storage: %d files, %d before", len(got), len(before))
	}

	code, out, _ = cli("du", "--root", root)
	if code != ExitOK || !strings.Contains(out, "UNIQUE") || !strings.Contains(out, "  app\n") {
		t.Errorf("du (text): code %d\n%s", code, out)
	}
	code, out, _ = cli("du", "--root", root, "--top", "1", "app")
	if code != ExitOK || !strings.Contains(out, "  app\n") {
		t.Errorf("du app: code %d\n%s", code, out)
	}
	// A repository that does not exist: the others are shown, exit 1.
	code, out, errs = cli("du", "--root", root, "--json", "app", "nope")
	if code != ExitError || json.Unmarshal([]byte(out), &doc) != nil || doc.Completed || len(doc.Repositories) != 1 ||
		!strings.Contains(errs, "No such repository: nope") {
		t.Errorf("du app nope: code %d\n%s%s", code, out, errs)
	}
	// Not a registry: an error, with --json one document.
	code, out, _ = cli("du", "--root", t.TempDir(), "--json")
	if code != ExitError || json.Unmarshal([]byte(out), &doc) != nil || doc.Completed || doc.Stage != "scan" {
		t.Errorf("du on no registry: code %d\n%s", code, out)
	}
	// A bad command line with --json: one document too; --help none.
	code, out, _ = cli("du", "--json", "--bogus")
	if code != ExitUsage || json.Unmarshal([]byte(out), &doc) != nil || doc.Stage != "command line" {
		t.Errorf("du --bogus: code %d\n%s", code, out)
	}
	if code, out, _ := cli("du", "--help", "--json"); code != ExitOK || !strings.Contains(out, "--top N") || strings.Contains(out, "{") {
		t.Errorf("du --help: code %d\n%s", code, out)
	}
	if code, out, _ := cli("--help"); code != ExitOK || !strings.Contains(out, " du ") {
		t.Errorf("--help does not mention du: %d", code)
	}
}
