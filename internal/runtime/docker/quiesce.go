package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/clean-registry/clean-registry/v2/internal/blobcache"
	"github.com/clean-registry/clean-registry/v2/internal/report"
	"github.com/clean-registry/clean-registry/v2/internal/retry"
)

// RestoreTimeout bounds the restoration of the containers, which runs even after the
// run's context is cancelled.
var RestoreTimeout = 5 * time.Minute

// ReplacementTimeout bounds the wait for Swarm to replace a restarted task.
var ReplacementTimeout = 2 * time.Minute

type action uint8

const (
	paused action = iota + 1
	stopped
)

type done struct {
	member Container
	action action
	at     time.Time
}

// minPause is how long a pause lasts at least. The engine (Docker 20.10 seen here)
// learns of a pause twice: at once, and later from containerd's event stream; an
// unpause between the two is undone in its books, which then show a running
// container as paused.
const minPause = 250 * time.Millisecond

// Session is a registry quiesced by Quiesce, to be given back with Restore.
type Session struct {
	c    *Client
	reg  *Registry
	opts Options
	done []done
	// Quiesced: nothing can write to the storage while the session lasts (every
	// writer is paused or stopped, or the registry is read-only).
	Quiesced bool
	restored bool
}

// Quiesce pauses (or with opts.Stop, stops) every running container of the registry:
// clients of a paused registry wait rather than fail. A registry in read-only
// maintenance mode and stopped containers need nothing. On error, what was done is
// undone.
func (c *Client) Quiesce(ctx context.Context, reg *Registry, opts Options) (*Session, error) {
	s := &Session{c: c, reg: reg, opts: opts, Quiesced: reg.Elsewhere == 0}
	for _, m := range reg.Containers {
		if ctx.Err() != nil {
			return nil, s.undo(fmt.Errorf("interrupted before quiescing %s: %w", m.Name, context.Cause(ctx)))
		}
		switch m.State {
		case "running":
			if m.Registry && m.ReadOnly {
				s.logf("registry %s is read-only: left running", m.Name)
				continue
			}
			// A signal must not cut an engine call short: the engine may act on a
			// request whose answer never arrives. So the call runs to its end, and a
			// failed one is undone too, in case it took effect.
			callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			var err error
			if opts.Stop {
				err = c.api.ContainerStop(callCtx, m.ID, container.StopOptions{})
			} else {
				err = c.api.ContainerPause(callCtx, m.ID)
			}
			cancel()
			if err != nil {
				act := paused
				if opts.Stop {
					act = stopped
				}
				s.done = append(s.done, done{m, act, time.Now()})
				return nil, s.undo(fmt.Errorf("%s container %s: %w", verb(opts.Stop), m.Name, err))
			}
			if opts.Stop {
				s.done = append(s.done, done{m, stopped, time.Now()})
				s.logf("stopped container %s", m.Name)
			} else {
				s.done = append(s.done, done{m, paused, time.Now()})
				s.logf("paused container %s", m.Name)
			}
		case "paused":
			s.logf("container %s was already paused: left so", m.Name)
		case "restarting", "removing":
			return nil, s.undo(fmt.Errorf("container %s is %s: try again when it runs or has stopped", m.Name, m.State))
		}
	}
	return s, nil
}

func verb(stop bool) string {
	if stop {
		return "stopping"
	}
	return "pausing"
}

func (s *Session) undo(cause error) error {
	if err := s.Restore(context.WithoutCancel(context.Background()), Outcome{}); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func (s *Session) logf(format string, args ...any) {
	if s.opts.Log != nil {
		fmt.Fprintf(s.opts.Log, format+"\n", args...)
	}
}

func (s *Session) warnf(format string, args ...any) {
	if s.opts.Warn != nil {
		fmt.Fprintf(s.opts.Warn, "WARNING: "+format+"\n", args...)
	}
}

// Restore gives the containers back: after a run that deleted something a registry
// may have cached, registries with an in-memory blob descriptor cache are restarted
// (killed while still paused, so not one request is served from the stale cache,
// then started; Swarm replaces a task), a redis cache has the deleted digests'
// keys cleared; everything else is unpaused or started. It tries every container
// even when one fails, and runs at most once per session.
func (s *Session) Restore(ctx context.Context, out Outcome) error {
	if s.restored {
		return nil
	}
	s.restored = true
	ctx, cancel := context.WithTimeout(ctx, RestoreTimeout)
	defer cancel()
	stale := out.CacheStale()
	var errs []error

	// Redis first, while its registries are still paused.
	cleared := map[string]bool{} // the same redis, seen by several tasks, is cleared once
	for _, m := range s.reg.Containers {
		if !stale || !m.Registry || m.Cache != "redis" || cleared[fmt.Sprint(m.Redis)] {
			continue
		}
		cleared[fmt.Sprint(m.Redis)] = true
		if err := m.Redis.Clear(ctx, out); err != nil {
			s.warnf("registry %s: could not clear its redis cache (%v): %s", m.Name, err, blobcache.Advice(m.Redis))
		} else {
			s.logf("cleared the deleted digests from the redis cache of registry %s", m.Name)
		}
	}

	replaced := map[string][]string{} // service ID -> killed task containers
	for i := len(s.done) - 1; i >= 0; i-- {
		d := s.done[i]
		m := d.member
		if wait := minPause - time.Since(d.at); wait > 0 {
			time.Sleep(wait)
		}
		restart := stale && m.Registry && m.Cache == "inmemory"
		switch {
		case d.action == stopped:
			// A fresh start has a fresh cache.
			if err := retryEngine(ctx, func() error { return s.c.api.ContainerStart(ctx, m.ID, container.StartOptions{}) }); err != nil {
				errs = append(errs, fmt.Errorf("starting container %s: %w", m.Name, err))
				continue
			}
			s.logf("started container %s", m.Name)
		case restart && !s.opts.NoRestart:
			if err := s.restartPaused(ctx, m); err != nil {
				errs = append(errs, err)
				continue
			}
			if m.ServiceID != "" {
				replaced[m.ServiceID] = append(replaced[m.ServiceID], m.ID)
				s.logf("killed task container %s for Swarm to replace it: its blob descriptor cache may name deleted blobs", m.Name)
			} else {
				s.logf("restarted container %s: its blob descriptor cache may name deleted blobs", m.Name)
			}
		default:
			if err := s.unpause(ctx, m); err != nil {
				errs = append(errs, err)
				continue
			}
			s.logf("unpaused container %s", m.Name)
			if restart {
				s.warnf("registry %s keeps an in-memory blob descriptor cache that may name deleted blobs: "+
					"restart it before the next push (--no-restart was given)", m.Name)
			}
		}
	}
	for svc, killed := range replaced {
		if err := s.awaitReplacement(ctx, svc, killed, len(killed), false); err != nil {
			errs = append(errs, err)
		}
	}
	if stale {
		for _, m := range s.reg.Containers {
			if m.Registry && m.State == "paused" && m.Cache == "inmemory" {
				s.warnf("registry %s was paused before clean-registry ran and is left paused: "+
					"restart it rather than unpause it, its blob descriptor cache may name deleted blobs", m.Name)
			}
		}
	}
	return errors.Join(errs...)
}

// restartPaused kills a paused registry container and, unless Swarm manages it,
// starts it again. The engine delivers SIGKILL to a paused container and resumes it
// only then, so its stale cache never answers.
func (s *Session) restartPaused(ctx context.Context, m Container) error {
	err := retryEngine(ctx, func() error {
		err := s.c.api.ContainerKill(ctx, m.ID, "KILL")
		if err != nil && isNotRunning(err) {
			return nil
		}
		return err
	})
	if err != nil {
		// Never leave it paused: unpausing serves a stale cache, but serves.
		if uerr := s.c.api.ContainerUnpause(ctx, m.ID); uerr == nil {
			s.warnf("registry %s could not be restarted (%v) and was unpaused: restart it before the next push", m.Name, err)
			return nil
		}
		return fmt.Errorf("restarting container %s: %w", m.Name, err)
	}
	waitC, errC := s.c.api.ContainerWait(ctx, m.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("restarting container %s: %w", m.Name, err)
		}
	}
	if m.ServiceID != "" {
		return nil
	}
	if err := retryEngine(ctx, func() error { return s.c.api.ContainerStart(ctx, m.ID, container.StartOptions{}) }); err != nil {
		return fmt.Errorf("starting container %s again: %w", m.Name, err)
	}
	return nil
}

// unpause resumes a container and checks that the engine sees it running.
func (s *Session) unpause(ctx context.Context, m Container) error {
	if err := retryEngine(ctx, func() error { return s.c.api.ContainerUnpause(ctx, m.ID) }); err != nil {
		// A pause whose answer was lost may not have happened: nothing to undo.
		if ins, ierr := s.c.api.ContainerInspect(ctx, m.ID); ierr == nil && ins.State != nil && !ins.State.Paused {
			return nil
		}
		return fmt.Errorf("unpausing container %s: %w", m.Name, err)
	}
	ins, err := s.c.api.ContainerInspect(ctx, m.ID)
	if err != nil || ins.State == nil || !ins.State.Paused {
		return nil
	}
	if err := s.c.api.ContainerUnpause(ctx, m.ID); err != nil {
		s.warnf("the engine still reports container %s as paused after unpausing it (%v): "+
			"check it with docker ps, and restart it if it does not answer", m.Name, err)
	}
	return nil
}

func isNotRunning(err error) bool {
	return cerrdefs.IsConflict(err) || cerrdefs.IsNotFound(err)
}

// awaitReplacement waits until Swarm runs want tasks of the service on this node
// that are none of the old containers (those killed, and with want below their
// number, those still to be); a service whose restart policy would not replace
// them is force-updated, as it is with force (a task that exited 0 under the
// on-failure policy).
func (s *Session) awaitReplacement(ctx context.Context, serviceID string, old []string, want int, force bool) error {
	svc, _, err := s.c.api.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("service %s: %w", serviceID, err)
	}
	if rp := svc.Spec.TaskTemplate.RestartPolicy; force || (rp != nil && rp.Condition == swarm.RestartPolicyConditionNone) {
		spec := svc.Spec
		spec.TaskTemplate.ForceUpdate++
		if _, err := s.c.api.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("service %s: restarting its tasks: %w", svc.Spec.Name, err)
		}
	}
	info, err := s.c.api.Info(ctx)
	if err != nil {
		return err
	}
	gone := map[string]bool{}
	for _, id := range old {
		gone[id] = true
	}
	deadline := time.Now().Add(ReplacementTimeout)
	for {
		tasks, err := s.c.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", svc.ID), filters.Arg("desired-state", "running"))})
		if err == nil {
			fresh := 0
			for _, t := range tasks {
				if t.NodeID == info.Swarm.NodeID && t.Status.State == swarm.TaskStateRunning &&
					t.Status.ContainerStatus != nil && !gone[t.Status.ContainerStatus.ContainerID] {
					fresh++
				}
			}
			if fresh >= want {
				s.logf("service %s runs %d fresh task(s) on this node", svc.Spec.Name, fresh)
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s: its restarted tasks are not running after %v; see docker service ps %s",
				svc.Spec.Name, ReplacementTimeout, svc.Spec.Name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s: waiting for its tasks: %w", svc.Spec.Name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// engineRetry is how a restore retries an engine call: it must not give up on one
// transient failure, nor keep the registry down for long.
var engineRetry = retry.Policy{Attempts: 3, Base: 300 * time.Millisecond, Max: 2 * time.Second}

// retryEngine runs an engine call under engineRetry. A missing container, or one in a
// state that refuses the call, is the engine's answer, not a transient failure.
func retryEngine(ctx context.Context, f func() error) error {
	return engineRetry.Do(ctx, func(err error) bool {
		return !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err)
	}, func(context.Context) error { return f() })
}

// Outcome is what a run deleted that a registry's blob descriptor cache may still
// claim: blobcache.Outcome, named here for Run and Restore.
type Outcome = blobcache.Outcome

// OutcomeOf is blobcache.OutcomeOf: what a run's report says it deleted.
func OutcomeOf(rep *report.Report) Outcome { return blobcache.OutcomeOf(rep) }

// Run is the cleaning WithQuiesced wraps. quiesced tells whether nothing can write
// to the storage meanwhile (the grace period can then be 0). It returns what it
// deleted (OutcomeOf its report) also with an error: a run stopped part way may
// have deleted blobs.
type Run func(ctx context.Context, quiesced bool) (Outcome, error)

// WithQuiesced quiesces the registry, runs fn, and restores the containers on every
// path: success, error, panic (re-raised after restoring), SIGINT and SIGTERM. The
// first signal cancels fn's context; restoring then goes on regardless of further
// signals and of ctx (bounded by RestoreTimeout). Signals are caught only while
// WithQuiesced runs.
func (c *Client) WithQuiesced(ctx context.Context, reg *Registry, opts Options, fn Run) (err error) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	restoring := make(chan struct{})
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go watchSignals(sigs, cancel, restoring, stopWatch, opts.Warn)

	s, err := c.Quiesce(runCtx, reg, opts)
	if err != nil {
		return err
	}
	out, panicked, runErr := runGuarded(runCtx, fn, s.Quiesced)
	close(restoring)
	if panicked != nil {
		out.Unknown = true
		if opts.Warn != nil {
			fmt.Fprintf(opts.Warn, "ERROR: panic: %v; restoring the registry's containers first\n%s", panicked.value, panicked.stack)
		}
	}
	restoreErr := s.Restore(context.WithoutCancel(ctx), out)
	if panicked != nil {
		if restoreErr != nil && opts.Warn != nil {
			fmt.Fprintf(opts.Warn, "ERROR: restoring the registry: %v\n", restoreErr)
		}
		panic(panicked.value)
	}
	if runErr != nil && context.Cause(runCtx) != nil && ctx.Err() == nil && errors.Is(runErr, context.Canceled) {
		runErr = fmt.Errorf("%w: %v", runErr, context.Cause(runCtx))
	}
	if restoreErr != nil {
		return errors.Join(runErr, fmt.Errorf("restoring the registry: %w", restoreErr))
	}
	return runErr
}

type recovered struct {
	value any
	stack []byte
}

func runGuarded(ctx context.Context, fn Run, quiesced bool) (out Outcome, panicked *recovered, err error) {
	defer func() {
		if r := recover(); r != nil {
			panicked = &recovered{r, debug.Stack()}
		}
	}()
	out, err = fn(ctx, quiesced)
	return out, nil, err
}

// watchSignals cancels the run on the first signal; once restoring, it only tells
// the user that restoration goes on.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelCauseFunc, restoring, stop <-chan struct{}, warn io.Writer) {
	first := true
	for {
		select {
		case <-stop:
			return
		case sig := <-sigs:
			select {
			case <-restoring:
				if warn != nil {
					fmt.Fprintf(warn, "WARNING: received %v while restoring the registry's containers: finishing that first\n", sig)
				}
				continue
			default:
			}
			if first {
				cancel(fmt.Errorf("received %v", sig))
				first = false
				if warn != nil {
					fmt.Fprintf(warn, "WARNING: received %v: stopping, then restoring the registry's containers\n", sig)
				}
			}
		}
	}
}
