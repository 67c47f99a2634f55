package s3

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/bench/gen"
	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	s3backend "github.com/clean-registry/clean-registry/v2/internal/storage/s3"
	"github.com/clean-registry/clean-registry/v2/test/harness"
	"github.com/clean-registry/clean-registry/v2/test/s3/s3test"
)

// BenchmarkVersusUpstreamGC compares, on identical copies of a generated registry tree
// (50 repositories x 10 manifests, about 7,500 objects) in versitygw buckets:
// upstream `registry garbage-collect --delete-untagged` (v3.1.2, s3 driver) and
// clean-registry's S3 backend (a real run, grace 0), both counted by the server's
// access log; and the floor: the keys clean-registry deleted, deleted again on a third
// copy in parallel DeleteObjects batches. It takes about three minutes:
//
//	go test ./test/s3/ -run '^$' -bench VersusUpstreamGC -benchtime 1x
func BenchmarkVersusUpstreamGC(b *testing.B) {
	for i := 0; i < b.N; i++ {
		compareOnce(b)
	}
}

func compareOnce(b *testing.B) {
	ctx := context.Background()
	work := b.TempDir()
	accessLog := filepath.Join(work, "access.log")
	srv, err := s3test.StartLogged(filepath.Join(work, "s3"), accessLog)
	if err != nil {
		harness.Unavailable(b, "no S3 server: %v", err)
	}
	defer srv.Close()
	harness.RegistryBinaryT(b)

	tree := filepath.Join(work, "tree")
	cfg := gen.Presets["medium"]
	cfg.Repos, cfg.Manifests = 50, 10
	if _, err := gen.Generate(ctx, tree, cfg); err != nil {
		b.Fatalf("generating the registry tree: %v", err)
	}
	const prefix = "reg/"
	client := srv.Client()
	for _, bucket := range []string{"upstream", "clean", "floor"} {
		uploadTree(b, srv, tree, bucket, prefix)
	}
	objects := len(listKeys(b, srv, "floor"))
	requests := func() int {
		f, err := os.Open(accessLog)
		if err != nil {
			b.Fatalf("the S3 server's access log: %v", err)
		}
		defer f.Close()
		n := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			n++
		}
		return n
	}

	config := filepath.Join(work, "config.yml")
	if err := harness.WriteConfig(config, harness.Config{Storage: map[string]any{"s3": srv.DriverParams("upstream", "/reg")}}); err != nil {
		b.Fatalf("writing upstream's config.yml: %v", err)
	}
	before := requests()
	start := time.Now()
	if _, err := harness.GarbageCollect(ctx, config, "--delete-untagged"); err != nil {
		b.Fatalf("upstream garbage-collect: %v", err)
	}
	upstreamTime, upstreamRequests := time.Since(start), requests()-before

	before = requests()
	start = time.Now()
	backend, err := s3backend.New(ctx, srv.DriverParams("clean", "/reg"), 16)
	if err != nil {
		b.Fatalf("opening the s3 backend on bucket clean: %v", err)
	}
	rep, err := clean.Run(ctx, backend, clean.Options{Jobs: 16, UploadAge: 24 * time.Hour})
	if err != nil {
		b.Fatalf("clean-registry on bucket clean: %v", err)
	}
	cleanTime, cleanRequests := time.Since(start), requests()-before

	left := map[string]bool{}
	for _, k := range listKeys(b, srv, "clean") {
		left[k] = true
	}
	var gone []string
	for _, k := range listKeys(b, srv, "floor") {
		if !left[k] {
			gone = append(gone, k)
		}
	}
	start = time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for s := 0; s < len(gone); s += 100 {
		batch := gone[s:min(s+100, len(gone))]
		g.Go(func() error {
			ids := make([]types.ObjectIdentifier, len(batch))
			for i, k := range batch {
				ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
			}
			_, err := client.DeleteObjects(gctx, &awss3.DeleteObjectsInput{Bucket: aws.String("floor"),
				Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("deleting the same keys on bucket floor: %v", err)
	}
	floorTime := time.Since(start)

	// The same objects left, but for what upstream never removes: tag history entries,
	// and a repository's layer links to blobs only other repositories still use.
	upstreamLeft := map[string]bool{}
	for _, k := range listKeys(b, srv, "upstream") {
		upstreamLeft[k] = true
		if left[k] {
			continue
		}
		info := layout.Classify(strings.TrimPrefix(k, prefix))
		switch {
		case info.Kind == layout.KindTagIndexLink:
		case info.Kind == layout.KindLayerLink && left[prefix+layout.BlobData(info.Digest)]:
		default:
			b.Errorf("deleted by clean-registry, kept by upstream: %s", k)
		}
	}
	for k := range left {
		if !upstreamLeft[k] {
			b.Errorf("kept by clean-registry, deleted by upstream: %s", k)
		}
	}

	b.Logf("%d objects; upstream %.1fs, %d requests, %d objects left; clean-registry %.1fs (scan %.2fs, plan %.2fs, "+
		"deletions %.2fs), %d requests %v, %d objects left; deleting the same %d keys alone: %.1fs",
		objects, upstreamTime.Seconds(), upstreamRequests, len(upstreamLeft),
		cleanTime.Seconds(), rep.Phases.Scan, rep.Phases.Plan, rep.Phases.Delete, cleanRequests, rep.Requests,
		len(left), len(gone), floorTime.Seconds())
	b.ReportMetric(upstreamTime.Seconds()/cleanTime.Seconds(), "x-faster")
	b.ReportMetric(float64(upstreamRequests)/float64(cleanRequests), "x-fewer-requests")
	b.ReportMetric(cleanTime.Seconds()/floorTime.Seconds(), "x-delete-floor")
}

// uploadTree creates bucket and puts every file of the tree under prefix.
func uploadTree(b testing.TB, srv *s3test.Server, tree, bucket, prefix string) {
	b.Helper()
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, bucket); err != nil {
		b.Fatalf("creating bucket %s: %v", bucket, err)
	}
	client := srv.Client()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	walkErr := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		g.Go(func() error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = client.PutObject(gctx, &awss3.PutObjectInput{Bucket: aws.String(bucket),
				Key: aws.String(prefix + filepath.ToSlash(rel)), Body: bytes.NewReader(data)})
			return err
		})
		return nil
	})
	if err := g.Wait(); err != nil {
		b.Fatalf("uploading the tree to bucket %s: %v", bucket, err)
	}
	if walkErr != nil {
		b.Fatalf("walking the tree to upload: %v", walkErr)
	}
}
