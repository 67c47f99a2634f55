package check

import (
	"context"
	"fmt"
	"io"

	godigest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/clean-registry/clean-registry/v2/internal/inventory"
	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// verify re-hashes the blobs ids, jobs at a time, streaming each; it returns those
// whose content is not their digest's, or that went meanwhile. A read that fails
// otherwise stops it: the storage cannot tell.
func verify(ctx context.Context, b storage.Backend, inv *inventory.Inventory, ids []inventory.ID, jobs int, tr *progress.Tracker) (map[inventory.ID]verdict, error) {
	op, ok := b.(storage.Opener)
	if !ok {
		return nil, fmt.Errorf("--verify-digests: %s cannot stream its files", b)
	}
	st := tr.Begin("verifying digests", "blobs", int64(len(ids)))
	defer st.End()
	var total int64
	for _, id := range ids {
		total += max(inv.Blobs[id].Size, 0)
	}
	st.SetTotalBytes(total)
	verdicts := make([]*verdict, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, id := range ids {
		g.Go(func() error {
			v, err := hash(gctx, op, inv.Blobs[id].Digest, st)
			verdicts[i] = v
			st.Add(1)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := map[inventory.ID]verdict{}
	for i, v := range verdicts {
		if v != nil {
			out[ids[i]] = *v
		}
	}
	return out, nil
}

// hash reads blob d and returns nil when its content is d's.
func hash(ctx context.Context, op storage.Opener, d layout.Digest, st *progress.Stage) (*verdict, error) {
	r, err := op.Open(ctx, layout.BlobData(d))
	if storage.IsNotExist(err) {
		return &verdict{gone: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("verifying blob %s: %w", d, err)
	}
	defer r.Close()
	want := godigest.Digest(d.String())
	got, err := want.Algorithm().FromReader(&counter{r: r, st: st})
	if err != nil {
		return nil, fmt.Errorf("verifying blob %s: %w", d, err)
	}
	if got != want {
		return &verdict{actual: got.String()}, nil
	}
	return nil, nil
}

// counter counts what is read into st's bytes, for the progress bar.
type counter struct {
	r  io.Reader
	st *progress.Stage
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.st.AddBytes(int64(n))
	return n, err
}
