// Package s3 tests clean-registry against a real S3 server (versitygw on loopback,
// or the server named by CLEAN_REGISTRY_S3_ENDPOINT).
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	s3backend "github.com/clean-registry/clean-registry/v2/internal/storage/s3"
	"github.com/clean-registry/clean-registry/v2/test/s3/s3test"
)

var server s3test.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	server.Shutdown()
	os.Exit(code)
}

var bucketSeq atomic.Int64

// newBucket makes a fresh bucket for one test.
func newBucket(t *testing.T, srv *s3test.Server) string {
	t.Helper()
	name := fmt.Sprintf("cr-%d-%d", time.Now().UnixNano()%1e9, bucketSeq.Add(1))
	if err := srv.CreateBucket(context.Background(), name); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

// putAll writes objects (key -> content) concurrently.
func putAll(t *testing.T, srv *s3test.Server, bucket string, objs map[string]string) {
	t.Helper()
	client := srv.Client()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(32)
	for k, v := range objs {
		g.Go(func() error {
			_, err := client.PutObject(ctx, &awss3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(v)})
			if err != nil {
				return fmt.Errorf("put %s: %w", k, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("putting %d objects into %s: %v", len(objs), bucket, err)
	}
}

// listKeys returns every key in the bucket, sorted.
func listKeys(t testing.TB, srv *s3test.Server, bucket string) []string {
	t.Helper()
	keys := slices.Collect(maps.Keys(listSizes(t, srv, bucket)))
	sort.Strings(keys)
	return keys
}

// listSizes lists the bucket's objects with their sizes.
func listSizes(t testing.TB, srv *s3test.Server, bucket string) map[string]int64 {
	t.Helper()
	sizes := map[string]int64{}
	pages := awss3.NewListObjectsV2Paginator(srv.Client(), &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		out, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing bucket %s: %v", bucket, err)
		}
		for _, o := range out.Contents {
			sizes[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	return sizes
}

func digestOf(s string) layout.Digest {
	return layout.Digest(sha256.Sum256([]byte(s)))
}

func link(d layout.Digest) string { return d.String() }

func walkAll(t *testing.T, b storage.Backend, dir string) map[string]storage.File {
	t.Helper()
	var mu sync.Mutex
	got := map[string]storage.File{}
	err := b.Walk(context.Background(), dir, func(f storage.File) error {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := got[f.Path]; dup {
			return fmt.Errorf("%s walked twice", f.Path)
		}
		got[f.Path] = f
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s on %s: %v", dir, b, err)
	}
	return got
}

func open(t *testing.T, srv *s3test.Server, bucket, root string, jobs int) *s3backend.Backend {
	t.Helper()
	b, err := s3backend.New(context.Background(), srv.DriverParams(bucket, root), jobs)
	if err != nil {
		t.Fatalf("opening s3 backend on bucket %s, root %q: %v", bucket, root, err)
	}
	return b
}

func TestBackendContract(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)
	const root = "/registry/"
	const prefix = "registry/"

	objs := map[string]string{}
	storagePaths := map[string]string{} // storage path -> content, what the backend must see
	add := func(p, content string) {
		objs[prefix+p] = content
		storagePaths[p] = content
	}
	var blobs []layout.Digest
	for i := 0; i < 40; i++ {
		content := fmt.Sprintf("blob %d %s", i, strings.Repeat("x", i))
		d := digestOf(content)
		blobs = append(blobs, d)
		add(layout.BlobData(d), content)
	}
	repos := []string{"library/alpine", "library/alpine/nested", "team/app", "solo"}
	for _, r := range repos {
		for _, d := range blobs[:5] {
			add(layout.LayerDir(r, d)+"/link", link(d))
		}
		add(layout.RevisionDir(r, blobs[5])+"/link", link(blobs[5]))
		add(layout.TagCurrentLink(r, "latest"), link(blobs[5]))
		add(layout.TagIndexDir(r, "latest", blobs[5])+"/link", link(blobs[5]))
	}
	// A big repository: more keys under one prefix than a listing page holds.
	for i := 0; i < 1100; i++ {
		d := digestOf(fmt.Sprintf("big %d", i))
		add(layout.LayerDir("big", d)+"/link", link(d))
	}
	// Objects lying directly in a directory whose subdirectories a walk lists in groups
	// (the listing of "sha256/0", the 0x directories, matches "sha256/0stray" too):
	// walked once all the same.
	const strays = "0123456789abcdef"
	for _, c := range strays {
		add("docker/registry/v2/blobs/sha256/"+string(c)+"stray", "stray")
	}
	add("docker/registry/v2/repositories/solo-note", "stray")
	// Keys the backend must never see or touch: outside the root, a sibling prefix.
	objs["other/docker/registry/v2/blobs/sha256/00/x/data"] = "outside"
	objs["registry2/docker/registry/v2/repositories/x/_layers/sha256/aa/link"] = "sibling"
	putAll(t, srv, bucket, objs)

	for _, jobs := range []int{1, 8, 64} {
		t.Run(fmt.Sprintf("walk jobs=%d", jobs), func(t *testing.T) {
			b := open(t, srv, bucket, root, jobs)
			if b.String() != "s3://"+bucket+"/registry" {
				t.Errorf("String() = %q, want %q", b.String(), "s3://"+bucket+"/registry")
			}
			got := walkAll(t, b, layout.V2Dir)
			if len(got) != len(storagePaths) {
				t.Errorf("walked %d files, want %d", len(got), len(storagePaths))
			}
			for p, content := range storagePaths {
				f, ok := got[p]
				if !ok {
					t.Errorf("not walked: %s", p)
					continue
				}
				sum := md5.Sum([]byte(content))
				if f.Size != int64(len(content)) || f.ETag != hex.EncodeToString(sum[:]) || f.ModTime.IsZero() || f.Irregular {
					t.Errorf("%s: size %d etag %q time %v irregular %v; want size %d etag %x",
						p, f.Size, f.ETag, f.ModTime, f.Irregular, len(content), sum)
				}
			}
			blobsWalked := walkAll(t, b, layout.BlobsDir)
			if len(blobsWalked) != len(blobs)+len(strays) {
				t.Errorf("blobs walk: %d files, want %d", len(blobsWalked), len(blobs)+len(strays))
			}
			repo := walkAll(t, b, layout.RepoDir("library/alpine"))
			if len(repo) != 2*8 { // its own files and the nested repository's
				t.Errorf("repository walk: %d files, want 16", len(repo))
			}
			if missing := walkAll(t, b, "docker/registry/v2/nothing"); len(missing) != 0 {
				t.Errorf("walk of a missing dir found %d files", len(missing))
			}
			req := b.Requests()
			if req["ListObjectsV2"] == 0 {
				t.Errorf("requests not counted: %v", req)
			}
		})
	}

	b := open(t, srv, bucket, root, 4)

	t.Run("walk stops on error", func(t *testing.T) {
		stop := errors.New("stop")
		var calls atomic.Int64
		err := b.Walk(ctx, layout.V2Dir, func(storage.File) error {
			calls.Add(1)
			return stop
		})
		if !errors.Is(err, stop) {
			t.Fatalf("Walk returned %v, want the callback's error", err)
		}
	})

	t.Run("read and stat", func(t *testing.T) {
		p := layout.TagCurrentLink("team/app", "latest")
		data, err := b.ReadFile(ctx, p, 1<<20)
		if err != nil || string(data) != link(blobs[5]) {
			t.Fatalf("ReadFile(%s) = %q, %v; want %q", p, data, err, link(blobs[5]))
		}
		f, err := b.Stat(ctx, layout.BlobData(blobs[3]))
		content := storagePaths[layout.BlobData(blobs[3])]
		if err != nil || f.Size != int64(len(content)) || f.ModTime.IsZero() || f.ETag == "" {
			t.Fatalf("Stat = %+v, %v; want size %d, a modification time and an ETag", f, err, len(content))
		}
		if _, err := b.ReadFile(ctx, "docker/registry/v2/none/link", 1<<20); !storage.IsNotExist(err) {
			t.Errorf("ReadFile of a missing key: %v, want not-exist", err)
		}
		if _, err := b.Stat(ctx, "docker/registry/v2/none/link"); !storage.IsNotExist(err) {
			t.Errorf("Stat of a missing key: %v, want not-exist", err)
		}
		if _, err := b.ReadFile(ctx, "../other/x", 1<<20); err == nil {
			t.Error("ReadFile accepted a path leaving the root")
		}
	})

	t.Run("dir exists", func(t *testing.T) {
		for dir, want := range map[string]bool{
			layout.V2Dir:                  true,
			layout.RepoDir("solo"):        true,
			layout.RepoDir("sol"):         false, // a prefix of a name is not a directory
			"docker/registry/v2/missing":  false,
			layout.RepoDir("team/app/_x"): false,
		} {
			got, err := b.DirExists(ctx, dir)
			if err != nil || got != want {
				t.Errorf("DirExists(%s) = %v, %v; want %v", dir, got, err, want)
			}
		}
	})

	t.Run("nothing outside the root touched", func(t *testing.T) {
		keys := listKeys(t, srv, bucket)
		for _, k := range []string{"other/docker/registry/v2/blobs/sha256/00/x/data",
			"registry2/docker/registry/v2/repositories/x/_layers/sha256/aa/link"} {
			if i := sort.SearchStrings(keys, k); i == len(keys) || keys[i] != k {
				t.Errorf("%s is gone", k)
			}
		}
	})
}

func TestBackendDelete(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)

	objs := map[string]string{}
	var units []storage.Unit
	// 1,200 blobs (and 10 missing): two DeleteObjects batches.
	for i := 0; i < 1200; i++ {
		d := digestOf(fmt.Sprintf("doomed %d", i))
		objs[layout.BlobData(d)] = "x"
		units = append(units, storage.Unit{Dir: layout.BlobDir(d), Files: []string{"data"}})
	}
	// Units already gone count as deleted.
	for i := 0; i < 10; i++ {
		d := digestOf(fmt.Sprintf("never there %d", i))
		units = append(units, storage.Unit{Dir: layout.BlobDir(d), Files: []string{"data"}})
	}
	kept := digestOf("kept")
	objs[layout.BlobData(kept)] = "kept"
	// A repository removal: its reserved directories, contents unknown; the nested
	// repository and a sibling name sharing its prefix stay.
	for _, p := range []string{
		layout.RepoDir("app") + "/_uploads/u1/data",
		layout.RepoDir("app") + "/_uploads/u1/startedat",
		layout.RepoDir("app") + "/_manifests/tags/v1/current/link",
		layout.RepoDir("app") + "/_layers/sha256/aa/link",
		layout.RepoDir("app/nested") + "/_layers/sha256/bb/link",
		layout.RepoDir("app2") + "/_layers/sha256/cc/link",
		layout.RepoDir("app") + "/_manifestsX/keep",
	} {
		objs[p] = "y"
	}
	putAll(t, srv, bucket, objs)
	repoUnits := []storage.Unit{
		{Dir: layout.RepoDir("app") + "/_uploads"},
		{Dir: layout.RepoDir("app") + "/_layers"},
		{Dir: layout.RepoDir("app") + "/_manifests"},
	}

	// One job: full 1,000-key batches (more jobs split batches to spread the work).
	b := open(t, srv, bucket, "", 1)
	before := b.Requests()
	if err := b.Delete(ctx, units); err != nil {
		t.Fatalf("deleting %d blob units: %v", len(units), err)
	}
	if err := b.Delete(ctx, repoUnits); err != nil {
		t.Fatalf("deleting the repository app: %v", err)
	}
	after := b.Requests()
	if n := after["DeleteObjects"] - before["DeleteObjects"]; n != 3 {
		t.Errorf("DeleteObjects requests: %d, want 2 for 1,210 keys and 1 for the repository", n)
	}
	want := []string{
		layout.BlobData(kept),
		layout.RepoDir("app") + "/_manifestsX/keep",
		layout.RepoDir("app/nested") + "/_layers/sha256/bb/link",
		layout.RepoDir("app2") + "/_layers/sha256/cc/link",
	}
	sort.Strings(want)
	if got := listKeys(t, srv, bucket); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("left after deletion:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A rerun converges: everything is already gone.
	if err := b.Delete(ctx, append(units, repoUnits...)); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if err := b.Delete(ctx, []storage.Unit{{Dir: ""}}); err == nil {
		t.Error("deleting the storage root was accepted")
	}
	if err := b.Delete(ctx, []storage.Unit{{Dir: "docker/registry/v2/blobs", Files: []string{"../../x"}}}); err == nil {
		t.Error("a file leaving its unit was accepted")
	}
	if err := b.PruneDirs(ctx, []string{layout.RepoDir("app")}); err != nil {
		t.Errorf("PruneDirs(%s): %v", layout.RepoDir("app"), err)
	}
	req := b.Requests()
	t.Logf("requests: %v", req)
	for _, op := range []string{"ListObjectsV2", "DeleteObjects"} {
		if req[op] == 0 {
			t.Errorf("no %s counted: %v", op, req)
		}
	}
}

func TestBackendOpenErrors(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)

	p := srv.DriverParams("no-such-bucket-here", "")
	if _, err := s3backend.New(ctx, p, 2); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: got %v, want an error saying it does not exist", err)
	}
	p = srv.DriverParams(bucket, "")
	p["secretkey"] = "wrong-secret"
	if _, err := s3backend.New(ctx, p, 2); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("wrong secret: got %v, want an error naming the credentials", err)
	}
	p = srv.DriverParams(bucket, "")
	p["accesskey"] = "nobody"
	if _, err := s3backend.New(ctx, p, 2); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("unknown access key: got %v, want an error naming the credentials", err)
	}
	// String booleans, as REGISTRY_STORAGE_S3_* overrides give them.
	p = srv.DriverParams(bucket, "")
	p["secure"], p["forcepathstyle"] = "false", "true"
	p["regionendpoint"] = strings.TrimPrefix(srv.Endpoint, "http://")
	b, err := s3backend.New(ctx, p, 2)
	if err != nil {
		t.Fatalf("endpoint without scheme, secure false: %v", err)
	}
	if ok, err := b.DirExists(ctx, layout.V2Dir); err != nil || ok {
		t.Errorf("empty bucket: DirExists(%s) = %v, %v; want false, nil", layout.V2Dir, ok, err)
	}
	if !bytes.Equal([]byte(b.String()), []byte("s3://"+bucket)) {
		t.Errorf("String() = %q, want %q", b.String(), "s3://"+bucket)
	}
}
