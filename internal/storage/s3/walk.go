package s3

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// maxFanOutDepth bounds the levels listed with a delimiter to find prefixes to list in
// parallel: blobs/ -> sha256/ -> the 256 XX/ takes two, repositories/ -> names one,
// a lone namespace one more.
const maxFanOutDepth = 4

// Walk lists everything below dir. The tree is first split into directories with
// delimiter listings, level by level, until there are at least as many as jobs (the
// blobs directory gives its 256 two-hex-digit directories, the repositories directory
// its first-level names); sibling directories are then grouped by leading string into
// about jobs shards (the 256 blob directories into "0" to "f"), and each shard is
// listed flat, in pages of 1,000 keys, concurrently: a few large listings rather than
// one small one per directory, since a server's cost is per key listed plus a fixed
// cost per request. Sizes, times and ETags come from the listings. fn runs on a
// separate pool of jobs goroutines, so that reads it makes (tag links) overlap with
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

// listTree fans out with delimiter listings, then lists the prefixes found flat, each
// group of siblings that shares a leading string in one listing (see groupPrefixes).
func (b *Backend) listTree(ctx context.Context, prefix string, emit func(types.Object) error) error {
	level := map[string][]string{"": {prefix}} // directories to list, by parent
	for depth := 0; depth < maxFanOutDepth && count(level) < b.jobs && count(level) > 0; depth++ {
		var dirs []string
		for _, d := range level {
			dirs = append(dirs, d...)
		}
		next, err := b.listLevel(ctx, dirs, emit)
		if err != nil {
			return err
		}
		level = next
	}
	shards := groupLevel(level, b.jobs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for _, s := range shards {
		g.Go(func() error {
			return b.listFlat(gctx, s.prefix, func(o types.Object) error {
				if s.group && !strings.Contains(aws.ToString(o.Key)[len(s.parent):], "/") {
					return nil // directly below the parent: its delimiter listing emitted it
				}
				return emit(o)
			})
		})
	}
	return g.Wait()
}

func count(level map[string][]string) int {
	n := 0
	for _, dirs := range level {
		n += len(dirs)
	}
	return n
}

// shard is one flat listing of a walk: every key that starts with prefix. A group
// prefix, naming several sibling directories of parent (see groupPrefixes), also
// matches objects directly below parent, which parent's delimiter listing already
// gave: those are skipped.
type shard struct {
	prefix, parent string
	group          bool
}

// groupLevel turns the directories found below each listed prefix into about jobs
// shards in all, each parent's share in proportion to its directories.
func groupLevel(children map[string][]string, jobs int) []shard {
	total := 0
	parents := make([]string, 0, len(children))
	for parent, dirs := range children {
		total += len(dirs)
		parents = append(parents, parent)
	}
	sort.Strings(parents)
	var shards []shard
	for _, parent := range parents {
		dirs := children[parent]
		want := max(1, (jobs*len(dirs)+total-1)/max(total, 1))
		isDir := make(map[string]bool, len(dirs))
		for _, d := range dirs {
			isDir[d] = true
		}
		for _, p := range groupPrefixes(parent, dirs, want) {
			shards = append(shards, shard{prefix: p, parent: parent, group: !isDir[p]})
		}
	}
	return shards
}

// groupPrefixes splits dirs, the directories (common prefixes, each parent + one name
// + "/") found below parent, into groups of at most len(dirs)/want directories (so
// about want groups or more), each named by the leading string its directories and no
// other directory of parent start with: the 256 two-hex-digit directories of
// blobs/sha256/ make 16 groups "0" to "f" for 16 jobs, 16 listings of about 1/16 of
// the blobs each instead of 256 small ones. A group too large is split by the character
// after its directories' common prefix, so the groups are trie nodes: disjoint, and
// together they cover every directory. A group of one directory is named by the
// directory itself.
func groupPrefixes(parent string, dirs []string, want int) []string {
	sorted := slices.Clone(dirs)
	sort.Strings(sorted)
	limit := (len(sorted) + want - 1) / max(want, 1)
	var names []string
	var split func(name string, dirs []string)
	split = func(name string, dirs []string) {
		if len(dirs) == 1 {
			names = append(names, dirs[0])
			return
		}
		if len(dirs) <= limit {
			names = append(names, name)
			return
		}
		// Distinct names of the form parent + segment + "/" (no "/" inside a segment):
		// their common prefix is shorter than each of them.
		first, last := dirs[0], dirs[len(dirs)-1]
		n := 0
		for n < len(first) && n < len(last) && first[n] == last[n] {
			n++
		}
		for i := 0; i < len(dirs); {
			j := i + 1
			for j < len(dirs) && dirs[j][:n+1] == dirs[i][:n+1] {
				j++
			}
			split(dirs[i][:n+1], dirs[i:j])
			i = j
		}
	}
	if len(sorted) > 0 {
		split(parent, sorted)
	}
	return names
}

// listLevel lists each prefix with a "/" delimiter, concurrently: the objects directly
// below are emitted, the common prefixes returned by the prefix they were found below.
func (b *Backend) listLevel(ctx context.Context, prefixes []string, emit func(types.Object) error) (map[string][]string, error) {
	var mu sync.Mutex
	next := map[string][]string{}
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
					next[prefix] = append(next[prefix], aws.ToString(cp.Prefix))
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
