package s3

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// copyMode is what the fake does with If-None-Match on CopyObject.
type copyMode int

const (
	copyHonours copyMode = iota // 412 when the destination exists, as AWS
	copyIgnores                 // copies over it, as versitygw v1.8.0
	copyRejects                 // 501 NotImplemented
)

// memS3 is an in-memory S3 with what Move sends: listings, HEAD, PUT, CopyObject,
// DeleteObject(s) and multipart copies. A CopyObject of a source larger than
// copyLimit is refused as AWS refuses one above 5 GiB.
type memS3 struct {
	mode      copyMode
	copyLimit int64
	failPart  int // an UploadPartCopy of this part number fails (0: none)

	mu      sync.Mutex
	objs    map[string]string
	ctypes  map[string]string
	uploads map[string]map[int]string
	aborted int
	seq     int
	copies  []string // destination keys of CopyObject requests that copied
}

func newMemS3(mode copyMode) *memS3 {
	return &memS3{mode: mode, copyLimit: 1 << 40, objs: map[string]string{}, ctypes: map[string]string{},
		uploads: map[string]map[int]string{}}
}

func etagOf(s string) string {
	sum := md5.Sum([]byte(s))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, code)
}

func (f *memS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := strings.TrimPrefix(r.URL.Path, "/bucket/")
	q := r.URL.Query()
	src := ""
	if cs := r.Header.Get("x-amz-copy-source"); cs != "" {
		s, err := url.PathUnescape(strings.TrimPrefix(cs, "bucket/"))
		if err != nil {
			s3Error(w, http.StatusBadRequest, "InvalidArgument")
			return
		}
		src = s
	}
	switch {
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		prefix := q.Get("prefix")
		var keys []string
		for k := range f.objs {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		out := `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bucket</Name><IsTruncated>false</IsTruncated>`
		for _, k := range keys {
			out += fmt.Sprintf("<Contents><Key>%s</Key><Size>%d</Size><ETag>%s</ETag></Contents>", k, len(f.objs[k]), etagOf(f.objs[k]))
		}
		io.WriteString(w, out+"</ListBucketResult>")
	case r.Method == http.MethodHead:
		v, ok := f.objs[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(v)))
		w.Header().Set("ETag", etagOf(v))
		if ct := f.ctypes[key]; ct != "" {
			w.Header().Set("Content-Type", ct)
		}
	case r.Method == http.MethodPut && q.Has("uploadId"):
		parts, ok := f.uploads[q.Get("uploadId")]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		n, _ := strconv.Atoi(q.Get("partNumber"))
		if n == f.failPart {
			s3Error(w, http.StatusBadRequest, "InvalidRequest")
			return
		}
		v, ok := f.objs[src]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		if im := r.Header.Get("x-amz-copy-source-if-match"); im != "" && im != etagOf(v) {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		var first, last int
		if _, err := fmt.Sscanf(r.Header.Get("x-amz-copy-source-range"), "bytes=%d-%d", &first, &last); err != nil || last >= len(v) || first > last {
			s3Error(w, http.StatusBadRequest, "InvalidArgument")
			return
		}
		parts[n] = v[first : last+1]
		fmt.Fprintf(w, `<CopyPartResult><ETag>%s</ETag></CopyPartResult>`, etagOf(parts[n]))
	case r.Method == http.MethodPut && src != "":
		v, ok := f.objs[src]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		if r.Header.Get("If-None-Match") != "" {
			switch f.mode {
			case copyRejects:
				s3Error(w, http.StatusNotImplemented, "NotImplemented")
				return
			case copyHonours:
				if _, exists := f.objs[key]; exists {
					s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
					return
				}
			}
		}
		if int64(len(v)) > f.copyLimit {
			s3Error(w, http.StatusBadRequest, "InvalidRequest")
			return
		}
		f.objs[key] = v
		f.copies = append(f.copies, key)
		fmt.Fprintf(w, `<CopyObjectResult><ETag>%s</ETag></CopyObjectResult>`, etagOf(v))
	case r.Method == http.MethodPut:
		data, _ := io.ReadAll(r.Body)
		f.objs[key] = string(data)
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		delete(f.uploads, q.Get("uploadId"))
		f.aborted++
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		delete(f.objs, key)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && q.Has("uploads"):
		f.seq++
		id := fmt.Sprintf("u%d", f.seq)
		f.uploads[id] = map[int]string{}
		f.ctypes[key] = r.Header.Get("Content-Type")
		fmt.Fprintf(w, `<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>`, key, id)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		parts, ok := f.uploads[q.Get("uploadId")]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		var req struct {
			Parts []struct{ PartNumber int } `xml:"Part"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
			s3Error(w, http.StatusBadRequest, "MalformedXML")
			return
		}
		var content strings.Builder
		for i, p := range req.Parts {
			if p.PartNumber != i+1 {
				s3Error(w, http.StatusBadRequest, "InvalidPartOrder")
				return
			}
			content.WriteString(parts[p.PartNumber])
		}
		f.objs[key] = content.String()
		delete(f.uploads, q.Get("uploadId"))
		fmt.Fprintf(w, `<CompleteMultipartUploadResult><Key>%s</Key><ETag>"x-%d"</ETag></CompleteMultipartUploadResult>`, key, len(req.Parts))
	case r.Method == http.MethodPost && q.Has("delete"):
		var req struct {
			Objects []struct{ Key string } `xml:"Object"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
			s3Error(w, http.StatusBadRequest, "MalformedXML")
			return
		}
		for _, o := range req.Objects {
			delete(f.objs, o.Key)
		}
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>`)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusNotImplemented)
	}
}

func (f *memS3) snapshot() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.objs))
	for k, v := range f.objs {
		out[k] = v
	}
	return out
}

func openMem(t *testing.T, f *memS3, jobs int) *Backend {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	b, err := Open(context.Background(), Params{Bucket: "bucket", Region: "us-east-1", RegionEndpoint: srv.URL,
		ForcePathStyle: true, AccessKey: "a", SecretKey: "s", RootDirectory: "/r"}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lowerCopyLimits(t *testing.T, threshold, part int64) {
	oldT, oldP := MultipartCopyThreshold, MultipartCopyPartSize
	MultipartCopyThreshold, MultipartCopyPartSize = threshold, part
	t.Cleanup(func() { MultipartCopyThreshold, MultipartCopyPartSize = oldT, oldP })
}

func diffObjects(got, want map[string]string) string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if g != v {
			d = append(d, fmt.Sprintf("%s holds %.20q, want %.20q", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "unexpected "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// Whatever the server does with a conditional copy, an existing destination is kept,
// its source removed, missing sources count as moved, and nothing else is touched.
func TestMoveCopyModes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		mode  copyMode
		heads bool // a HeadObject of each destination before its copy
	}{
		{"honoured", copyHonours, false},
		{"ignored", copyIgnores, true},
		{"rejected", copyRejects, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newMemS3(tt.mode)
			for k, v := range map[string]string{
				"r/blobs/ab/data":        "ab",
				"r/blobs/cd/data":        "cd",
				"r/blobs/ef/data":        "ef new",
				"r/q/blobs/ef/data":      "ef old",
				"r/repo/_uploads/u/data": "upload",
				"r/repo/_uploads/u/x y+": "odd name",
				"r/repo/_uploads/v/":     "", // a folder marker
				"r/repo/_uploadsX/keep":  "keep",
				"other/blobs/ab/data":    "outside",
			} {
				f.objs[k] = v
			}
			b := openMem(t, f, 4)
			moves := []storage.Move{
				{Unit: storage.Unit{Dir: "blobs/ab", Files: []string{"data"}}, To: "q/blobs/ab"},
				{Unit: storage.Unit{Dir: "blobs/cd", Files: []string{"data"}}, To: "q/blobs/cd"},
				{Unit: storage.Unit{Dir: "blobs/ef", Files: []string{"data"}}, To: "q/blobs/ef"},
				{Unit: storage.Unit{Dir: "blobs/00", Files: []string{"data"}}, To: "q/blobs/00"},
				{Unit: storage.Unit{Dir: "repo/_uploads"}, To: "q/repo/_uploads"},
			}
			if err := b.Move(ctx, moves); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"r/q/blobs/ab/data":        "ab",
				"r/q/blobs/cd/data":        "cd",
				"r/q/blobs/ef/data":        "ef old",
				"r/q/repo/_uploads/u/data": "upload",
				"r/q/repo/_uploads/u/x y+": "odd name",
				"r/repo/_uploadsX/keep":    "keep",
				"other/blobs/ab/data":      "outside",
			}
			if d := diffObjects(f.snapshot(), want); d != "" {
				t.Fatalf("after the move:\n%s", d)
			}
			req := b.Requests()
			// The probe: two PutObject, one CopyObject, two DeleteObject.
			copies := 1 + 6 // ab, cd, ef (refused), 00 (missing), the 2 files listed
			if tt.heads {
				copies = 1 + 5 // ef's destination seen, not copied over
			}
			if req["CopyObject"] != int64(copies) || req["PutObject"] != 2 || req["DeleteObject"] != 2 {
				t.Errorf("requests %v: want %d CopyObject (the probe's included), 2 PutObject, 2 DeleteObject", req, copies)
			}
			if heads := req["HeadObject"]; tt.heads && heads != 6 || !tt.heads && heads != 0 {
				t.Errorf("%d HeadObject, want one per file without a conditional copy", heads)
			}
			if req["DeleteObjects"] != 1 {
				t.Errorf("%d DeleteObjects, want 1", req["DeleteObjects"])
			}

			// A rerun converges and learns nothing again.
			if err := b.Move(ctx, moves); err != nil {
				t.Fatalf("rerun: %v", err)
			}
			if d := diffObjects(f.snapshot(), want); d != "" {
				t.Fatalf("after a rerun:\n%s", d)
			}
			if req := b.Requests(); req["PutObject"] != 2 {
				t.Errorf("the probe ran again: %v", req)
			}
		})
	}
}

// Moves into a run's own directory (Fresh) copy without looking first, whatever the
// server does with conditions: no probe, no HeadObject, one CopyObject per file, and
// an earlier copy there (this run's, of the same source) is simply written again.
func TestMoveFresh(t *testing.T) {
	for _, mode := range []copyMode{copyHonours, copyIgnores, copyRejects} {
		ctx := context.Background()
		f := newMemS3(mode)
		f.objs["r/blobs/ab/data"] = "ab"
		f.objs["r/blobs/cd/data"] = "cd"
		f.objs["r/q/blobs/cd/data"] = "cd" // copied before a retry
		b := openMem(t, f, 4)
		moves := []storage.Move{
			{Unit: storage.Unit{Dir: "blobs/ab", Files: []string{"data"}}, To: "q/blobs/ab", Fresh: true},
			{Unit: storage.Unit{Dir: "blobs/cd", Files: []string{"data"}}, To: "q/blobs/cd", Fresh: true},
			{Unit: storage.Unit{Dir: "blobs/00", Files: []string{"data"}}, To: "q/blobs/00", Fresh: true},
		}
		if err := b.Move(ctx, moves); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"r/q/blobs/ab/data": "ab", "r/q/blobs/cd/data": "cd"}
		if d := diffObjects(f.snapshot(), want); d != "" {
			t.Fatalf("mode %v, after the move:\n%s", mode, d)
		}
		req := b.Requests()
		if req["CopyObject"] != 3 || req["HeadObject"] != 0 || req["PutObject"] != 0 || req["DeleteObjects"] != 1 {
			t.Errorf("mode %v: requests %v: want 3 CopyObject, 1 DeleteObjects, no HeadObject and no probe", mode, req)
		}
	}
}

func TestMoveRefuses(t *testing.T) {
	f := newMemS3(copyHonours)
	f.objs["r/a/x"] = "x"
	b := openMem(t, f, 2)
	for _, m := range []storage.Move{
		{Unit: storage.Unit{Dir: "", Files: []string{"x"}}, To: "q"},
		{Unit: storage.Unit{Dir: "a", Files: []string{"x"}}, To: ""},
		{Unit: storage.Unit{Dir: "a", Files: []string{"../../x"}}, To: "q"},
		{Unit: storage.Unit{Dir: "a", Files: []string{"y/../x"}}, To: "q"},
		{Unit: storage.Unit{Dir: "a"}, To: "../q"},
		{Unit: storage.Unit{Dir: "a"}, To: "a/q"},
		{Unit: storage.Unit{Dir: "a/b"}, To: "a"},
	} {
		if err := b.Move(context.Background(), []storage.Move{m}); err == nil {
			t.Errorf("moving %q (files %q) to %q was accepted", m.Dir, m.Files, m.To)
		}
	}
	if d := diffObjects(f.snapshot(), map[string]string{"r/a/x": "x"}); d != "" {
		t.Error(d)
	}
}

// Objects above the threshold are copied in parts: at once when the listing told the
// size, after a refused CopyObject and a HeadObject when it did not.
func TestMoveMultipart(t *testing.T) {
	lowerCopyLimits(t, 1000, 300)
	ctx := context.Background()
	f := newMemS3(copyIgnores)
	f.copyLimit = 1000
	big := strings.Repeat("0123456789abcdefghi", 131) // 2,489 bytes: 9 parts
	f.objs["r/blobs/big/data"] = big
	f.ctypes["r/blobs/big/data"] = "application/octet-stream"
	f.objs["r/up/u1/data"] = big + "!"
	f.objs["r/up/u1/small"] = "small"
	b := openMem(t, f, 3)
	err := b.Move(ctx, []storage.Move{
		{Unit: storage.Unit{Dir: "blobs/big", Files: []string{"data"}}, To: "q/blobs/big"},
		{Unit: storage.Unit{Dir: "up"}, To: "q/up"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"r/q/blobs/big/data": big, "r/q/up/u1/data": big + "!", "r/q/up/u1/small": "small"}
	if d := diffObjects(f.snapshot(), want); d != "" {
		t.Fatalf("after the move:\n%s", d)
	}
	if ct := f.ctypes["r/q/blobs/big/data"]; ct != "application/octet-stream" {
		t.Errorf("content type %q not carried over", ct)
	}
	req := b.Requests()
	// CopyObject: the probe, the small file, and the big one of unknown size, refused.
	if req["UploadPartCopy"] != 18 || req["CreateMultipartUpload"] != 2 || req["CompleteMultipartUpload"] != 2 ||
		req["CopyObject"] != 3 || req["AbortMultipartUpload"] != 0 {
		t.Errorf("requests %v: want 9 parts for each of 2 uploads, 3 CopyObject", req)
	}

	// A part that fails: the upload is aborted, the error names the object, and
	// nothing is deleted.
	f.objs["r/blobs/big2/data"] = big
	f.failPart = 2
	err = b.Move(ctx, []storage.Move{{Unit: storage.Unit{Dir: "blobs/big2"}, To: "q/blobs/big2"}})
	if err == nil || !strings.Contains(err.Error(), "blobs/big2/data") || !strings.Contains(err.Error(), "part") {
		t.Fatalf("a failing part: %v, want an error naming the object", err)
	}
	if f.aborted != 1 {
		t.Errorf("%d uploads aborted, want 1", f.aborted)
	}
	if got := f.snapshot(); got["r/blobs/big2/data"] != big || got["r/q/blobs/big2/data"] != "" {
		t.Errorf("after a failed multipart copy: source %d bytes, destination %d bytes", len(got["r/blobs/big2/data"]), len(got["r/q/blobs/big2/data"]))
	}
}

func TestCopySource(t *testing.T) {
	for key, want := range map[string]string{
		"r/docker/registry/v2/blobs/sha256/ab/ab01/data": "bucket/r/docker/registry/v2/blobs/sha256/ab/ab01/data",
		"a b/c+d/é": "bucket/a%20b/c%2Bd/%C3%A9",
		"x?y#z%":    "bucket/x%3Fy%23z%25",
	} {
		got := copySource("bucket", key)
		if got != want {
			t.Errorf("copySource(%q) = %q, want %q", key, got, want)
		}
		for _, unescape := range []func(string) (string, error){url.PathUnescape, url.QueryUnescape} {
			if back, err := unescape(got); err != nil || back != "bucket/"+key {
				t.Errorf("%q decodes to %q, %v", got, back, err)
			}
		}
	}
}
