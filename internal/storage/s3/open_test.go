package s3

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

func TestOpenStreams(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("list-type") == "2":
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`)
		case r.URL.Path == "/bucket/r/blob":
			io.WriteString(w, strings.Repeat("x", 5000))
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	// One request slot: each stream must give it back when closed.
	b, err := Open(ctx, Params{Bucket: "bucket", Region: "us-east-1", RegionEndpoint: srv.URL, ForcePathStyle: true,
		AccessKey: "a", SecretKey: "s", RootDirectory: "/r"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r, err := b.Open(ctx, "blob")
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil || len(data) != 5000 {
			t.Fatalf("read %d bytes, %v", len(data), err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Open(ctx, "missing"); !storage.IsNotExist(err) {
			t.Fatalf("Open of a missing key: %v", err)
		}
	}
}
