package s3

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	s3backend "github.com/clean-registry/clean-registry/v2/internal/storage/s3"
	"github.com/clean-registry/clean-registry/v2/test/harness"
	"github.com/clean-registry/clean-registry/v2/test/s3/s3test"
)

// BenchmarkQuarantineCost measures what moving instead of deleting costs on versitygw:
// the same generated tree as BenchmarkVersusUpstreamGC (about 7,500 objects) in three
// buckets, cleaned by a plain real run, an online run (--online --settle 0s: the moves,
// the verification, the purge) and a run that keeps what it deletes
// (--keep-deleted 7d: the moves only). It reports each run's seconds and requests
// by operation, and the ratios to the plain run. About a minute:
//
//	go test ./test/s3/ -run '^$' -bench QuarantineCost -benchtime 1x
func BenchmarkQuarantineCost(b *testing.B) {
	for i := 0; i < b.N; i++ {
		quarantineCostOnce(b)
	}
}

func quarantineCostOnce(b *testing.B) {
	ctx := context.Background()
	work := b.TempDir()
	srv, err := s3test.Start(filepath.Join(work, "s3"))
	if err != nil {
		harness.Unavailable(b, "no S3 server: %v", err)
	}
	defer srv.Close()

	tree := filepath.Join(work, "tree")
	cfg := gen.Presets["medium"]
	cfg.Repos, cfg.Manifests = 50, 10
	if _, err := gen.Generate(ctx, tree, cfg); err != nil {
		b.Fatalf("generating the registry tree: %v", err)
	}
	modes := []struct {
		name string
		opts clean.Options
	}{
		{"plain", clean.Options{}},
		{"online", clean.Options{Online: &clean.Online{}}},
		{"keep-deleted", clean.Options{KeepDeleted: 7 * 24 * time.Hour}},
	}
	for _, m := range modes {
		uploadTree(b, srv, tree, m.name, "reg/")
	}
	var plainTime float64
	var plainRequests int64
	for _, m := range modes {
		backend, err := s3backend.New(ctx, srv.DriverParams(m.name, "/reg"), 16)
		if err != nil {
			b.Fatalf("opening the s3 backend on bucket %s: %v", m.name, err)
		}
		opts := m.opts
		opts.Jobs, opts.UploadAge = 16, 24*time.Hour
		start := time.Now()
		rep, err := clean.Run(ctx, backend, opts)
		if err != nil {
			b.Fatalf("clean-registry (%s): %v", m.name, err)
		}
		took := time.Since(start).Seconds()
		total := int64(0)
		for _, n := range rep.Requests {
			total += n
		}
		if m.name == "plain" {
			plainTime, plainRequests = took, total
		}
		b.Logf("%s: %.2fs (scan %.2fs, deletions %.2fs%s), %d deletions, %d requests: %s; %.2fx the time and %.2fx the requests of the plain run",
			m.name, took, rep.Phases.Scan, rep.Phases.Delete, onlinePhases(rep), rep.Applied, total, byOperation(rep.Requests),
			took/plainTime, float64(total)/float64(plainRequests))
		b.ReportMetric(took/plainTime, m.name+"-x-time")
		b.ReportMetric(float64(total)/float64(plainRequests), m.name+"-x-requests")
	}
}

func onlinePhases(rep *report.Report) string {
	if rep.Online == nil {
		return ""
	}
	o := rep.Online
	return fmt.Sprintf(", settle %.2fs, verification %.2fs, purge %.2fs", o.SettleSeconds, o.VerifySeconds, o.PurgeSeconds)
}

func byOperation(requests map[string]int64) string {
	ops := make([]string, 0, len(requests))
	for op, n := range requests {
		ops = append(ops, fmt.Sprintf("%d %s", n, op))
	}
	sort.Strings(ops)
	return strings.Join(ops, ", ")
}
