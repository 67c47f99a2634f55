package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"weak"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

var _ storage.Writer = (*Backend)(nil)

// Whether the server honours If-None-Match on PutObject is learnt once per Backend, at
// the first create-if-absent: AWS S3 (since 2024), MinIO and versitygw do; some
// S3-compatible servers reject the header (501) and others ignore it silently, which
// would make every create succeed.
type exclusiveState int

const (
	exclusiveUnknown exclusiveState = iota
	exclusiveHonoured
	exclusiveIgnored
)

// exclusiveProbes maps a Backend (weakly: an entry goes with its Backend) to what
// its server did with If-None-Match.
var exclusiveProbes sync.Map // weak.Pointer[Backend] -> *exclusiveProbe

type exclusiveProbe struct {
	mu    sync.Mutex
	state exclusiveState
}

func (b *Backend) probe() *exclusiveProbe {
	k := weak.Make(b)
	if p, ok := exclusiveProbes.Load(k); ok {
		return p.(*exclusiveProbe)
	}
	p, loaded := exclusiveProbes.LoadOrStore(k, &exclusiveProbe{})
	if !loaded {
		runtime.AddCleanup(b, func(k weak.Pointer[Backend]) { exclusiveProbes.Delete(k) }, k)
	}
	return p.(*exclusiveProbe)
}

// ExclusiveCreate reports whether the server was seen to honour If-None-Match. It is
// false until the first WriteFile with ifAbsent has found out: ask after that write.
func (b *Backend) ExclusiveCreate() bool {
	p := b.probe()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == exclusiveHonoured
}

// WriteFile puts an object, whole (a PutObject is atomic). With ifAbsent it is a
// conditional PutObject (If-None-Match: *) where the server honours one, refused with
// ErrExist when the key exists; elsewhere a HeadObject then a plain PutObject, which a
// concurrent writer can slip between (ExclusiveCreate is then false).
func (b *Backend) WriteFile(ctx context.Context, p string, data []byte, ifAbsent bool) error {
	key, err := b.key(p)
	if err != nil {
		return err
	}
	if !ifAbsent {
		return b.putWrapped(ctx, p, key, data, false)
	}
	honoured, err := b.learnExclusive(ctx, key)
	if err != nil {
		return err
	}
	if honoured {
		return b.putWrapped(ctx, p, key, data, true)
	}
	if _, err := b.Stat(ctx, p); err == nil {
		return fmt.Errorf("%s: %w", p, storage.ErrExist)
	} else if !storage.IsNotExist(err) {
		return err
	}
	return b.putWrapped(ctx, p, key, data, false)
}

// RemoveFile deletes one object; S3 reports success for a missing key.
func (b *Backend) RemoveFile(ctx context.Context, p string) error {
	key, err := b.key(p)
	if err != nil {
		return err
	}
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	_, err = b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}

func (b *Backend) putWrapped(ctx context.Context, p, key string, data []byte, ifAbsent bool) error {
	err := b.put(ctx, key, data, ifAbsent)
	switch {
	case err == nil:
		return nil
	case ifAbsent && isConditionFailed(err):
		return fmt.Errorf("%s: %w", p, storage.ErrExist)
	default:
		return fmt.Errorf("writing %s: %w", p, err)
	}
}

func (b *Backend) put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	_, err := b.client.PutObject(ctx, in)
	return err
}

// learnExclusive finds out, once, whether the server honours If-None-Match: it
// creates a probe object beside key conditionally twice; a server that honours the
// header refuses the second. The probe is removed. A failure other than the server's
// answer is returned and the question stays open for the next write.
func (b *Backend) learnExclusive(ctx context.Context, key string) (bool, error) {
	p := b.probe()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != exclusiveUnknown {
		return p.state == exclusiveHonoured, nil
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return false, err
	}
	probe := key + ".probe-" + hex.EncodeToString(r[:])
	defer func() {
		if err := b.acquire(ctx); err == nil {
			b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(probe)})
			b.release()
		}
	}()
	first := b.put(ctx, probe, []byte("probe"), true)
	if isNotImplemented(first) {
		p.state = exclusiveIgnored
		return false, nil
	}
	if first != nil {
		return false, fmt.Errorf("probing conditional writes: %w", first)
	}
	switch second := b.put(ctx, probe, []byte("probe"), true); {
	case second == nil:
		p.state = exclusiveIgnored
	case isConditionFailed(second):
		p.state = exclusiveHonoured
	case isNotImplemented(second):
		p.state = exclusiveIgnored
	default:
		return false, fmt.Errorf("probing conditional writes: %w", second)
	}
	return p.state == exclusiveHonoured, nil
}

// isConditionFailed reports a refused If-None-Match: 412 PreconditionFailed, or 409
// ConditionalRequestConflict (AWS: a concurrent conditional write to the key won).
func isConditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

func isNotImplemented(err error) bool {
	if err == nil {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotImplemented
}
