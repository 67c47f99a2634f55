package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsOf parses a metrics file with Prometheus' parser: name{labels} -> value.
func metricsOf(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestMetricsFile(t *testing.T) {
	root := sample(t)
	prom := filepath.Join(t.TempDir(), "clean_registry.prom")
	if code, _, stderr := cli("--root", root, "--grace", "0", "-q", "--metrics-file", prom); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := metricsOf(t, prom)
	for key, want := range map[string]float64{
		"clean_registry_last_run_success":            1,
		"clean_registry_last_run_dry_run":            0,
		"clean_registry_last_run_exit_status":        0,
		"clean_registry_deletions{kind=revision}":    1,
		"clean_registry_deletions{kind=blob}":        3,
		"clean_registry_deletions{kind=tag}":         0,
		"clean_registry_kept{kind=revision}":         1,
		"clean_registry_problems{kind=missing-blob}": 0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if m["clean_registry_last_run_end_timestamp_seconds"] < m["clean_registry_last_run_start_timestamp_seconds"] ||
		m["clean_registry_last_run_start_timestamp_seconds"] < 1e9 {
		t.Errorf("start %v, end %v", m["clean_registry_last_run_start_timestamp_seconds"], m["clean_registry_last_run_end_timestamp_seconds"])
	}

	// A failed run (a repository that does not exist) writes success 0, dry_run 1.
	if code, _, _ := cli("--root", root, "-n", "-q", "--metrics-file", prom, "nosuch"); code != ExitError {
		t.Fatalf("exit %d, want %d", code, ExitError)
	}
	m = metricsOf(t, prom)
	if m["clean_registry_last_run_success"] != 0 || m["clean_registry_last_run_dry_run"] != 1 ||
		m["clean_registry_failures"] != 1 || m["clean_registry_last_run_exit_status"] != ExitError {
		t.Errorf("failed dry run: %v", m)
	}

	// A run that stops before its plan (no such storage) too.
	if code, _, _ := cli("--root", filepath.Join(root, "nosuch"), "-q", "--metrics-file", prom); code != ExitError {
		t.Fatalf("exit %d, want %d", code, ExitError)
	}
	if m = metricsOf(t, prom); m["clean_registry_last_run_success"] != 0 {
		t.Errorf("stopped run: %v", m)
	}
}

func TestMetricsFlagsChecked(t *testing.T) {
	code, _, stderr := cli("--root", t.TempDir(), "--metrics-file", "/nonexistent/dir/x.prom")
	if code != ExitUsage || !strings.Contains(stderr, "/nonexistent/dir does not exist") || strings.Contains(stderr, "WARNING") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	code, _, stderr = cli("--root", t.TempDir(), "--pushgateway", "")
	if code != ExitUsage || !strings.Contains(stderr, "--pushgateway needs a URL") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	// --help writes no metrics.
	prom := filepath.Join(t.TempDir(), "x.prom")
	if code, _, _ := cli("--help", "--metrics-file", prom); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(prom); !os.IsNotExist(err) {
		t.Errorf("--help wrote metrics: %v", err)
	}
}

// A push that fails warns and keeps the run's exit status.
func TestPushFailureWarns(t *testing.T) {
	code, _, stderr := cli("--root", sample(t), "-n", "-q", "--pushgateway", "http://127.0.0.1:1")
	if code != ExitOK || !strings.Contains(stderr, "WARNING: pushing the metrics to http://127.0.0.1:1") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
