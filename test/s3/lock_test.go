package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/lock"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// The S3 backend's create-if-absent against a real server: versitygw honours
// If-None-Match: * on PutObject (refusing with 412 PreconditionFailed), so the
// backend reports ExclusiveCreate after its first conditional write.
func TestLockConditionalCreate(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)
	b := open(t, srv, bucket, "/registry", 4)
	const p = layout.LockFile
	const key = "registry/" + p

	if b.ExclusiveCreate() {
		t.Error("ExclusiveCreate before the server was asked")
	}
	if err := b.WriteFile(ctx, p, []byte("first"), true); err != nil {
		t.Fatal(err)
	}
	if !b.ExclusiveCreate() {
		t.Fatal("the server ignores If-None-Match: * on PutObject; the lock is best effort here")
	}
	err := b.WriteFile(ctx, p, []byte("second"), true)
	if !errors.Is(err, storage.ErrExist) || !storage.IsExist(err) {
		t.Fatalf("second create: %v, want ErrExist", err)
	}
	// The server's own answer, as the SDK gives it.
	_, err = srv.Client().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: strings.NewReader("raw"), IfNoneMatch: aws.String("*")})
	var re *awshttp.ResponseError
	var ae smithy.APIError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusPreconditionFailed ||
		!errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
		t.Errorf("a raw conditional PutObject on an existing key: %v, want 412 PreconditionFailed", err)
	}
	if got, err := b.ReadFile(ctx, p, 100); err != nil || string(got) != "first" {
		t.Fatalf("after a refused create: %q, %v", got, err)
	}
	if err := b.WriteFile(ctx, p, []byte("third"), false); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.ReadFile(ctx, p, 100); string(got) != "third" {
		t.Errorf("after an overwrite: %q", got)
	}
	// Only the file itself: the probe that found out is gone.
	if keys := listKeys(t, srv, bucket); !slices.Equal(keys, []string{key}) {
		t.Errorf("bucket holds %v, want just %s", keys, key)
	}
	for range 2 { // a missing file counts as removed
		if err := b.RemoveFile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if keys := listKeys(t, srv, bucket); len(keys) != 0 {
		t.Errorf("after removal: %v", keys)
	}

	// Many conditional creates at once: the server lets exactly one through.
	const writers = 16
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.WriteFile(ctx, p, fmt.Appendf(nil, "writer %d", i), true)
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !storage.IsExist(err):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent creates succeeded, want 1: %v", won, errs)
	}
}

func TestLockOnS3(t *testing.T) {
	srv := server.Get(t)
	ctx := context.Background()
	bucket := newBucket(t, srv)
	first := open(t, srv, bucket, "/registry", 4)
	second := open(t, srv, bucket, "/registry", 4) // another run: its own client

	l, err := lock.Acquire(ctx, first, lock.Options{Command: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = lock.Acquire(ctx, second, lock.Options{})
	var held *lock.HeldError
	if !errors.As(err, &held) || held.Holder.ID != l.Holder().ID {
		t.Fatalf("second run: %v, want a *HeldError naming the first", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, srv, bucket); len(keys) != 0 {
		t.Errorf("after release: %v", keys)
	}

	// Runs on separate clients racing for the lock: exactly one wins.
	const contenders = 8
	locks := make([]*lock.Lock, contenders)
	errs := make([]error, contenders)
	var wg sync.WaitGroup
	for i := range contenders {
		b := open(t, srv, bucket, "/registry", 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			locks[i], errs[i] = lock.Acquire(ctx, b, lock.Options{})
		}()
	}
	wg.Wait()
	won := 0
	for i := range locks {
		switch {
		case errs[i] == nil:
			won++
			defer locks[i].Release(ctx)
		case !lock.IsHeld(errs[i]):
			t.Errorf("contender %d: %v", i, errs[i])
		}
	}
	if won != 1 {
		t.Errorf("%d contenders hold the lock, want 1", won)
	}
}
