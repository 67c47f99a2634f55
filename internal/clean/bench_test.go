package clean

import (
	"context"
	"testing"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/plan"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
)

// The hot paths on a generated tree (the benchmark's "small" preset): go test
// -bench . ./internal/clean. Whole-tool timings against upstream are bench/'s job.

// benchTree generates the tree once per benchmark; b.Loop does not time it.
func benchTree(b *testing.B) string {
	root := b.TempDir()
	if _, err := gen.Generate(context.Background(), root, gen.Presets["small"]); err != nil {
		b.Fatal(err)
	}
	return root
}

func BenchmarkScan(b *testing.B) {
	root := benchTree(b)
	be, err := fs.New(root, 16)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := inventory.Scan(context.Background(), be, 16); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlan(b *testing.B) {
	be, err := fs.New(benchTree(b), 16)
	if err != nil {
		b.Fatal(err)
	}
	inv, err := inventory.Scan(context.Background(), be, 16)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(inv.Files), "files")
	for b.Loop() {
		plan.Make(inv, plan.Policy{})
	}
}

func BenchmarkDryRun(b *testing.B) {
	be, err := fs.New(benchTree(b), 16)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Run(context.Background(), be, Options{DryRun: true, Jobs: 16}); err != nil {
			b.Fatal(err)
		}
	}
}
