package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/clean-registry/clean-registry/v2/internal/retry"
)

// Without accesskey/secretkey and with an empty credential chain, Open says so: the
// failure is told by its type (credentialsError), not by the SDK's wording.
func TestOpenWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ACCESS_KEY", "AWS_SECRET_KEY"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := Open(context.Background(), Params{Bucket: "bucket", Region: "us-east-1", RegionEndpoint: "http://127.0.0.1:1", ForcePathStyle: true}, 1)
	var ce *credentialsError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("err = %v, want a credentials error", err)
	}
}

func TestTypedCredentials(t *testing.T) {
	static := typedCredentials{credentials.NewStaticCredentialsProvider("a", "s", "")}
	if c, err := static.Retrieve(context.Background()); err != nil || c.AccessKeyID != "a" {
		t.Fatalf("Retrieve = %+v, %v", c, err)
	}
	if !aws.IsCredentialsProvider(typedCredentials{aws.AnonymousCredentials{}}, aws.AnonymousCredentials{}) ||
		aws.IsCredentialsProvider(static, aws.AnonymousCredentials{}) {
		t.Fatal("anonymous credentials are not told through the wrapper")
	}
	if _, err := (typedCredentials{credentials.StaticCredentialsProvider{}}).Retrieve(context.Background()); !retry.As[*credentialsError](err) {
		t.Fatalf("err = %v, want a credentialsError", err)
	}
}

// fakeS3 answers the few requests the retries need: an empty listing (Open's check),
// GetObject (the first answer to each key cut short), DeleteObjects (a SlowDown for
// some keys the first time).
type fakeS3 struct {
	mu        sync.Mutex
	gets      map[string]int
	deletes   [][]string
	slowFirst map[string]bool
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := strings.TrimPrefix(r.URL.Path, "/bucket/")
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`)
	case r.Method == http.MethodGet:
		f.gets[key]++
		body := strings.Repeat("x", 100)
		w.Header().Set("Content-Length", "100")
		if f.gets[key] == 1 {
			io.WriteString(w, body[:10]) // then the connection drops: a cut body
			return
		}
		io.WriteString(w, body)
	case r.Method == http.MethodPost && r.URL.Query().Has("delete"):
		var req struct {
			Objects []struct{ Key string } `xml:"Object"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var keys []string
		out := `<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`
		for _, o := range req.Objects {
			keys = append(keys, o.Key)
			if f.slowFirst[o.Key] {
				f.slowFirst[o.Key] = false
				out += "<Error><Key>" + o.Key + "</Key><Code>SlowDown</Code><Message>slow down</Message></Error>"
			}
		}
		f.deletes = append(f.deletes, keys)
		io.WriteString(w, out+"</DeleteResult>")
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusNotImplemented)
	}
}

func TestRetries(t *testing.T) {
	f := &fakeS3{gets: map[string]int{}, slowFirst: map[string]bool{"r/b/link": true, "r/d/link": true}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	b, err := Open(ctx, Params{Bucket: "bucket", Region: "us-east-1", RegionEndpoint: srv.URL, ForcePathStyle: true,
		AccessKey: "a", SecretKey: "s", RootDirectory: "/r"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.ReadFile(ctx, "blob", 1<<10)
	if err != nil || len(data) != 100 || f.gets["r/blob"] != 2 {
		t.Fatalf("ReadFile of a body cut once: %d bytes, %v, after %d GETs", len(data), err, f.gets["r/blob"])
	}
	if err := b.deleteBatch(ctx, []string{"r/a/link", "r/b/link", "r/c/link", "r/d/link"}); err != nil {
		t.Fatal(err)
	}
	if len(f.deletes) != 2 || !slices.Equal(f.deletes[1], []string{"r/b/link", "r/d/link"}) {
		t.Fatalf("DeleteObjects requests %q: want the SlowDown keys resent, alone", f.deletes)
	}
}
