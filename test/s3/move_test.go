package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
	"github.com/clean-registry/clean-registry/v2/internal/storage/gcs"
	s3backend "github.com/clean-registry/clean-registry/v2/internal/storage/s3"
	"github.com/clean-registry/clean-registry/v2/test/harness"
	"github.com/clean-registry/clean-registry/v2/test/s3/s3test"
)

// getObject reads an object whole, "" and false when it is missing.
func getObject(t *testing.T, srv *s3test.Server, bucket, key string) (string, bool) {
	t.Helper()
	out, err := srv.Client().GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchKey" {
			return "", false
		}
		t.Fatalf("reading %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return string(data), true
}

// conditionalCopyHonoured sends a conditional CopyObject onto an existing key and
// reports whether the server refused it, as it should.
func conditionalCopyHonoured(t *testing.T, srv *s3test.Server, bucket string) bool {
	t.Helper()
	ctx := context.Background()
	putAll(t, srv, bucket, map[string]string{"probe/a": "a", "probe/b": "b"})
	_, err := srv.Client().CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String("probe/b"),
		CopySource: aws.String(bucket + "/probe/a"), IfNoneMatch: aws.String("*")})
	var re *awshttp.ResponseError
	honoured := errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
	if !honoured && err != nil {
		t.Logf("a conditional CopyObject onto an existing key: %v", err)
	}
	b, _ := getObject(t, srv, bucket, "probe/b")
	t.Logf("the server honours If-None-Match on CopyObject: %v (destination now %q)", honoured, b)
	for _, k := range []string{"probe/a", "probe/b"} {
		srv.Client().DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
	}
	return honoured
}

// TestBackendMove moves blobs (files named) and repository directories (files
// listed) into a quarantine and back on a real S3 server: a missing source counts as
// moved, an existing destination is kept and its source removed, nothing outside the
// units moves, and the requests are counted.
func TestBackendMove(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)
	honoured := conditionalCopyHonoured(t, srv, bucket)
	const root, prefix = "/registry/", "registry/"
	const quarantine = "clean-registry/quarantine/run1/"

	objs := map[string]string{}
	var moves []storage.Move
	want := map[string]string{} // key -> content after the move
	var blobs []layout.Digest
	for i := range 40 {
		content := fmt.Sprintf("blob %d %s", i, strings.Repeat("x", i))
		d := digestOf(content)
		blobs = append(blobs, d)
		objs[prefix+layout.BlobData(d)] = content
		moves = append(moves, storage.Move{Unit: storage.Unit{Dir: layout.BlobDir(d), Files: []string{"data"}},
			To: quarantine + layout.BlobDir(d)})
		want[prefix+quarantine+layout.BlobData(d)] = content
	}
	// In the quarantine already (an earlier run that crashed after its copies): kept.
	objs[prefix+quarantine+layout.BlobData(blobs[0])] = "the earlier copy"
	want[prefix+quarantine+layout.BlobData(blobs[0])] = "the earlier copy"
	// Gone already: moved.
	gone := digestOf("gone")
	moves = append(moves, storage.Move{Unit: storage.Unit{Dir: layout.BlobDir(gone), Files: []string{"data"}},
		To: quarantine + layout.BlobDir(gone)})
	// A repository's directories, contents unknown: listed, the tree moved whole.
	for _, p := range []string{
		"/_uploads/u1/data", "/_uploads/u1/startedat", "/_uploads/u1/hashstates/sha256/0",
		"/_manifests/tags/v1/current/link", "/_manifests/tags/v1/index/sha256/aa/link",
		"/_manifests/revisions/sha256/aa/link", "/_layers/sha256/bb/link",
	} {
		k := layout.RepoDir("app") + p
		objs[prefix+k] = "repo " + p
		want[prefix+quarantine+k] = "repo " + p
	}
	for _, d := range []string{"_uploads", "_manifests", "_layers"} {
		dir := layout.RepoDir("app") + "/" + d
		moves = append(moves, storage.Move{Unit: storage.Unit{Dir: dir}, To: quarantine + dir})
	}
	moves = append(moves, storage.Move{Unit: storage.Unit{Dir: layout.RepoDir("never") + "/_uploads"},
		To: quarantine + layout.RepoDir("never") + "/_uploads"})
	// What must stay: a blob not moved, the nested repository, a name sharing the
	// prefix, a directory name sharing a unit's prefix, keys outside the root.
	for k, v := range map[string]string{
		prefix + layout.BlobData(digestOf("kept")):                        "kept",
		prefix + layout.RepoDir("app/nested") + "/_layers/sha256/cc/link": "nested",
		prefix + layout.RepoDir("app2") + "/_layers/sha256/dd/link":       "app2",
		prefix + layout.RepoDir("app") + "/_uploadsX/keep":                "uploadsX",
		"other/" + layout.BlobData(blobs[1]):                              "outside",
		"registry2/" + layout.RepoDir("app") + "/_uploads/u1/data":        "sibling root",
	} {
		objs[k] = v
		want[k] = v
	}
	putAll(t, srv, bucket, objs)

	b := open(t, srv, bucket, root, 8)
	if err := b.Move(ctx, moves); err != nil {
		t.Fatalf("moving %d units: %v", len(moves), err)
	}
	checkBucket(t, srv, bucket, want)

	req := b.Requests()
	t.Logf("requests: %v", req)
	files := 40 + 1 + 7 // blobs, the one gone, the repository's files
	copies := files + 1 // and the probe's
	heads := 0
	if !honoured {
		copies-- // the existing destination is seen first, not copied over
		heads = files
	}
	if req["CopyObject"] != int64(copies) || req["HeadObject"] != int64(heads) {
		t.Errorf("%d CopyObject, %d HeadObject; want %d and %d (the server honours conditional copies: %v)",
			req["CopyObject"], req["HeadObject"], copies, heads, honoured)
	}
	// 47 sources in batches spread over 8 jobs, at least 100 keys a batch: one.
	if req["DeleteObjects"] != 1 {
		t.Errorf("%d DeleteObjects, want 1", req["DeleteObjects"])
	}

	// A rerun converges; moving back restores the registry's tree, except the blob
	// whose quarantined copy was the earlier one.
	if err := b.Move(ctx, moves); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	checkBucket(t, srv, bucket, want)
	var back []storage.Move
	for _, m := range moves {
		back = append(back, storage.Move{Unit: storage.Unit{Dir: m.To, Files: m.Files}, To: m.Dir})
	}
	if err := b.Move(ctx, back); err != nil {
		t.Fatalf("moving back: %v", err)
	}
	restored := map[string]string{}
	for k, v := range objs {
		restored[k] = v
	}
	delete(restored, prefix+quarantine+layout.BlobData(blobs[0]))
	restored[prefix+layout.BlobData(blobs[0])] = "the earlier copy"
	checkBucket(t, srv, bucket, restored)

	for _, bad := range []storage.Move{
		{Unit: storage.Unit{Dir: "", Files: []string{"x"}}, To: quarantine},
		{Unit: storage.Unit{Dir: layout.BlobsDir}, To: layout.BlobsDir + "/q"},
		{Unit: storage.Unit{Dir: layout.BlobsDir, Files: []string{"../../../other/x"}}, To: quarantine},
		{Unit: storage.Unit{Dir: layout.BlobsDir}, To: "../other/q"},
	} {
		if err := b.Move(ctx, []storage.Move{bad}); err == nil {
			t.Errorf("moving %q (files %q) to %q was accepted", bad.Dir, bad.Files, bad.To)
		}
	}
	checkBucket(t, srv, bucket, restored)
}

// A move with UnmodifiedSince leaves in place what was written after it, on the
// server's clock: named files (the copy's x-amz-copy-source-if-unmodified-since) and
// listed ones (the listing's time, then the copy's condition). The times are an hour
// away from the writes, so that no clock resolution plays a part.
func TestBackendMoveUnmodifiedSince(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)
	const root, prefix = "/registry/", "registry/"
	const quarantine = "clean-registry/quarantine/run1/"
	tag := layout.RepoDir("app") + "/_manifests/tags/v1/current"
	rev := layout.RepoDir("app") + "/_manifests/revisions/sha256/aa"
	web := layout.RepoDir("web") + "/_manifests"
	objs := map[string]string{
		prefix + tag + "/link":                        "tag",
		prefix + rev + "/link":                        "revision",
		prefix + web + "/tags/v1/current/link":        "web tag",
		prefix + web + "/revisions/sha256/bb/link":    "web revision",
		prefix + layout.RepoDir("old") + "/_layers/x": "old layer",
	}
	putAll(t, srv, bucket, objs)
	b := open(t, srv, bucket, root, 4)
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	moves := []storage.Move{
		{Unit: storage.Unit{Dir: tag, Files: []string{"link"}}, To: quarantine + tag, Fresh: true, UnmodifiedSince: past},
		{Unit: storage.Unit{Dir: rev, Files: []string{"link"}}, To: quarantine + rev, Fresh: true, UnmodifiedSince: future},
		{Unit: storage.Unit{Dir: web}, To: quarantine + web, Fresh: true, UnmodifiedSince: past},
		{Unit: storage.Unit{Dir: layout.RepoDir("old")}, To: quarantine + layout.RepoDir("old"), Fresh: true, UnmodifiedSince: future},
	}
	if err := b.Move(ctx, moves); err != nil {
		t.Fatalf("move: %v", err)
	}
	checkBucket(t, srv, bucket, map[string]string{
		prefix + tag + "/link":                                     "tag", // written after past: stays
		prefix + quarantine + rev + "/link":                        "revision",
		prefix + web + "/tags/v1/current/link":                     "web tag",
		prefix + web + "/revisions/sha256/bb/link":                 "web revision",
		prefix + quarantine + layout.RepoDir("old") + "/_layers/x": "old layer",
	})
	// The named file's condition was the copy's own: no HEAD for the listed ones.
	if req := b.Requests(); req["CopyObject"] != 3 {
		t.Logf("requests: %v", req)
		t.Errorf("%d CopyObject, want 3: the tag (refused), the revision, the old layer", req["CopyObject"])
	}
}

// checkBucket compares the whole bucket, keys and contents, with want.
func checkBucket(t *testing.T, srv *s3test.Server, bucket string, want map[string]string) {
	t.Helper()
	keys := listKeys(t, srv, bucket)
	var diff []string
	got := map[string]bool{}
	for _, k := range keys {
		got[k] = true
		w, ok := want[k]
		if !ok {
			diff = append(diff, "unexpected "+k)
			continue
		}
		if c, _ := getObject(t, srv, bucket, k); c != w {
			diff = append(diff, fmt.Sprintf("%s holds %q, want %q", k, c, w))
		}
	}
	for k := range want {
		if !got[k] {
			diff = append(diff, "missing "+k)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("bucket %s:\n%s", bucket, strings.Join(diff, "\n"))
	}
}

// The multipart copy against the real server, with the 5 GiB threshold lowered to a
// few MiB: versitygw supports UploadPartCopy with byte ranges. Parts are 5 MiB, S3's
// smallest but for the last.
func TestBackendMoveMultipart(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)
	oldT, oldP := s3backend.MultipartCopyThreshold, s3backend.MultipartCopyPartSize
	s3backend.MultipartCopyThreshold, s3backend.MultipartCopyPartSize = 6<<20, 5<<20
	t.Cleanup(func() { s3backend.MultipartCopyThreshold, s3backend.MultipartCopyPartSize = oldT, oldP })

	big := make([]byte, 12<<20+12345) // 3 parts
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	d := layout.Digest(sha256.Sum256(big))
	src, dst := layout.BlobData(d), "q/"+layout.BlobData(d)
	client := srv.Client()
	_, err := client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(src),
		Body: bytes.NewReader(big), ContentType: aws.String("application/octet-stream")})
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, srv, bucket, "", 4)
	// Files not named: the listing tells the size, over the threshold.
	if err := b.Move(ctx, []storage.Move{{Unit: storage.Unit{Dir: layout.BlobDir(d)}, To: "q/" + layout.BlobDir(d)}}); err != nil {
		t.Fatalf("moving a %d-byte blob in parts: %v", len(big), err)
	}
	got, ok := getObject(t, srv, bucket, dst)
	if !ok || sha256.Sum256([]byte(got)) != [32]byte(d) {
		t.Fatalf("the copy in parts: %d bytes, not the blob's content", len(got))
	}
	if _, ok := getObject(t, srv, bucket, src); ok {
		t.Error("the source is still there")
	}
	head, err := client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(dst)})
	if err != nil || aws.ToString(head.ContentType) != "application/octet-stream" {
		t.Errorf("the copy's content type: %v, %v", head, err)
	}
	req := b.Requests()
	t.Logf("requests: %v", req)
	if req["CreateMultipartUpload"] != 1 || req["UploadPartCopy"] != 3 || req["CompleteMultipartUpload"] != 1 ||
		req["AbortMultipartUpload"] != 0 {
		t.Errorf("requests %v: want one upload of 3 parts", req)
	}
	uploads, err := client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Errorf("multipart uploads left open: %v, %v", uploads, err)
	}
}

// Move through the registry's own gcs driver on fake-gcs-server: the driver's Move
// (a rewrite, then a delete), a destination kept, a missing source, a listed tree.
func TestMoveOnGCS(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	const bucket = "move-bucket"
	data := filepath.Join(work, "gcs-data")
	files := map[string]string{
		"docker/registry/v2/blobs/sha256/ab/ab01/data":               "ab01",
		"docker/registry/v2/blobs/sha256/cd/cd01/data":               "cd01 new",
		"q/docker/registry/v2/blobs/sha256/cd/cd01/data":             "cd01 old",
		"docker/registry/v2/repositories/a/_uploads/u1/startedat":    "2020",
		"docker/registry/v2/repositories/a/_uploads/u1/hashstates/0": "h",
		"docker/registry/v2/repositories/a/_uploadsX/keep":           "keep",
	}
	for p, c := range files {
		full := filepath.Join(data, bucket, "reg", filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	emu, err := s3test.StartFakeGCS(data, work)
	if err != nil {
		harness.Unavailable(t, "no GCS emulator: %v", err)
	}
	defer emu.Close()
	t.Setenv("STORAGE_EMULATOR_HOST", emu.Host)
	keyfile := filepath.Join(work, "key.json")
	if err := s3test.WriteServiceAccountKey(keyfile); err != nil {
		t.Fatalf("writing the emulator's service account key: %v", err)
	}
	b, err := gcs.New(ctx, map[string]any{"bucket": bucket, "rootdirectory": "/reg/", "keyfile": keyfile}, 4)
	if err != nil {
		t.Fatalf("opening the gcs backend: %v", err)
	}
	moves := []storage.Move{
		{Unit: storage.Unit{Dir: "docker/registry/v2/blobs/sha256/ab/ab01", Files: []string{"data"}}, To: "q/docker/registry/v2/blobs/sha256/ab/ab01"},
		{Unit: storage.Unit{Dir: "docker/registry/v2/blobs/sha256/cd/cd01", Files: []string{"data"}}, To: "q/docker/registry/v2/blobs/sha256/cd/cd01"},
		{Unit: storage.Unit{Dir: "docker/registry/v2/blobs/sha256/ef/ef01", Files: []string{"data"}}, To: "q/docker/registry/v2/blobs/sha256/ef/ef01"},
		{Unit: storage.Unit{Dir: "docker/registry/v2/repositories/a/_uploads"}, To: "q/docker/registry/v2/repositories/a/_uploads"},
	}
	want := map[string]string{
		"q/docker/registry/v2/blobs/sha256/ab/ab01/data":               "ab01",
		"q/docker/registry/v2/blobs/sha256/cd/cd01/data":               "cd01 old",
		"q/docker/registry/v2/repositories/a/_uploads/u1/startedat":    "2020",
		"q/docker/registry/v2/repositories/a/_uploads/u1/hashstates/0": "h",
		"docker/registry/v2/repositories/a/_uploadsX/keep":             "keep",
	}
	check := func(when string) {
		t.Helper()
		var mu sync.Mutex
		got := map[string]string{}
		err := b.Walk(ctx, "", func(f storage.File) error {
			c, err := b.ReadFile(ctx, f.Path, 1<<20)
			mu.Lock()
			got[f.Path] = string(c)
			mu.Unlock()
			return err
		})
		if err != nil {
			t.Fatalf("%s: walking: %v", when, err)
		}
		var diff []string
		for p, c := range want {
			if got[p] != c {
				diff = append(diff, fmt.Sprintf("%s holds %q, want %q", p, got[p], c))
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				diff = append(diff, "unexpected "+p)
			}
		}
		sort.Strings(diff)
		if len(diff) > 0 {
			t.Errorf("%s:\n%s", when, strings.Join(diff, "\n"))
		}
	}
	if err := b.Move(ctx, moves); err != nil {
		t.Fatalf("moving on GCS: %v", err)
	}
	check("after the move")
	if err := b.Move(ctx, moves); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	check("after a rerun")
	req := b.Requests()
	t.Logf("driver calls: %v", req)
	if req["Move"] == 0 {
		t.Errorf("no driver Move counted: %v", req)
	}
}
