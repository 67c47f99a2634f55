package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/lock"
	"github.com/clean-registry/clean-registry/v2/internal/storage"
)

// takeLock takes the storage's lock for a real run, waiting up to --wait for a run
// that holds it. release gives it back; it never fails the run: a lock left behind
// is broken by the next run once its holder is gone.
func takeLock(ctx context.Context, b storage.Backend, o options, stderr io.Writer) (release func(), err error) {
	l, err := lock.Acquire(ctx, b, lock.Options{
		Wait:    o.wait,
		Command: strings.Join(os.Args, " "),
		Log:     func(msg string) { fmt.Fprintln(stderr, "WARNING: "+msg) },
	})
	if err != nil {
		return nil, err
	}
	return func() {
		// The run's context may be cancelled (a signal): the lock still goes.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := l.Lost(); err != nil {
			fmt.Fprintln(stderr, "WARNING: the storage lock was lost during the run (another run may have worked at the same time; a rerun converges): "+err.Error())
		}
		if err := l.Release(ctx); err != nil {
			fmt.Fprintln(stderr, "WARNING: releasing the storage lock: "+err.Error())
		}
	}, nil
}
