// Package retry is the one retry policy of clean-registry: bounded attempts,
// exponential backoff with full jitter, capped waits, and a context that ends it.
// What is worth retrying is the caller's call: it knows the errors of its context.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy says how often and how patiently an operation is retried. The wait after
// the n-th failed attempt (n from 0) is drawn uniformly from [0, min(Max, Base*2^n)):
// full jitter, so that many clients failing together do not retry together.
type Policy struct {
	Attempts int           // tries in all, the first included; below 1 counts as 1
	Base     time.Duration // ceiling of the first wait
	Max      time.Duration // ceiling of every wait; 0 means Base
}

// Do runs op until it succeeds, fails with an error retryable does not accept (a nil
// retryable accepts every error), the attempts are used up, or ctx ends during a
// wait. An error retryable rejects is returned as it is; a retryable one that is the
// last comes back in an *Error. op gets ctx and should honour it.
func (p Policy) Do(ctx context.Context, retryable func(error) bool, op func(context.Context) error) error {
	attempts := max(p.Attempts, 1)
	for n := 0; ; n++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if retryable != nil && !retryable(err) {
			return err
		}
		if n+1 >= attempts {
			return &Error{Err: err, Attempts: n + 1}
		}
		if ctx.Err() != nil {
			return &Error{Err: err, Attempts: n + 1, Ctx: ctx.Err()}
		}
		t := time.NewTimer(p.delay(n, rand.Int64N))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return &Error{Err: err, Attempts: n + 1, Ctx: ctx.Err()}
		}
	}
}

// delay is the wait after failed attempt n, rnd(k) drawing from [0, k).
func (p Policy) delay(n int, rnd func(int64) int64) time.Duration {
	ceiling := p.Max
	if ceiling <= 0 {
		ceiling = p.Base
	}
	if p.Base <= 0 || ceiling <= 0 {
		return 0
	}
	// Base*2^n without overflowing: stop doubling at the ceiling.
	d := min(p.Base, ceiling)
	for i := 0; i < n && d < ceiling; i++ {
		if d > ceiling/2 {
			d = ceiling
		} else {
			d *= 2
		}
	}
	return time.Duration(rnd(int64(d)))
}

// Error is a retryable failure Do gave up on: the last attempt's error, and the
// context's when it ended the retries. errors.Is and errors.As see both.
type Error struct {
	Err      error
	Attempts int
	Ctx      error
}

func (e *Error) Error() string {
	attempts := "1 attempt"
	if e.Attempts != 1 {
		attempts = fmt.Sprintf("%d attempts", e.Attempts)
	}
	if e.Ctx != nil {
		return fmt.Sprintf("%v (retries stopped after %s: %v)", e.Err, attempts, e.Ctx)
	}
	return fmt.Sprintf("%v (gave up after %s)", e.Err, attempts)
}

func (e *Error) Unwrap() []error {
	if e.Ctx != nil {
		return []error{e.Err, e.Ctx}
	}
	return []error{e.Err}
}

// As is a classifier for Do: an error is retryable when it holds an E, a type that
// marks a transient failure (errors.As).
func As[E error](err error) bool {
	var target E
	return errors.As(err, &target)
}
