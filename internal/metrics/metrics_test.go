package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

// Parse reads the Prometheus text format with Prometheus' own parser.
func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parsing the metrics: %v", err)
	}
	return mfs
}

// value is the gauge of family name whose labels include want; it fails the test
// when there is none.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
	if mf.GetHelp() == "" {
		t.Errorf("%s has no HELP", name)
	}
	if mf.GetType() != dto.MetricType_GAUGE {
		t.Errorf("%s is a %s, not a gauge", name, mf.GetType())
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no %s%v", name, want)
	return 0
}

func sampleReport() *report.Report {
	rep := report.Stopped("/var/lib/registry", "", nil)
	rep.Stage = ""
	rep.Completed = true
	rep.Scanned = 1234
	rep.Applied = 9
	rep.ByKind["tag"] = report.Count{Count: 2}
	rep.ByKind["revision"] = report.Count{Count: 3}
	rep.ByKind["blob"] = report.Count{Count: 4, Bytes: 5 << 20}
	rep.Total = report.Count{Count: 9, Bytes: 5 << 20}
	rep.Kept.Revisions, rep.Kept.Blobs, rep.Kept.Bytes, rep.Kept.UnknownSizes = 7, 21, 3<<30, 2
	rep.Problems = []inventory.Problem{
		{Kind: inventory.MissingBlob, Path: "a"}, {Kind: inventory.MissingBlob, Path: "b"},
		{Kind: inventory.UnknownFile, Path: "c"},
	}
	rep.Requests = map[string]int64{"List": 12, "Delete": 9}
	rep.Seconds = 3.5
	rep.Phases = report.Phases{Scan: 1.25, Plan: 0.5, Delete: 1.75}
	rep.Online = &report.Online{Quarantined: 16, Restored: []report.Restored{{Kind: "blob"}, {Kind: "revision"}},
		SettleSeconds: 60, VerifySeconds: 2, PurgeSeconds: 0.25}
	return rep
}

func TestWriteFileParses(t *testing.T) {
	start := time.Unix(1_800_000_000, 500_000_000)
	end := start.Add(3500 * time.Millisecond)
	reg := New(sampleReport(), Run{Start: start, End: end, Success: true, ExitStatus: 3, Version: "2.0.0-test"})
	dir := t.TempDir()
	path := filepath.Join(dir, "clean_registry.prom")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, reg); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files, want only the metrics file (no temporary left)", len(entries))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v: want 0644 for node_exporter", fi.Mode(), err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mfs := parse(t, f)
	for name := range mfs {
		if !strings.HasPrefix(name, Prefix) {
			t.Errorf("%s lacks the prefix %s", name, Prefix)
		}
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"clean_registry_last_run_start_timestamp_seconds", nil, 1_800_000_000.5},
		{"clean_registry_last_run_end_timestamp_seconds", nil, 1_800_000_004},
		{"clean_registry_last_run_success", nil, 1},
		{"clean_registry_last_run_exit_status", nil, 3},
		{"clean_registry_last_run_dry_run", nil, 0},
		{"clean_registry_last_run_completed", nil, 1},
		{"clean_registry_last_run_seconds", nil, 3.5},
		{"clean_registry_info", []string{"storage", "/var/lib/registry", "version", "2.0.0-test"}, 1},
		{"clean_registry_phase_seconds", []string{"phase", "scan"}, 1.25},
		{"clean_registry_phase_seconds", []string{"phase", "plan"}, 0.5},
		{"clean_registry_phase_seconds", []string{"phase", "delete"}, 1.75},
		{"clean_registry_phase_seconds", []string{"phase", "settle"}, 60},
		{"clean_registry_phase_seconds", []string{"phase", "verify"}, 2},
		{"clean_registry_phase_seconds", []string{"phase", "purge"}, 0.25},
		{"clean_registry_files_scanned", nil, 1234},
		{"clean_registry_deletions", []string{"kind", "tag"}, 2},
		{"clean_registry_deletions", []string{"kind", "revision"}, 3},
		{"clean_registry_deletions", []string{"kind", "blob"}, 4},
		{"clean_registry_deletions", []string{"kind", "upload"}, 0},
		{"clean_registry_deletions", []string{"kind", "repository"}, 0},
		{"clean_registry_deletion_bytes", []string{"kind", "blob"}, 5 << 20},
		{"clean_registry_deletion_bytes", []string{"kind", "tag"}, 0},
		{"clean_registry_deletions_applied", nil, 9},
		{"clean_registry_kept", []string{"kind", "revision"}, 7},
		{"clean_registry_kept", []string{"kind", "blob"}, 21},
		{"clean_registry_kept_bytes", nil, 3 << 30},
		{"clean_registry_kept_unknown_sizes", nil, 2},
		{"clean_registry_problems", []string{"kind", "missing-blob"}, 2},
		{"clean_registry_problems", []string{"kind", "unknown-file"}, 1},
		{"clean_registry_problems", []string{"kind", "garbled-link"}, 0},
		{"clean_registry_failures", nil, 0},
		{"clean_registry_storage_requests", []string{"op", "List"}, 12},
		{"clean_registry_storage_requests", []string{"op", "Delete"}, 9},
		{"clean_registry_online_quarantined", nil, 16},
		{"clean_registry_online_put_back", nil, 2},
		{"clean_registry_online_restart_required", nil, 0},
	}
	for _, c := range checks {
		if got := value(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// A run that stopped before it had a plan still says when it ran and that it failed;
// an offline run on a filesystem has no online or request metrics.
func TestStoppedRun(t *testing.T) {
	rep := report.Stopped("/srv/registry", "lock", nil)
	rep.DryRun = true
	reg := New(rep, Run{Start: time.Unix(100, 0), End: time.Unix(101, 0), Success: false, ExitStatus: 1})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&sb, mf); err != nil {
			t.Fatal(err)
		}
	}
	got := parse(t, strings.NewReader(sb.String()))
	if v := value(t, got, "clean_registry_last_run_success"); v != 0 {
		t.Errorf("success %v, want 0", v)
	}
	if v := value(t, got, "clean_registry_last_run_dry_run"); v != 1 {
		t.Errorf("dry_run %v, want 1", v)
	}
	if v := value(t, got, "clean_registry_last_run_end_timestamp_seconds"); v != 101 {
		t.Errorf("end %v, want 101", v)
	}
	if v := value(t, got, "clean_registry_deletions", "kind", "blob"); v != 0 {
		t.Errorf("blob deletions %v, want 0", v)
	}
	for _, name := range []string{"clean_registry_storage_requests", "clean_registry_online_put_back"} {
		if got[name] != nil {
			t.Errorf("%s present in an offline filesystem run", name)
		}
	}
	if n := len(got["clean_registry_phase_seconds"].GetMetric()); n != 3 {
		t.Errorf("%d phases, want scan, plan and delete", n)
	}
}

// Push PUTs the text format to /metrics/job/clean_registry/instance/..., the
// storage's path base64-encoded since it holds slashes.
func TestPush(t *testing.T) {
	var method, path string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, path = r.Method, r.URL.Path
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	reg := New(sampleReport(), Run{Start: time.Unix(1, 0), End: time.Unix(2, 0), Success: true})
	if err := Push(context.Background(), srv.URL, "/var/lib/registry", reg); err != nil {
		t.Fatal(err)
	}
	if method != http.MethodPut || path != "/metrics/job/clean_registry/instance@base64/L3Zhci9saWIvcmVnaXN0cnk" {
		t.Errorf("%s %s", method, path)
	}
	if len(body) == 0 {
		t.Error("empty push")
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer bad.Close()
	if err := Push(context.Background(), bad.URL, "x", reg); err == nil || !strings.Contains(err.Error(), bad.URL) {
		t.Errorf("a failed push: %v", err)
	}
}
