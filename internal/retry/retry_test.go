package retry

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	top := func(k int64) int64 { return k - 1 } // the largest draw
	ms := time.Millisecond
	for _, c := range []struct {
		p    Policy
		n    int
		want time.Duration // ceiling, exclusive
	}{
		{Policy{Base: 100 * ms, Max: time.Second}, 0, 100 * ms},
		{Policy{Base: 100 * ms, Max: time.Second}, 1, 200 * ms},
		{Policy{Base: 100 * ms, Max: time.Second}, 3, 800 * ms},
		{Policy{Base: 100 * ms, Max: time.Second}, 4, time.Second},
		{Policy{Base: 100 * ms, Max: time.Second}, 60, time.Second},
		{Policy{Base: 100 * ms, Max: time.Second}, 1000, time.Second},
		{Policy{Base: 100 * ms}, 5, 100 * ms},                     // no Max: Base caps
		{Policy{Base: time.Second, Max: 100 * ms}, 0, 100 * ms},   // Max caps Base too
		{Policy{Base: 1, Max: math.MaxInt64}, 200, math.MaxInt64}, // no overflow
		{Policy{Base: 1, Max: 1}, 3, 1},
		{Policy{}, 3, 0},
	} {
		got := c.p.delay(c.n, top)
		if want := max(c.want-1, 0); got != want {
			t.Errorf("%+v attempt %d: largest wait %v, want %v", c.p, c.n, got, want)
		}
		if got := c.p.delay(c.n, func(int64) int64 { return 0 }); got != 0 {
			t.Errorf("%+v attempt %d: smallest wait %v, want 0", c.p, c.n, got)
		}
	}
	// Real draws stay within the ceiling and spread over it.
	p := Policy{Base: 10 * ms, Max: 40 * ms}
	var low, high bool
	for range 1000 {
		d := p.delay(5, func(k int64) int64 { return rand.Int64N(k) })
		if d < 0 || d >= 40*ms {
			t.Fatalf("wait %v outside [0, 40ms)", d)
		}
		low, high = low || d < 10*ms, high || d > 30*ms
	}
	if !low || !high {
		t.Error("waits not spread over [0, ceiling): no full jitter")
	}
}

type transient struct{ error }

func TestDo(t *testing.T) {
	ctx := context.Background()
	fast := Policy{Attempts: 4, Base: time.Microsecond, Max: 10 * time.Microsecond}
	permanent := errors.New("permanent")
	flaky := transient{io.ErrUnexpectedEOF}
	for _, c := range []struct {
		name      string
		p         Policy
		retryable func(error) bool
		errs      []error // what op returns, attempt by attempt; nil after the list
		calls     int
		want      error // matched with errors.Is; nil means success
		gaveUp    bool  // an *Error comes back
	}{
		{"success", fast, As[transient], nil, 1, nil, false},
		{"success after retries", fast, As[transient], []error{flaky, flaky, flaky}, 4, nil, false},
		{"not retryable: as it is", fast, As[transient], []error{flaky, permanent}, 2, permanent, false},
		{"attempts used up", fast, As[transient], []error{flaky, flaky, flaky, flaky, flaky}, 4, flaky, true},
		{"nil classifier retries all", fast, nil, []error{permanent, permanent}, 3, nil, false},
		{"one attempt", Policy{Attempts: 1}, nil, []error{flaky}, 1, flaky, true},
		{"attempts below 1 mean 1", Policy{}, nil, []error{flaky}, 1, flaky, true},
	} {
		calls := 0
		err := c.p.Do(ctx, c.retryable, func(context.Context) error {
			calls++
			if calls <= len(c.errs) {
				return c.errs[calls-1]
			}
			return nil
		})
		if calls != c.calls {
			t.Errorf("%s: %d calls, want %d", c.name, calls, c.calls)
		}
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
		var re *Error
		if errors.As(err, &re) != c.gaveUp {
			t.Errorf("%s: err %#v: *Error %v, want %v", c.name, err, !c.gaveUp, c.gaveUp)
		}
		if c.gaveUp && (re.Attempts != c.calls || re.Ctx != nil || !strings.Contains(err.Error(), "gave up after")) {
			t.Errorf("%s: %+v %q", c.name, re, err)
		}
		if !c.gaveUp && err != c.want {
			t.Errorf("%s: err %v changed, want it as it is", c.name, err)
		}
		if c.gaveUp && !As[transient](err) && c.want == flaky {
			t.Errorf("%s: the typed error is lost in %v", c.name, err)
		}
	}
}

func TestDoContext(t *testing.T) {
	flaky := transient{errors.New("flaky")}
	slow := Policy{Attempts: 10, Base: time.Hour, Max: time.Hour}
	// Ended during a wait: Do returns at once, with the last error and ctx's.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	calls := 0
	err := slow.Do(ctx, As[transient], func(context.Context) error { calls++; return flaky })
	if time.Since(start) > 10*time.Second {
		t.Fatal("Do waited on after ctx ended")
	}
	var re *Error
	if calls != 1 || !errors.Is(err, context.Canceled) || !errors.Is(err, flaky) || !errors.As(err, &re) || re.Attempts != 1 {
		t.Fatalf("calls %d, err %v", calls, err)
	}
	if !strings.Contains(err.Error(), "flaky (retries stopped after 1 attempt: context canceled)") {
		t.Errorf("message %q", err)
	}
	// Already ended: op runs once (it gets ctx and answers for it), no wait.
	calls = 0
	err = slow.Do(ctx, nil, func(ctx context.Context) error { calls++; return ctx.Err() })
	if calls != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("calls %d, err %v", calls, err)
	}
	// A deadline counts the same.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	p := Policy{Attempts: 1000, Base: time.Millisecond, Max: 5 * time.Millisecond}
	calls = 0
	err = p.Do(ctx, nil, func(context.Context) error { calls++; return flaky })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, flaky) || calls < 2 || calls >= 1000 {
		t.Fatalf("calls %d, err %v", calls, err)
	}
}

func TestAs(t *testing.T) {
	wrapped := errors.Join(errors.New("x"), transient{io.EOF})
	if !As[transient](wrapped) || As[transient](io.EOF) || As[transient](nil) {
		t.Fatal("As does not follow errors.As")
	}
}
