package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// parseMetrics reads the Prometheus text format with Prometheus' own parser.
func parseMetrics(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return mfs
}

// gauge is the value of the one series of name whose labels include labels (name,
// value pairs); ok is false when there is none.
func gauge(mfs map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	for _, m := range mfs[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if match {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// garbage pushes app:1 twice, leaving an untagged image: a revision and its blobs to
// delete.
func (e *env) garbage() {
	e.s.PushImage("app:1", harness.Image(7100, 2, harness.OCI))
	e.s.PushImage("app:1", harness.Image(7101, 2, harness.OCI))
	e.s.PushImage("web:1", harness.Image(7102, 1, harness.OCI))
}

// byKind counts a --json report's deletions and their bytes by kind.
func byKind(rep report) (count map[string]float64, bytes map[string]float64) {
	count, bytes = map[string]float64{}, map[string]float64{}
	for _, d := range rep.Deletions {
		count[d.Kind]++
		bytes[d.Kind] += float64(d.Bytes)
	}
	return count, bytes
}

// checkRun compares the metrics of a completed real run with its --json report.
func checkRun(t *testing.T, mfs map[string]*dto.MetricFamily, rep report, labels ...string) {
	t.Helper()
	count, bytes := byKind(rep)
	if count["revision"] != 1 || count["blob"] < 3 {
		t.Fatalf("the run deleted %v; want the untagged image", count)
	}
	for _, kind := range []string{"tag", "tag-history", "revision", "layer-link", "upload", "blob", "repository"} {
		l := append([]string{"kind", kind}, labels...)
		if v, ok := gauge(mfs, "clean_registry_deletions", l...); !ok || v != count[kind] {
			t.Errorf("clean_registry_deletions{kind=%q} = %v (present %v); the report deleted %v", kind, v, ok, count[kind])
		}
		if v, ok := gauge(mfs, "clean_registry_deletion_bytes", l...); !ok || v != bytes[kind] {
			t.Errorf("clean_registry_deletion_bytes{kind=%q} = %v (present %v); the report freed %v", kind, v, ok, bytes[kind])
		}
	}
	want := map[string]float64{
		"clean_registry_last_run_success":     1,
		"clean_registry_last_run_dry_run":     0,
		"clean_registry_last_run_completed":   1,
		"clean_registry_last_run_exit_status": 0,
		"clean_registry_deletions_applied":    float64(len(rep.Deletions)),
		"clean_registry_failures":             0,
	}
	for name, w := range want {
		if v, ok := gauge(mfs, name, labels...); !ok || v != w {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, w)
		}
	}
	if v, ok := gauge(mfs, "clean_registry_kept", append([]string{"kind", "revision"}, labels...)...); !ok || v != 2 {
		t.Errorf("clean_registry_kept{kind=revision} = %v, want 2 (app:1 and web:1)", v)
	}
	var problems float64
	for _, m := range mfs["clean_registry_problems"].GetMetric() {
		problems += m.GetGauge().GetValue()
	}
	if len(mfs["clean_registry_problems"].GetMetric()) == 0 || problems != float64(len(rep.Problems)) {
		t.Errorf("problems: %v in the metrics, %d in the report", problems, len(rep.Problems))
	}
	start, _ := gauge(mfs, "clean_registry_last_run_start_timestamp_seconds", labels...)
	end, _ := gauge(mfs, "clean_registry_last_run_end_timestamp_seconds", labels...)
	if start < 1e9 || end < start {
		t.Errorf("start %v, end %v", start, end)
	}
	for _, phase := range []string{"scan", "plan", "delete"} {
		if _, ok := gauge(mfs, "clean_registry_phase_seconds", append([]string{"phase", phase}, labels...)...); !ok {
			t.Errorf("no clean_registry_phase_seconds{phase=%q}", phase)
		}
	}
}

// TestMetricsFile: the real binary on a real registry's storage writes the metrics
// for node_exporter's textfile collector, the same numbers as its JSON report; a
// failed run rewrites them with success 0.
func TestMetricsFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.garbage()
	dir := t.TempDir()
	prom := filepath.Join(dir, "clean_registry.prom")

	e.reg.StopT(t)
	rep := parseReport(t, mustRun(t, "--root", e.root, "--grace", "0", "--json", "--metrics-file", prom))
	e.reg.RestartT(t)
	f, err := os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	mfs := parseMetrics(t, f)
	f.Close()
	checkRun(t, mfs, rep)
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the metrics directory; want the metrics alone, no temporary file left", len(entries))
	}
	if _, ok := gauge(mfs, "clean_registry_info", "storage", e.root); !ok {
		t.Errorf("no clean_registry_info{storage=%q}", e.root)
	}

	// A failed dry run: a repository that does not exist.
	r := run(t, "--root", e.root, "-n", "-q", "--metrics-file", prom, "nosuch")
	if r.code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	f, err = os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mfs = parseMetrics(t, f)
	for name, want := range map[string]float64{"clean_registry_last_run_success": 0, "clean_registry_last_run_dry_run": 1,
		"clean_registry_failures": 1, "clean_registry_last_run_exit_status": 1} {
		if v, ok := gauge(mfs, name); !ok || v != want {
			t.Errorf("failed dry run: %s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

// TestMetricsPushgateway pushes with the real binary to a real Pushgateway and reads
// the metrics back from the Pushgateway's /metrics, as Prometheus scrapes them.
func TestMetricsPushgateway(t *testing.T) {
	t.Parallel()
	gw := harness.StartPushgateway(t)
	e := newEnv(t)
	e.garbage()

	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		resp, err := http.Get(gw.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s", resp.Status)
		}
		return parseMetrics(t, resp.Body)
	}
	group := []string{"job", "clean_registry", "instance", e.root}

	e.reg.StopT(t)
	r := mustRun(t, "--root", e.root, "--grace", "0", "--json", "--pushgateway", gw.URL)
	e.reg.RestartT(t)
	if strings.Contains(r.stderr, "WARNING") {
		t.Errorf("the push warned: %s", r)
	}
	mfs := scrape()
	checkRun(t, mfs, parseReport(t, r), group...)
	if _, ok := gauge(mfs, "push_time_seconds", group...); !ok {
		t.Errorf("the Pushgateway has no push from the group %v:\n%s", group, gw.Logs())
	}

	// The next push replaces the group's metrics: a failed run.
	if r := run(t, "--root", e.root, "-n", "-q", "--pushgateway", gw.URL, "nosuch"); r.code != 1 || strings.Contains(r.stderr, "WARNING") {
		t.Fatalf("want exit 1 and no warning: %s", r)
	}
	mfs = scrape()
	if v, ok := gauge(mfs, "clean_registry_last_run_success", group...); !ok || v != 0 {
		t.Errorf("after a failed run: success %v (present %v), want 0", v, ok)
	}
	if v, _ := gauge(mfs, "clean_registry_deletions", append([]string{"kind", "blob"}, group...)...); v != 0 {
		t.Errorf("after a failed run: %v blob deletions, want 0 (the group replaced)", v)
	}

	// A Pushgateway that does not answer: a warning, and the run's own exit status.
	const url = "http://127.0.0.1:1" // nothing listens on port 1
	if r := run(t, "--root", e.root, "-n", "-q", "--pushgateway", url); r.code != 0 ||
		!strings.Contains(r.stderr, "WARNING: pushing the metrics to "+url) {
		t.Errorf("want exit 0 and a warning: %s", r)
	}
}
