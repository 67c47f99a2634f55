package clean

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/layout/layouttest"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

// An online run sets apart what its scan saw of a push under way and found
// finished at its end (a layer link whose blob was not there yet); an offline run,
// or a blob that never comes, leaves it a problem (exit status 3).
func TestOnlineRunSettlesWritesUnderWay(t *testing.T) {
	late := []byte("a layer pushed during the scan")
	d := layout.Digest(sha256.Sum256(late))
	tests := []struct {
		name         string
		online, push bool // an online run; the push finishes during the run
		settled      bool
	}{
		{"online, the push finishes", true, true, true},
		{"online, the blob never comes", true, false, false},
		{"offline, the push finishes", false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, b := sample(t)
			tr := layouttest.Tree{T: t, Root: root}
			tr.Link(layout.LayerLink("app", d), d)
			opts := Options{Jobs: 4}
			finish := func(context.Context, *report.Report) (bool, error) {
				if tc.push {
					tr.Blob(late)
				}
				return false, nil
			}
			if tc.online {
				opts.Online = &Online{Settle: time.Millisecond, AfterMoves: finish}
			} else {
				opts.Log = logFunc(func() { _, _ = finish(context.Background(), nil) })
			}
			rep, err := Run(context.Background(), b, opts)
			if err != nil || !rep.Completed {
				t.Fatalf("run: %v, %+v", err, rep)
			}
			if _, err := b.Stat(context.Background(), layout.BlobData(d)); tc.push && err != nil {
				t.Fatalf("the push never finished: %v", err)
			}
			want := []inventory.ProblemKind{inventory.MissingBlob}
			got, gotSettled := kinds(rep.Problems), kinds(rep.Settled)
			if tc.settled {
				got, gotSettled = gotSettled, got
			}
			if len(gotSettled) != 0 || len(got) != 1 || got[0] != want[0] {
				t.Errorf("problems %+v, settled %+v; want the missing blob settled: %v", rep.Problems, rep.Settled, tc.settled)
			}
			var text, doc strings.Builder
			rep.WriteText(&text)
			if err := rep.WriteJSON(&doc); err != nil {
				t.Fatal(err)
			}
			listed := strings.Contains(text.String(), "finished since (1, not problems):\n  missing-blob: ")
			inJSON := strings.Contains(doc.String(), `"settled":[`)
			if listed != tc.settled || inJSON != tc.settled || strings.Contains(text.String(), "Problems found") == tc.settled {
				t.Errorf("settled %v, but the text says:\n%s\nand the JSON:\n%s", tc.settled, text.String(), doc.String())
			}
		})
	}
}

func kinds(ps []inventory.Problem) []inventory.ProblemKind {
	var out []inventory.ProblemKind
	for _, p := range ps {
		out = append(out, p.Kind)
	}
	return out
}

// logFunc is a log that calls itself at each write: a hook inside an offline run,
// once its deletions begin.
type logFunc func()

func (f logFunc) Write(p []byte) (int, error) {
	if f != nil {
		f()
	}
	return len(p), nil
}
