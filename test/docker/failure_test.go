package docker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
)

// TestFailurePaths: an error, SIGTERM (twice: the second during restoration) and a
// panic in the middle of a run all leave the registry running, and a run that had
// deleted blobs before failing still restarts it.
func TestFailurePaths(t *testing.T) {
	ctx := context.Background()
	name, id, addr, _ := startBindRegistry(t, "fail")
	f := fill(t, addr)
	c := runtimeClient(t)
	reg := resolve(t, c, name, options(t))
	injected := errors.New("injected failure")
	mustBePaused := statesDuring(t, "paused", id)
	afterward := func(t *testing.T, started string, wantRestart bool) {
		t.Helper()
		wantRestored(t, id, started, wantRestart)
		addr = addrOf(t, id)
	}

	t.Run("error after deleting", func(t *testing.T) {
		_, started := state(t, id)
		clean := cleanRun(t, reg, nil)
		err := c.WithQuiesced(ctx, reg, options(t), func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
			if err := mustBePaused(ctx, quiesced); err != nil {
				return docker.Outcome{}, err
			}
			out, err := clean(ctx, quiesced)
			if err != nil || !out.CacheStale() {
				return out, fmt.Errorf("the run deleted nothing (%v)", err)
			}
			return out, injected
		})
		if !errors.Is(err, injected) {
			t.Fatalf("got %v, want the injected error", err)
		}
		afterward(t, started, true)
		f.verifyKept(t, addr)
	})

	t.Run("SIGTERM", func(t *testing.T) {
		_, started := state(t, id)
		err := c.WithQuiesced(ctx, reg, options(t), func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
			if err := mustBePaused(ctx, quiesced); err != nil {
				return docker.Outcome{}, err
			}
			syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
			<-ctx.Done()
			// A second signal, caught while restoration begins, must not abandon it.
			syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
			return docker.Outcome{}, ctx.Err()
		})
		if err == nil || !strings.Contains(err.Error(), "terminated") {
			t.Fatalf("got %v, want an error naming the signal", err)
		}
		afterward(t, started, false)
	})

	t.Run("panic", func(t *testing.T) {
		_, started := state(t, id)
		func() {
			defer func() {
				if r := recover(); r != "injected panic" {
					t.Fatalf("recovered %v, want the injected panic re-raised", r)
				}
			}()
			c.WithQuiesced(ctx, reg, options(t), func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
				if err := mustBePaused(ctx, quiesced); err != nil {
					return docker.Outcome{}, err
				}
				panic("injected panic")
			})
		}()
		// What a panicking run deleted is unknown: the cache is refreshed.
		afterward(t, started, true)
		f.verifyKept(t, addr)
	})
}
