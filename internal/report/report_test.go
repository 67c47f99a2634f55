package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/execute"
	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
)

// smallPlan plans two unreferenced blobs, the layer link of one and the repository
// left empty.
func smallPlan() (*inventory.Inventory, *plan.Plan) {
	d1, d2 := layout.Digest(sha256.Sum256([]byte("a"))), layout.Digest(sha256.Sum256([]byte("b")))
	b := inventory.NewBuilder("/srv/registry")
	b.Blob(d1, 10, 0)
	b.Blob(d2, 2048, 0)
	b.BlobsDone()
	b.Layer("team/app", d2, 0)
	inv := b.Build()
	p := plan.Make(inv, plan.Policy{Now: time.Now()})
	return inv, p
}

// TestReport summarises a small plan (two unreferenced blobs, the layer link of one,
// the repository left empty) and checks that the text and the JSON forms say the same, phases included.
func TestReport(t *testing.T) {
	inv, p := smallPlan()
	rep := New(inv, p, true)
	rep.Seconds, rep.Phases = 3.5, Phases{Scan: 2.25, Plan: 1.25}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		DryRun  bool                   `json:"dry_run"`
		Total   Count                  `json:"total"`
		ByKind  map[string]Count       `json:"by_kind"`
		ByRepo  map[string]RepoSummary `json:"by_repository"`
		Phases  Phases                 `json:"phases"`
		Seconds float64                `json:"seconds"`
		Entries []Entry                `json:"deletions"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, js.String())
	}
	if !got.DryRun || got.Total.Count != 4 || got.Total.Bytes != 2058 || len(got.Entries) != 4 ||
		got.ByKind["blob"].Count != 2 || got.ByKind["layer-link"].Count != 1 || got.ByKind["repository"].Count != 1 {
		t.Fatalf("report = %+v", got)
	}
	if got.Seconds != 3.5 || got.Phases != rep.Phases {
		t.Fatalf("seconds %v, phases %+v", got.Seconds, got.Phases)
	}
	if r := got.ByRepo["team/app"]; r.Bytes != 2048 || r.Counts["layer-link"] != 1 {
		t.Fatalf("team/app = %+v", r)
	}
	for _, e := range got.Entries {
		if e.Reason == "" || e.Path == "" || (e.Digest == "") != (e.Kind == "repository") {
			t.Fatalf("entry without reason, path or digest: %+v", e)
		}
	}

	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{`Would delete \(dry run`, `3\.5s: scan 2\.2s, plan 1\.2s\)`,
		`total +4 +2\.0 KiB`, `team/app +0 +0 +0 +0 +0 +1 +0 +yes +2\.0 KiB`,
		`Would free 2\.0 KiB in 4 deletions; 0 repositories, 0 tags, 0 manifest revisions, 0 blobs of 0 B would remain\.\n$`} {
		if !regexp.MustCompile(want).MatchString(text.String()) {
			t.Errorf("text report lacks %s:\n%s", want, text.String())
		}
	}
}

// A real run that stopped early marks each deletion applied or not; a dry run marks
// each not applied.
func TestAppliedMarks(t *testing.T) {
	inv, p := smallPlan()
	for _, dry := range []bool{true, false} {
		rep := New(inv, p, dry)
		if !dry {
			rep.SetApplied(execute.Result{Done: 2, Applied: []execute.Range{{Start: 0, End: 2}}, // the layer link and one blob
				Uncertain: []execute.Range{{Start: 2, End: 3}}}) // the other blob's batch failed
		}
		var js bytes.Buffer
		if err := rep.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Applied   int     `json:"deletions_applied"`
			Uncertain int     `json:"deletions_uncertain"`
			Entries   []Entry `json:"deletions"`
		}
		if err := json.Unmarshal(js.Bytes(), &got); err != nil {
			t.Fatalf("%v in %s", err, js.String())
		}
		for i, e := range got.Entries {
			switch {
			case dry && (e.Applied == nil || *e.Applied):
				t.Errorf("dry run: deletion %d marked applied=%v, want false", i, e.Applied)
			case !dry && (e.Applied == nil || *e.Applied != (i < 2)):
				t.Errorf("real run: deletion %d (%s) applied=%v, want %v", i, e.Kind, e.Applied, i < 2)
			case e.Uncertain != (!dry && i == 2):
				t.Errorf("dry run %v: deletion %d (%s) uncertain=%v", dry, i, e.Kind, e.Uncertain)
			}
		}
		if !dry && (got.Applied != 2 || got.Uncertain != 1) {
			t.Errorf("deletions_applied = %d, deletions_uncertain = %d; want 2, 1", got.Applied, got.Uncertain)
		}
	}
}

// A run that keeps what it deletes says where the bytes went, in a dry run too,
// and names the expired trash it purged.
func TestReportTrash(t *testing.T) {
	inv, p := smallPlan()
	for _, tc := range []struct {
		dryRun bool
		trash  *Trash
		want   []string
	}{
		{true, nil, []string{"Would move to trash (dry run: nothing was moved)", "Bytes: would be moved to trash, freed when it expires (in 7d)"}},
		{false, &Trash{Run: "20260102T030405Z-1a2b3c4d", Expires: time.Date(2026, 1, 9, 3, 4, 5, 0, time.UTC), Files: 3},
			[]string{"Moved to trash (kept 7d)", "Bytes: moved to trash, freed when it expires: run 20260102T030405Z-1a2b3c4d, 3 files, expires 2026-01-09T03:04:05Z",
				"restore TARGET 20260102T030405Z-1a2b3c4d", "Trash: purged 20251201T000000Z-00000000, which expired."}},
	} {
		rep := New(inv, p, tc.dryRun)
		rep.Completed, rep.KeepDeleted, rep.Trash = true, "7d", tc.trash
		if !tc.dryRun {
			rep.TrashPurged = []string{"20251201T000000Z-00000000"}
		}
		var text bytes.Buffer
		rep.WriteText(&text)
		for _, w := range tc.want {
			if !bytes.Contains(text.Bytes(), []byte(w)) {
				t.Errorf("dry run %v: the text lacks %q:\n%s", tc.dryRun, w, text.String())
			}
		}
	}
}

// The text ends with what the run freed and what remains; a run with nothing to do
// says so in one line, without a table of zeros; a run that stopped early counts
// what it applied.
func TestReportOutcome(t *testing.T) {
	inv, p := smallPlan()
	rep := New(inv, p, false)
	rep.Completed = true
	rep.SetApplied(execute.Result{Done: 4, Applied: []execute.Range{{Start: 0, End: 4}}})
	var text bytes.Buffer
	rep.WriteText(&text)
	if want := "Freed 2.0 KiB in 4 deletions; 0 repositories, 0 tags, 0 manifest revisions, 0 blobs of 0 B remain.\n"; !bytes.HasSuffix(text.Bytes(), []byte(want)) {
		t.Errorf("the text does not end with %q:\n%s", want, text.String())
	}

	rep = New(inv, p, false)
	rep.SetApplied(execute.Result{Done: 2, Applied: []execute.Range{{Start: 0, End: 2}}, // the layer link, blob "b" (2 KiB, first in digest order)
		Uncertain: []execute.Range{{Start: 2, End: 3}}})
	text.Reset()
	rep.WriteText(&text)
	if want := "Freed 2.0 KiB in 2 of 4 deletions before the run stopped; 1 more were under way, and may have been applied in part"; !bytes.Contains(text.Bytes(), []byte(want)) {
		t.Errorf("a stopped run: the text lacks %q:\n%s", want, text.String())
	}

	b := inventory.NewBuilder("/srv/registry")
	d := layout.Digest(sha256.Sum256([]byte("a")))
	b.Blob(d, 10, 0)
	b.BlobsDone()
	b.Layer("team/app", d, 0)
	inv = b.Build()
	for _, dry := range []bool{true, false} {
		rep = New(inv, plan.Make(inv, plan.Policy{Now: time.Now(), Grace: time.Hour}), dry)
		rep.Completed = true
		text.Reset()
		rep.WriteText(&text)
		lines := bytes.Split(bytes.TrimSpace(text.Bytes()), []byte("\n"))
		if len(lines) != 1 || !regexp.MustCompile(`^Nothing to delete in /srv/registry \(.*\): 1 repositories, 0 tags, 0 manifest revisions, 1 blobs of 10 B kept\.$`).Match(lines[0]) {
			t.Errorf("dry run %v, nothing to do: the text is not one line:\n%s", dry, text.String())
		}
	}
}
