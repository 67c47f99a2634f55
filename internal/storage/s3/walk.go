package s3

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/internal/storage"
)

// maxFanOutDepth bounds the levels listed with a delimiter to find prefixes to list in
// parallel: blobs/ -> sha256/ -> the 256 XX/ takes two, repositories/ -> names one,
// a lone namespace one more.
const maxFanOutDepth = 4

// Walk lists everything below dir. The tree is first split into prefixes with
// delimiter listings, level by level, until there are at least as many prefixes as
// jobs (the blobs directory gives its 256 two-hex-digit prefixes, the repositories
// directory its first-level names); each prefix is then listed flat, in pages of
// 1,000 keys, concurrently. Sizes, times and ETags come from the listings. fn runs on
// a separate pool of jobs goroutines, so that reads it makes (tag links) overlap with
// each other and with the listings.
func (b *Backend) Walk(ctx context.Context, dir string, fn func(storage.File) error) error {
	if dir != "" {
		if _, err := b.key(strings.TrimSuffix(dir, "/")); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	files := make(chan storage.File, 4096)
	emit := func(o types.Object) error {
		key := aws.ToString(o.Key)
		p, ok := pathOf(b.prefix, key)
		if !ok || p == "" || strings.HasSuffix(key, "/") {
			// Outside the root, or a zero-byte "folder" marker some tools create.
			return nil
		}
		f := storage.File{
			Path:    p,
			Size:    aws.ToInt64(o.Size),
			ModTime: aws.ToTime(o.LastModified),
			ETag:    unquote(aws.ToString(o.ETag)),
		}
		select {
		case files <- f:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	}
	g.Go(func() error {
		defer close(files)
		return b.listTree(gctx, dirPrefix(b.prefix, dir), emit)
	})
	for i := 0; i < b.jobs; i++ {
		g.Go(func() error {
			for f := range files {
				if gctx.Err() != nil {
					continue // drain, so the lister never blocks
				}
				if err := fn(f); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// listTree fans out with delimiter listings, then lists each prefix found flat.
func (b *Backend) listTree(ctx context.Context, prefix string, emit func(types.Object) error) error {
	level := []string{prefix}
	for depth := 0; depth < maxFanOutDepth && len(level) < b.jobs && len(level) > 0; depth++ {
		next, err := b.listLevel(ctx, level, emit)
		if err != nil {
			return err
		}
		level = next
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for _, p := range level {
		g.Go(func() error { return b.listFlat(gctx, p, emit) })
	}
	return g.Wait()
}

// listLevel lists each prefix with a "/" delimiter, concurrently: the objects directly
// below are emitted, the common prefixes returned.
func (b *Backend) listLevel(ctx context.Context, prefixes []string, emit func(types.Object) error) ([]string, error) {
	var mu sync.Mutex
	var next []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for _, prefix := range prefixes {
		g.Go(func() error {
			return b.paginate(gctx, &s3.ListObjectsV2Input{
				Bucket:    aws.String(b.bucket),
				Prefix:    aws.String(prefix),
				Delimiter: aws.String("/"),
			}, func(out *s3.ListObjectsV2Output) error {
				for _, o := range out.Contents {
					if err := emit(o); err != nil {
						return err
					}
				}
				mu.Lock()
				for _, cp := range out.CommonPrefixes {
					next = append(next, aws.ToString(cp.Prefix))
				}
				mu.Unlock()
				return nil
			})
		})
	}
	err := g.Wait()
	return next, err
}

// listFlat lists every key below prefix, in pages.
func (b *Backend) listFlat(ctx context.Context, prefix string, each func(types.Object) error) error {
	return b.paginate(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.bucket),
		Prefix: aws.String(prefix),
	}, func(out *s3.ListObjectsV2Output) error {
		for _, o := range out.Contents {
			if err := each(o); err != nil {
				return err
			}
		}
		return nil
	})
}

// paginate sends the pages' requests one after another, each holding a request slot
// only while it is in flight, never while its page is being handed on.
func (b *Backend) paginate(ctx context.Context, in *s3.ListObjectsV2Input, page func(*s3.ListObjectsV2Output) error) error {
	pages := s3.NewListObjectsV2Paginator(b.client, in)
	for pages.HasMorePages() {
		if err := b.acquire(ctx); err != nil {
			return err
		}
		out, err := pages.NextPage(ctx)
		b.release()
		if err != nil {
			return err
		}
		if err := page(out); err != nil {
			return err
		}
	}
	return nil
}
