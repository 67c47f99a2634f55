// Package parallel runs bounded concurrent work whose size is not known up front.
package parallel

import (
	"context"
	"sync"
)

// Walk visits every root and every item a visit pushes, with at most jobs visits
// running at once (jobs < 1 counts as 1), for instance the directories of a tree:
// visiting a directory pushes its subdirectories. Items are visited in no particular
// order (the most recently pushed first, which keeps the pending set small on a deep
// tree).
//
// push never blocks: pending items wait in a growing stack, so a visit that pushes
// many items cannot deadlock the pool however few workers there are. push may be
// called only during the visit it was passed to.
//
// The first error a visit returns, or ctx's error once ctx is done, stops the walk:
// no new visit starts, the ctx given to the visits in flight is cancelled, and Walk
// returns that error after they have all returned. Walk never returns while a visit
// runs.
//
// Items are plain values and the stack is reused, so a walk costs a few allocations
// in all, not per item; jobs-1 goroutines run beside the caller's, none per item.
// (errgroup.SetLimit does not fit: a visit blocked in Go waiting for a slot would
// hold the slot it waits for.)
func Walk[T any](ctx context.Context, jobs int, roots []T, visit func(ctx context.Context, item T, push func(T)) error) error {
	if len(roots) == 0 {
		return nil
	}
	visitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &walker[T]{parent: ctx, cancel: cancel}
	w.cond.L = &w.mu
	w.stack = make([]T, len(roots), max(len(roots), 64))
	copy(w.stack, roots)
	// Workers waiting for items must also wake up when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.fail(ctx.Err())
		w.mu.Unlock()
	})
	defer stop()
	push := w.push
	work := func() { w.work(visitCtx, visit, push) }
	var wg sync.WaitGroup
	for range max(jobs, 1) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	// Locked: ctx's AfterFunc may be recording its error right now.
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

type walker[T any] struct {
	parent context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	cond   sync.Cond // signalled when items arrive, the walk ends, or it fails
	stack  []T       // items pushed, not yet visited
	busy   int       // visits running: they may push more
	err    error
}

func (w *walker[T]) push(item T) {
	w.mu.Lock()
	if w.err == nil {
		w.stack = append(w.stack, item)
	}
	w.mu.Unlock()
	w.cond.Signal()
}

// fail records the first error and wakes every waiting worker. w.mu is held.
func (w *walker[T]) fail(err error) {
	if w.err == nil {
		w.err = err
		w.stack = nil
		w.cancel()
		w.cond.Broadcast()
	}
}

// work visits items until none is left and no visit in flight can push more, or the
// walk failed.
func (w *walker[T]) work(ctx context.Context, visit func(context.Context, T, func(T)) error, push func(T)) {
	var zero T
	w.mu.Lock()
	for {
		for len(w.stack) == 0 && w.busy > 0 && w.err == nil {
			w.cond.Wait()
		}
		if w.err != nil || len(w.stack) == 0 {
			w.mu.Unlock()
			return
		}
		// The AfterFunc above records ctx's end asynchronously: checking here as well
		// means that no visit starts once ctx is done.
		if err := w.parent.Err(); err != nil {
			w.fail(err)
			w.mu.Unlock()
			return
		}
		n := len(w.stack) - 1
		item := w.stack[n]
		w.stack[n] = zero // let the GC have what the item holds once visited
		w.stack = w.stack[:n]
		w.busy++
		w.mu.Unlock()
		err := visit(ctx, item, push)
		w.mu.Lock()
		w.busy--
		if err != nil {
			w.fail(err)
		} else if w.busy == 0 && len(w.stack) == 0 {
			w.cond.Broadcast() // the walk is over: release the waiting workers
		}
	}
}
