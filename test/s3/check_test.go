package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clean-registry/clean-registry/v2/internal/cli"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// check on S3: sizes from the listing, blobs re-hashed through GetObject streams.
// A healthy registry passes; with a layer object deleted, a blob truncated and a
// layer link deleted, check names exactly the tags whose verified pull fails.
func TestCheckOnS3(t *testing.T) {
	srv := server.Get(t)
	bucket := newBucket(t, srv)
	reg := harness.StartT(t, harness.Config{Storage: map[string]any{"s3": srv.DriverParams(bucket, "/registry")}})
	s := reg.Session(t)
	gone, short, unlinked := harness.Image(6000, 2, harness.OCI), harness.Image(6001, 2, harness.Docker), harness.Image(6002, 1, harness.OCI)
	s.PushImage("app:gone", gone)
	s.PushImage("app:short", short)
	s.PushImage("other:unlinked", unlinked)
	s.PushImage("other:ok", harness.Image(6003, 2, harness.OCI))
	s.PushIndex("multi:1", harness.Index(6004, 2, 1, harness.OCI))
	config := reg.ConfigPath()
	check := func(args ...string) (int, []string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := cli.Main(append([]string{"check", "--config", config, "--json", "-j", "8"}, args...), &stdout, &stderr)
		var doc struct {
			Images int `json:"images"`
			Broken []struct {
				Repo string `json:"repository"`
				Tag  string `json:"tag"`
			} `json:"broken"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil || doc.Images != 5 {
			t.Fatalf("check: exit %d, %d images, %v\n%s\n%s", code, doc.Images, err, &stdout, &stderr)
		}
		broken := []string{}
		for _, im := range doc.Broken {
			broken = append(broken, im.Repo+":"+im.Tag)
		}
		sort.Strings(broken)
		return code, broken
	}
	if code, broken := check("--verify-digests"); code != 0 || len(broken) != 0 {
		t.Fatalf("check of a healthy registry on S3: exit %d, broken %v", code, broken)
	}

	reg.StopT(t)
	ctx := context.Background()
	client := srv.Client()
	key := func(rel string) *string { return aws.String("registry/" + rel) }
	for _, rel := range []string{
		harness.BlobDataPath(harness.BlobsOf(gone)[1]),
		harness.LayerLinkPath("other", harness.BlobsOf(unlinked)[1]),
	} {
		if _, err := client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: key(rel)}); err != nil {
			t.Fatalf("deleting %s: %v", rel, err)
		}
	}
	rel := harness.BlobDataPath(harness.BlobsOf(short)[2])
	out, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: key(rel)})
	if err != nil {
		t.Fatalf("reading %s: %v", rel, err)
	}
	data, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err == nil {
		_, err = client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: key(rel), Body: bytes.NewReader(data[:len(data)/3])})
	}
	if err != nil {
		t.Fatalf("truncating %s: %v", rel, err)
	}
	reg.RestartT(t)

	var failing []string
	s = reg.Session(t)
	for _, ref := range []string{"app:gone", "app:short", "multi:1", "other:ok", "other:unlinked"} {
		if _, err := harness.Pull(s.Ctx, s.Host, ref); err != nil {
			failing = append(failing, ref)
		}
	}
	want := []string{"app:gone", "app:short", "other:unlinked"}
	if strings.Join(failing, " ") != strings.Join(want, " ") {
		t.Fatalf("the pulls of %v fail; the damage was meant to break %v", failing, want)
	}
	for _, args := range [][]string{nil, {"--verify-digests"}} {
		if code, broken := check(args...); code != 3 || strings.Join(broken, " ") != strings.Join(failing, " ") {
			t.Errorf("check %v: exit %d, broken %v; want exit 3 and %v", args, code, broken, failing)
		}
	}
}
