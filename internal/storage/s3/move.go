package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

var _ storage.Mover = (*Backend)(nil)

// MultipartCopyThreshold is the size above which an object is copied in parts: one
// CopyObject copies at most 5 GiB. A variable so that tests can take the multipart
// path with small objects; set it before moving, not during.
var MultipartCopyThreshold int64 = 5 << 30

// MultipartCopyPartSize is the range one UploadPartCopy copies; raised for an object
// that would need more than maxCopyParts parts.
var MultipartCopyPartSize int64 = 512 << 20

// maxCopyParts is S3's limit of parts per multipart upload.
const maxCopyParts = 10000

// Whether the server honours If-None-Match on CopyObject is learnt once per Backend,
// at its first Move, like write.go learns it for PutObject. AWS S3 honours it;
// versitygw (v1.8.0) ignores it silently (it reads only the x-amz-copy-source-if-*
// conditions of a copy), so a plain copy would overwrite: there every copy is
// preceded by a HeadObject of the destination.
var copyProbes sync.Map // weak.Pointer[Backend] -> *copyProbe

type copyProbe struct {
	mu    sync.Mutex
	state exclusiveState
}

func (b *Backend) copyProbe() *copyProbe {
	k := weak.Make(b)
	if p, ok := copyProbes.Load(k); ok {
		return p.(*copyProbe)
	}
	p, loaded := copyProbes.LoadOrStore(k, &copyProbe{})
	if !loaded {
		runtime.AddCleanup(b, func(k weak.Pointer[Backend]) { copyProbes.Delete(k) }, k)
	}
	return p.(*copyProbe)
}

// moveFile is one object to move. size is -1 when not known (the unit named its
// files): a plain CopyObject is tried, and only a refused one asks for the size.
type moveFile struct {
	src, dst string // keys
	size     int64
	fresh    bool      // see storage.Move.Fresh
	since    time.Time // see storage.Move.UnmodifiedSince
}

// Move copies every file of the units server-side (CopyObject; in parts above
// MultipartCopyThreshold), concurrently, then deletes the sources in DeleteObjects
// batches. A source already gone counts as moved; a destination that exists is kept
// and its source deleted all the same. Nothing is deleted unless every copy
// succeeded: a failed call leaves each file at its source, or at both places, and a
// rerun converges.
func (b *Backend) Move(ctx context.Context, moves []storage.Move) error {
	var files []moveFile
	var sources []string // keys to delete once everything is copied
	type listing struct {
		srcPrefix, to string
		fresh         bool
		since         time.Time
	}
	var unknown []listing
	for _, m := range moves {
		dir, to := strings.TrimSuffix(m.Dir, "/"), strings.TrimSuffix(m.To, "/")
		if dir == "" || dir == "." || to == "" || to == "." {
			return fmt.Errorf("refusing to move %q to %q: the storage root", m.Dir, m.To)
		}
		if _, err := b.key(dir); err != nil {
			return err
		}
		if _, err := b.key(to); err != nil {
			return err
		}
		// One inside the other would move files into the unit being moved.
		if dir == to || strings.HasPrefix(to, dir+"/") || strings.HasPrefix(dir, to+"/") {
			return fmt.Errorf("refusing to move %s to %s: one holds the other", dir, to)
		}
		if len(m.Files) == 0 {
			unknown = append(unknown, listing{dirPrefix(b.prefix, dir), to, m.Fresh, m.UnmodifiedSince})
			continue
		}
		for _, f := range m.Files {
			src, err := b.key(dir + "/" + f)
			if err != nil {
				return fmt.Errorf("invalid file %q in %s", f, m.Dir)
			}
			dst, err := b.key(to + "/" + f)
			if err != nil {
				return fmt.Errorf("invalid file %q in %s", f, m.Dir)
			}
			files = append(files, moveFile{src: src, dst: dst, size: -1, fresh: m.Fresh, since: m.UnmodifiedSince})
		}
	}
	if len(unknown) > 0 {
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(b.jobs)
		for _, l := range unknown {
			g.Go(func() error {
				return b.listFlat(gctx, l.srcPrefix, func(o types.Object) error {
					key := aws.ToString(o.Key)
					rel := strings.TrimPrefix(key, l.srcPrefix)
					mu.Lock()
					defer mu.Unlock()
					if rel == "" || strings.HasSuffix(rel, "/") {
						// A "folder" marker: nothing to copy, removed with the unit.
						sources = append(sources, key)
						return nil
					}
					if modifiedAfter(o.LastModified, l.since) {
						return nil // written since: stays (the copy checks again)
					}
					dst, err := b.key(l.to + "/" + rel)
					if err != nil {
						return fmt.Errorf("cannot move %q: its name is not a storage path", key)
					}
					files = append(files, moveFile{src: key, dst: dst, size: aws.ToInt64(o.Size), fresh: l.fresh, since: l.since})
					return nil
				})
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	if len(files) > 0 {
		// Only a destination that may exist needs to know whether copies are conditional.
		conditional := false
		for _, f := range files {
			if !f.fresh {
				var err error
				if conditional, err = b.learnConditionalCopy(ctx, f.dst); err != nil {
					return err
				}
				break
			}
		}
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(b.jobs)
		for _, f := range files {
			g.Go(func() error {
				remove, err := b.moveCopy(gctx, f, conditional)
				if err != nil {
					return err
				}
				if remove {
					mu.Lock()
					sources = append(sources, f.src)
					mu.Unlock()
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	size := batchSize(len(sources), b.jobs)
	for start := 0; start < len(sources); start += size {
		batch := sources[start:min(start+size, len(sources))]
		g.Go(func() error { return b.deleteBatch(gctx, batch) })
	}
	return g.Wait()
}

// moveCopy puts one file at its destination unless it is there already. remove says
// the source is to be deleted: false when it is already gone.
func (b *Backend) moveCopy(ctx context.Context, f moveFile, conditional bool) (remove bool, err error) {
	src, dst := b.pathFor(f.src), b.pathFor(f.dst)
	big := f.size > MultipartCopyThreshold
	if f.fresh {
		// Nothing to look for: an earlier copy there is this run's, of this source.
		conditional = false
	} else if !conditional || big {
		// The server would overwrite: look first. A concurrent writer can slip in
		// between; its file names the same content (see storage.Mover).
		switch exists, err := b.exists(ctx, f.dst); {
		case err != nil:
			return false, fmt.Errorf("moving %s: stat %s: %w", src, dst, err)
		case exists:
			return true, nil
		}
	}
	if big {
		return b.copyMultipart(ctx, f, nil)
	}
	in := &s3.CopyObjectInput{
		Bucket:     aws.String(b.bucket),
		Key:        aws.String(f.dst),
		CopySource: aws.String(copySource(b.bucket, f.src)),
	}
	if conditional {
		in.IfNoneMatch = aws.String("*")
	}
	if !f.since.IsZero() {
		in.CopySourceIfUnmodifiedSince = aws.Time(f.since)
	}
	if err := b.acquire(ctx); err != nil {
		return false, err
	}
	_, cerr := b.client.CopyObject(ctx, in)
	b.release()
	if !f.since.IsZero() && isConditionFailed(cerr) && !isConflict(cerr) {
		// The source was written since, or (with If-None-Match) the destination
		// exists: the source's time tells which.
		head, herr := b.head(ctx, f.src)
		switch {
		case isNotFound(herr):
			return false, nil
		case herr != nil:
			return false, fmt.Errorf("moving %s: stat: %w", src, herr)
		case modifiedAfter(head.LastModified, f.since), !conditional:
			// Written since (the server's word for it, whatever the resolution of
			// the time it lists): it stays, which is always safe.
			return false, nil
		}
	}
	switch {
	case cerr == nil:
		return true, nil
	case isNotFound(cerr):
		return false, nil
	case conditional && isConditionFailed(cerr):
		if !isConflict(cerr) {
			return true, nil
		}
		// 409: a concurrent conditional write to dst, which may yet fail.
		exists, err := b.exists(ctx, f.dst)
		if err == nil && !exists {
			err = cerr
		}
		if err != nil {
			return false, fmt.Errorf("copying %s to %s: %w", src, dst, err)
		}
		return true, nil
	case f.size >= 0:
		return false, fmt.Errorf("copying %s to %s: %w", src, dst, cerr)
	}
	// The size was not known: a refusal may be CopyObject's 5 GiB limit (AWS answers
	// InvalidRequest, other servers otherwise), which only the size tells.
	head, herr := b.head(ctx, f.src)
	switch {
	case isNotFound(herr):
		return false, nil
	case herr != nil || aws.ToInt64(head.ContentLength) <= MultipartCopyThreshold:
		return false, fmt.Errorf("copying %s to %s: %w", src, dst, cerr)
	}
	if conditional && !f.fresh {
		// The multipart path is not conditional: look first.
		if exists, err := b.exists(ctx, f.dst); err != nil {
			return false, fmt.Errorf("moving %s: stat %s: %w", src, dst, err)
		} else if exists {
			return true, nil
		}
	}
	return b.copyMultipart(ctx, f, head)
}

// copyMultipart copies an object too large for one CopyObject: UploadPartCopy in
// ranges, concurrently, each tied to the source's ETag so that every part comes from
// the same object; an upload that fails is aborted. The content type and user
// metadata are carried over, as CopyObject does. head is the source's HeadObject, or
// nil to send one.
func (b *Backend) copyMultipart(ctx context.Context, f moveFile, head *s3.HeadObjectOutput) (remove bool, err error) {
	src, dst := b.pathFor(f.src), b.pathFor(f.dst)
	if head == nil {
		h, err := b.head(ctx, f.src)
		if isNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("moving %s: stat: %w", src, err)
		}
		head = h
	}
	if modifiedAfter(head.LastModified, f.since) {
		return false, nil // written since: it stays (see storage.Move.UnmodifiedSince)
	}
	size := aws.ToInt64(head.ContentLength)
	part := max(MultipartCopyPartSize, (size+maxCopyParts-1)/maxCopyParts, 1)
	n := int((size + part - 1) / part)
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("copying %s (%d bytes) to %s in %d parts: %w", src, size, dst, n, err)
	}

	if err := b.acquire(ctx); err != nil {
		return false, err
	}
	created, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(b.bucket),
		Key:         aws.String(f.dst),
		ContentType: head.ContentType,
		Metadata:    head.Metadata,
	})
	b.release()
	if err != nil {
		return fail(err)
	}
	uploadID := created.UploadId
	abort := func() {
		// Even when ctx is cancelled: an upload left open is billed storage.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if b.acquire(actx) == nil {
			b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(b.bucket), Key: aws.String(f.dst), UploadId: uploadID})
			b.release()
		}
	}

	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for i := range n {
		g.Go(func() error {
			first := int64(i) * part
			last := min(first+part, size) - 1
			if err := b.acquire(gctx); err != nil {
				return err
			}
			out, err := b.client.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:            aws.String(b.bucket),
				Key:               aws.String(f.dst),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(int32(i + 1)),
				CopySource:        aws.String(copySource(b.bucket, f.src)),
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
				CopySourceIfMatch: head.ETag,
			})
			b.release()
			if err != nil {
				return fmt.Errorf("part %d (bytes %d-%d): %w", i+1, first, last, err)
			}
			if out.CopyPartResult == nil || out.CopyPartResult.ETag == nil {
				return fmt.Errorf("part %d: the server returned no ETag", i+1)
			}
			parts[i] = types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		abort()
		if isNotFound(err) {
			return false, nil // the source went meanwhile
		}
		return fail(err)
	}
	if err := b.acquire(ctx); err != nil {
		abort()
		return false, err
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.bucket),
		Key:             aws.String(f.dst),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	b.release()
	if err != nil {
		abort()
		return fail(err)
	}
	return true, nil
}

func (b *Backend) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	defer b.release()
	return b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
}

func (b *Backend) exists(ctx context.Context, key string) (bool, error) {
	_, err := b.head(ctx, key)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// pathFor names a key for humans: its storage path.
func (b *Backend) pathFor(key string) string {
	if p, ok := pathOf(b.prefix, key); ok {
		return p
	}
	return key
}

// copySource is CopyObject's x-amz-copy-source: bucket and key, each path segment
// URL-encoded. Spaces as %20 and "+" as %2B, never "+": AWS decodes the header as a
// path, versitygw with QueryUnescape, which reads "+" as a space.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	}
	return bucket + "/" + strings.Join(segs, "/")
}

// learnConditionalCopy finds out, once, whether the server honours If-None-Match on
// CopyObject: it writes two probe objects beside key and copies one onto the other
// conditionally. A server that honours the header refuses (412); one that ignores it
// copies; one that rejects it (501, 400) is treated as ignoring it. The probes are
// removed. A failure other than the server's answer is returned and the question
// stays open.
func (b *Backend) learnConditionalCopy(ctx context.Context, key string) (bool, error) {
	p := b.copyProbe()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != exclusiveUnknown {
		return p.state == exclusiveHonoured, nil
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return false, err
	}
	probe := key + ".copyprobe-" + hex.EncodeToString(r[:])
	from, to := probe+"-a", probe+"-b"
	defer func() {
		for _, k := range []string{from, to} {
			if err := b.acquire(ctx); err == nil {
				b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(k)})
				b.release()
			}
		}
	}()
	for _, k := range []string{from, to} {
		if err := b.put(ctx, k, []byte("probe"), false); err != nil {
			return false, fmt.Errorf("probing conditional copies: %w", err)
		}
	}
	if err := b.acquire(ctx); err != nil {
		return false, err
	}
	_, err := b.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:      aws.String(b.bucket),
		Key:         aws.String(to),
		CopySource:  aws.String(copySource(b.bucket, from)),
		IfNoneMatch: aws.String("*"),
	})
	b.release()
	switch {
	case err == nil:
		p.state = exclusiveIgnored
	case isConditionFailed(err):
		p.state = exclusiveHonoured
	case isNotImplemented(err) || isBadRequest(err):
		p.state = exclusiveIgnored
	default:
		return false, fmt.Errorf("probing conditional copies: %w", err)
	}
	return p.state == exclusiveHonoured, nil
}

func isConflict(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ConditionalRequestConflict" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusConflict
}

// isBadRequest is a 400: how some servers reject a header they do not support.
func isBadRequest(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "InvalidArgument" || ae.ErrorCode() == "InvalidRequest") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusBadRequest
}

// modifiedAfter tells whether an object's time is after since (never when since is
// zero: no condition).
func modifiedAfter(t *time.Time, since time.Time) bool {
	return !since.IsZero() && t != nil && t.After(since)
}
