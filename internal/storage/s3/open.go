package s3

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// Open streams an object (GetObject). The stream holds one of the backend's request
// slots until it is closed, so that -j bounds the downloads too.
func (b *Backend) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	key, err := b.key(p)
	if err != nil {
		return nil, err
	}
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil {
		b.release()
		if isNotFound(err) {
			return nil, fmt.Errorf("%s: %w", p, storage.ErrNotExist)
		}
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return &object{ReadCloser: out.Body, release: b.release}, nil
}

type object struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (o *object) Close() error {
	err := o.ReadCloser.Close()
	o.once.Do(o.release)
	return err
}
