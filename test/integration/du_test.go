package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// duDoc is the part of du's --json document the tests read.
type duDoc struct {
	Completed    bool `json:"completed"`
	Repositories []struct {
		Name        string `json:"repository"`
		Tags        int    `json:"tags"`
		Manifests   int    `json:"manifests"`
		Bytes       int64  `json:"bytes"`
		UniqueBytes int64  `json:"unique_bytes"`
		SharedBytes int64  `json:"shared_bytes"`
		LowerBound  string `json:"lower_bound"`
	} `json:"repositories"`
	Totals struct {
		Bytes             int64 `json:"bytes"`
		ReferencedBytes   int64 `json:"referenced_bytes"`
		UnreferencedBytes int64 `json:"unreferenced_bytes"`
	} `json:"totals"`
}

func (e *env) du(args ...string) duDoc {
	e.t.Helper()
	r := mustRun(e.t, append([]string{"du", "--root", e.root, "--json"}, args...)...)
	var doc duDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || !doc.Completed {
		e.t.Fatalf("du --json: %v\n%s", err, r)
	}
	return doc
}

// blobBytes is what the storage's blobs weigh, as the filesystem says.
func (e *env) blobBytes() int64 {
	e.t.Helper()
	var n int64
	for _, f := range e.tree().Files {
		if strings.HasPrefix(f, harness.V2+"/blobs/") && filepath.Base(f) == "data" {
			st, err := os.Stat(filepath.Join(e.root, filepath.FromSlash(f)))
			if err != nil {
				e.t.Fatal(err)
			}
			n += st.Size()
		}
	}
	return n
}

// TestDuUniqueIsWhatRemoveFrees pushes repositories that share layers and index
// children, and checks du against the real registry's storage: totals as the
// filesystem sees them, a repository's unique bytes exactly what the real
// "-x REPOSITORY" then frees, and the shared layer unique to the one left.
func TestDuUniqueIsWhatRemoveFrees(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s1, s2 := harness.Layer(5000, harness.OCI), harness.Layer(5001, harness.OCI)
	e.s.PushImage("app:1", harness.ImageWithLayers(5002, harness.OCI, s1, harness.Layer(5003, harness.OCI)))
	e.s.PushImage("web:1", harness.ImageWithLayers(5004, harness.OCI, s1, s2, harness.Layer(5005, harness.OCI)))
	e.s.PushImage("base:1", harness.ImageWithLayers(5006, harness.OCI, s2))
	child := harness.ImageWithLayers(5007, harness.OCI, harness.Layer(5008, harness.OCI))
	e.s.PushIndex("multi:1", harness.IndexOf(harness.OCI, child, harness.Image(5009, 2, harness.OCI)))
	e.s.PushImage("app:child", child) // an index child app holds too
	e.s.PushImage("web:old", harness.Image(5010, 1, harness.OCI))
	e.s.PushImage("web:old", harness.Image(5011, 1, harness.OCI)) // leaves garbage for the clean below
	// No garbage: a plain clean first, so that -x frees exactly what app alone holds.
	e.clean("--grace", "0", "-q")
	// An untagged image counts for its repository: a revision, not garbage.
	e.s.PushImage("app:2", harness.Image(5012, 1, harness.OCI))
	e.s.PushImage("app:2", harness.Image(5013, 1, harness.OCI))

	e.reg.StopT(t)
	before := e.tree()
	doc := e.du()
	if after := e.tree(); !reflect.DeepEqual(after, before) {
		t.Fatalf("du changed the storage (or took a lock)")
	}
	total := e.blobBytes()
	if tt := doc.Totals; tt.Bytes != total || tt.ReferencedBytes != total || tt.UnreferencedBytes != 0 {
		t.Errorf("totals %+v; the blobs weigh %d, all referenced", tt, total)
	}
	rows := map[string]int{}
	for i, r := range doc.Repositories {
		rows[r.Name] = i
		if r.Bytes != r.UniqueBytes+r.SharedBytes || r.LowerBound != "" || r.Bytes <= 0 {
			t.Errorf("%+v does not add up", r)
		}
		if i > 0 && doc.Repositories[i-1].UniqueBytes < r.UniqueBytes {
			t.Errorf("not sorted by unique bytes: %+v", doc.Repositories)
		}
	}
	if len(rows) != 4 {
		t.Fatalf("rows %+v, want app, web, base, multi", doc.Repositories)
	}
	app := doc.Repositories[rows["app"]]
	if app.Tags != 3 || app.Manifests != 4 || app.SharedBytes == 0 || app.UniqueBytes == 0 {
		t.Errorf("app: %+v; want 3 tags, 4 manifests (one untagged), bytes shared with web and multi, some its own", app)
	}
	web := doc.Repositories[rows["web"]]

	// The real -x: what it frees is app's unique bytes.
	rep := parseReport(t, e.clean("--grace", "0", "--json", "-x", "app"))
	var freed int64
	for _, d := range rep.Deletions {
		if d.Kind == "blob" {
			freed += d.Bytes
		}
	}
	if freed != app.UniqueBytes {
		t.Errorf("-x app freed %d bytes; du said %d unique", freed, app.UniqueBytes)
	}
	e.reg.StopT(t)
	if got := e.blobBytes(); total-got != app.UniqueBytes {
		t.Errorf("the blobs went from %d to %d bytes: %d freed; du said %d unique", total, got, total-got, app.UniqueBytes)
	}
	// What remains, weighed without a stat per kept blob (the manifests' declared
	// sizes), is what the filesystem says.
	if got := e.blobBytes(); rep.Kept.Bytes != got || rep.Kept.UnknownSizes != 0 || rep.Kept.Blobs == 0 {
		t.Errorf("the report says %d blobs of %d bytes remain (%d of unknown size); the blobs weigh %d",
			rep.Kept.Blobs, rep.Kept.Bytes, rep.Kept.UnknownSizes, got)
	}

	// s1 is web's alone now; app's share of the index child is multi's.
	after := e.du("web", "multi")
	if len(after.Repositories) != 2 {
		t.Fatalf("du web multi: %+v", after.Repositories)
	}
	for _, r := range after.Repositories {
		if r.Name == "web" && (r.Bytes != web.Bytes || r.UniqueBytes <= web.UniqueBytes) {
			t.Errorf("web after -x app: %+v; before %+v: its shared layer with app should be its own now", r, web)
		}
	}
	if r := run(t, "du", "--root", e.root, "--top", "1"); r.code != 0 || !strings.Contains(r.stdout, "UNIQUE") ||
		!strings.Contains(r.stdout, "(2 more repositories") || strings.Contains(r.stdout, "  base\n") {
		t.Errorf("du --top 1:\n%s", r)
	}
	if r := run(t, "du", "--root", e.root, "app"); r.code != 1 || !strings.Contains(r.stderr, "No such repository: app") {
		t.Errorf("du of a removed repository: %s", r)
	}
}

// TestDuUnreadableManifest: a repository holding a manifest no tool understands is
// reported with lower bounds (its layer links counted), and du still answers.
func TestDuUnreadableManifest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := harness.Layer(5020, harness.OCI)
	e.s.PushImage("odd:1", harness.ImageWithLayers(5021, harness.OCI, shared))
	e.s.PushImage("plain:1", harness.ImageWithLayers(5022, harness.OCI, shared))
	e.reg.StopT(t)
	if _, err := harness.WriteUnknownManifest(e.root, "odd", "weird", 5023); err != nil {
		t.Fatal(err)
	}
	doc := e.du()
	for _, r := range doc.Repositories {
		switch {
		case r.Name == "odd" && (r.LowerBound == "" || r.Manifests != 2 || r.SharedBytes == 0):
			t.Errorf("odd: %+v; want a lower bound, 2 manifests, the shared layer", r)
		case r.Name == "plain" && (r.LowerBound != "" || r.SharedBytes == 0):
			t.Errorf("plain: %+v", r)
		}
	}
	if r := mustRun(t, "du", "--root", e.root); !strings.Contains(r.stdout, "  odd *\n") ||
		!strings.Contains(r.stdout, "* odd: lower bounds: ") {
		t.Errorf("du (text) does not mark odd:\n%s", r)
	}
}
