package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/go-connections/nat"

	"github.com/clean-registry/clean-registry/v2/internal/blobcache"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

// AnswerTimeout bounds the wait, after a restart, for the registry to answer HTTP
// again where it answered before.
var AnswerTimeout = time.Minute

// Online refreshes the blob descriptor caches of a registry that keeps serving
// through an online run: nothing is paused or stopped. Once everything the run
// deletes is out of the registry's sight (AfterMoves), a registry with an in-memory
// cache is restarted (a container by docker restart; a Swarm task is stopped and
// Swarm replaces it), and a redis cache has the deleted digests' keys cleared; after
// the verification (AfterVerify) redis is cleared again. Errors of a restart do not
// stop the run (its verification protects what the registry needs): Err returns
// them once it is over.
type Online struct {
	c    *Client
	reg  *Registry
	opts Options

	mu   sync.Mutex
	errs []error
}

// Online returns the cache hooks of an online run on reg.
func (c *Client) Online(reg *Registry, opts Options) *Online {
	return &Online{c: c, reg: reg, opts: opts}
}

// WritesNothing reports whether nothing can write to the registry's storage while
// it is left as it is: no running container of it but read-only registries, and no
// task on another node.
func (r *Registry) WritesNothing() bool {
	if r.Elsewhere > 0 {
		return false
	}
	for _, m := range r.Containers {
		if m.State == "running" && !(m.Registry && m.ReadOnly) {
			return false
		}
	}
	return true
}

// Err returns what went wrong restarting the registry's containers, if anything.
func (o *Online) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return errors.Join(o.errs...)
}

func (o *Online) fail(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

func (o *Online) logf(format string, args ...any) {
	if o.opts.Log != nil {
		fmt.Fprintf(o.opts.Log, format+"\n", args...)
	}
}

func (o *Online) warnf(format string, args ...any) {
	if o.opts.Warn != nil {
		fmt.Fprintf(o.opts.Warn, "WARNING: "+format+"\n", args...)
	}
}

func onlineOf(rep *report.Report) *report.Online {
	if rep.Online == nil {
		rep.Online = &report.Online{}
	}
	return rep.Online
}

// AfterMoves refreshes the caches once the run's deletions are out of the
// registry's sight. fresh says every registry container that could serve a request
// begun before the call was restarted (and no task runs elsewhere): the settle can
// be skipped. It sets rep.Online.DowntimeSeconds to the longest time one registry
// container did not serve, and rep.Online.RestartRequired when a registry with an
// in-memory cache was left running with it (--no-restart, a container paused by
// someone else, a task on another node, a failed restart). A signal (ctx cancelled)
// lets a restart under way finish and starts no other. Its error is always nil: see
// Err.
func (o *Online) AfterMoves(ctx context.Context, rep *report.Report) (fresh bool, err error) {
	out := RunOutcome(rep)
	if !out.CacheStale() {
		return false, nil
	}
	on := onlineOf(rep)
	o.clearRedis(ctx, out)

	// Restarts run to their end whatever the run's context, bounded on their own.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RestoreTimeout)
	defer cancel()
	fresh = o.reg.Elsewhere == 0
	restarted := 0
	var down time.Duration
	var services []string
	tasks := map[string][]Container{}
	for _, m := range o.reg.Containers {
		switch {
		case m.State != "running" && m.State != "paused":
			continue // serves nothing
		case !m.Registry:
			// It only mounts the storage, and keeps running: it may still write.
			fresh = false
			continue
		case m.ReadOnly:
			continue // writes nothing, and accepts no push
		case m.Cache != "inmemory":
			fresh = false // a request begun before may still run
			continue
		case m.State == "paused":
			o.warnf("registry %s is paused (by someone else) and is left so: restart it rather than unpause it, "+
				"its blob descriptor cache may name deleted blobs", m.Name)
			on.RestartRequired, fresh = true, false
			continue
		case o.opts.NoRestart:
			o.warnf("registry %s keeps an in-memory blob descriptor cache that may name deleted blobs: "+
				"restart it before the next push (--no-restart was given)", m.Name)
			on.RestartRequired, fresh = true, false
			continue
		case m.ServiceID != "":
			if tasks[m.ServiceID] == nil {
				services = append(services, m.ServiceID)
			}
			tasks[m.ServiceID] = append(tasks[m.ServiceID], m)
			continue
		case ctx.Err() != nil:
			o.notRestarted(on, m, context.Cause(ctx))
			fresh = false
			continue
		}
		d, err := o.restartContainer(rctx, m)
		if err != nil {
			o.fail(err)
			on.RestartRequired, fresh = true, false
			continue
		}
		restarted++
		down = max(down, d)
	}
	for _, svc := range services {
		n, d, ok := o.replaceTasks(ctx, rctx, svc, tasks[svc], on)
		restarted += n
		down = max(down, d)
		fresh = fresh && ok
	}
	if o.reg.Elsewhere > 0 {
		for _, m := range o.reg.Containers {
			if m.ServiceID != "" && m.Cache == "inmemory" {
				o.warnf("service %s runs task(s) on other nodes, which were not restarted: their blob descriptor caches "+
					"may name deleted blobs; restart them before the next push (docker service update --force %s)",
					m.ServiceName, m.ServiceName)
				on.RestartRequired = true
				break
			}
		}
	}
	on.DowntimeSeconds = max(on.DowntimeSeconds, down.Seconds())
	return fresh && restarted > 0, nil
}

// AfterVerify clears the redis caches again, of entries a request running across
// the moves wrote back. Its error is always nil: a redis that cannot be cleared is
// a warning, with what to do by hand.
func (o *Online) AfterVerify(ctx context.Context, rep *report.Report) error {
	if out := RunOutcome(rep); out.CacheStale() {
		o.clearRedis(ctx, out)
	}
	return nil
}

// RunOutcome is what a run deleted, as OutcomeOf says, and the worst (Unknown) when
// it also purged the quarantine of an interrupted online run, whose digests its
// report does not list: a cache may name them since that run.
func RunOutcome(rep *report.Report) Outcome {
	out := OutcomeOf(rep)
	if rep != nil && !rep.DryRun && rep.Online != nil && len(rep.Online.Recovered) > 0 {
		out.Unknown = true
	}
	return out
}

func (o *Online) notRestarted(on *report.Online, m Container, cause error) {
	o.warnf("registry %s was not restarted (%v): its blob descriptor cache may name deleted blobs; restart it before the next push",
		m.Name, cause)
	on.RestartRequired = true
}

// clearRedis clears the deleted digests from every redis cache of the registry,
// each redis once.
func (o *Online) clearRedis(ctx context.Context, out Outcome) {
	cleared := map[string]bool{}
	for _, m := range o.reg.Containers {
		if !m.Registry || m.Cache != "redis" || cleared[fmt.Sprint(m.Redis)] {
			continue
		}
		cleared[fmt.Sprint(m.Redis)] = true
		if err := m.Redis.Clear(context.WithoutCancel(ctx), out); err != nil {
			o.warnf("registry %s: could not clear its redis cache (%v): %s", m.Name, err, blobcache.Advice(m.Redis))
		} else {
			o.logf("cleared the deleted digests from the redis cache of registry %s", m.Name)
		}
	}
}

// restartContainer restarts a registry container as docker restart does (its stop
// signal and timeout, then a start) and returns how long it did not serve: from the
// stop request until it answers HTTP again where it answered before, or when it
// answered nowhere this process reaches, until it runs again.
func (o *Online) restartContainer(ctx context.Context, m Container) (time.Duration, error) {
	var watch map[string]bool
	if ins, err := o.c.api.ContainerInspect(ctx, m.ID); err == nil {
		watch = answeringPorts(ctx, ins)
	}
	start := time.Now()
	err := retryEngine(ctx, func() error { return o.c.api.ContainerRestart(ctx, m.ID, container.StopOptions{}) })
	if err != nil {
		// Never leave it down: a registry with a stale cache serves.
		serr := retryEngine(ctx, func() error { return o.c.api.ContainerStart(ctx, m.ID, container.StartOptions{}) })
		if serr == nil || running(ctx, o.c, m.ID) {
			return time.Since(start), fmt.Errorf("restarting container %s: %w (it runs, with a cache that may name deleted blobs: "+
				"restart it before the next push)", m.Name, err)
		}
		return time.Since(start), fmt.Errorf("restarting container %s: %w; starting it: %v", m.Name, err, serr)
	}
	runningAfter := time.Since(start)
	if len(watch) == 0 {
		o.logf("restarted container %s (its blob descriptor cache may name deleted blobs): running again after %.2fs",
			m.Name, runningAfter.Seconds())
		return runningAfter, nil
	}
	addr, ok := o.awaitAnswer(ctx, m.ID, watch)
	down := time.Since(start)
	if !ok {
		o.warnf("registry %s was restarted but does not answer HTTP %v after it: check it with docker logs %s",
			m.Name, AnswerTimeout, m.Name)
		return down, nil
	}
	o.logf("restarted container %s (its blob descriptor cache may name deleted blobs): running again after %.2fs, "+
		"answering at %s after %.2fs", m.Name, runningAfter.Seconds(), addr, down.Seconds())
	return down, nil
}

func running(ctx context.Context, c *Client, id string) bool {
	ins, err := c.api.ContainerInspect(ctx, id)
	return err == nil && ins.State != nil && ins.State.Running
}

// replaceTasks stops the service's task containers on this node one at a time (the
// others serve meanwhile), and waits each time until Swarm runs a fresh task in its
// place. It returns how many were replaced, the longest wait, and whether all were.
func (o *Online) replaceTasks(ctx, rctx context.Context, serviceID string, ms []Container, on *report.Online) (int, time.Duration, bool) {
	svc, _, err := o.c.api.ServiceInspectWithRaw(rctx, serviceID, swarm.ServiceInspectOptions{})
	if err != nil {
		o.fail(fmt.Errorf("service %s: %w", ms[0].ServiceName, err))
		on.RestartRequired = true
		return 0, 0, false
	}
	onFailure := false
	if rp := svc.Spec.TaskTemplate.RestartPolicy; rp != nil && rp.Condition == swarm.RestartPolicyConditionOnFailure {
		onFailure = true
	}
	s := &Session{c: o.c, reg: o.reg, opts: o.opts}
	old := make([]string, len(ms))
	for i, m := range ms {
		old[i] = m.ID
	}
	var longest time.Duration
	for i, m := range ms {
		if ctx.Err() != nil {
			for _, left := range ms[i:] {
				o.notRestarted(on, left, context.Cause(ctx))
			}
			return i, longest, false
		}
		start := time.Now()
		err := retryEngine(rctx, func() error {
			err := o.c.api.ContainerStop(rctx, m.ID, container.StopOptions{})
			if err != nil && isNotRunning(err) {
				return nil
			}
			return err
		})
		if err != nil {
			o.fail(fmt.Errorf("stopping task container %s for Swarm to replace it: %w", m.Name, err))
			on.RestartRequired = true
			return i, longest, false
		}
		// A registry that drained its requests exits 0, which on-failure does not
		// restart.
		force := false
		if ins, err := o.c.api.ContainerInspect(rctx, m.ID); err == nil && ins.State != nil && ins.State.ExitCode == 0 && onFailure {
			force = true
		}
		o.logf("stopped task container %s for Swarm to replace it: its blob descriptor cache may name deleted blobs", m.Name)
		if err := s.awaitReplacement(rctx, serviceID, old, i+1, force); err != nil {
			o.fail(err)
			on.RestartRequired = true
			return i, max(longest, time.Since(start)), false
		}
		longest = max(longest, time.Since(start))
	}
	return len(ms), longest, true
}

// answeringPorts probes where the container may answer HTTP (its published ports,
// its addresses on its networks) and returns the container ports ("5000/tcp") that
// answered from here.
func answeringPorts(ctx context.Context, ins container.InspectResponse) map[string]bool {
	cands := endpoints(ins, nil)
	var mu sync.Mutex
	var wg sync.WaitGroup
	found := map[string]bool{}
	for _, e := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if answers(ctx, e.addr, time.Second) {
				mu.Lock()
				found[e.port] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return found
}

// awaitAnswer waits until the container answers HTTP on one of the ports (its
// published port and address may change with a restart, so they are read anew).
func (o *Online) awaitAnswer(ctx context.Context, id string, ports map[string]bool) (string, bool) {
	deadline := time.Now().Add(AnswerTimeout)
	var cands []endpoint
	for round := 0; time.Now().Before(deadline); round++ {
		if round%20 == 0 || len(cands) == 0 {
			if ins, err := o.c.api.ContainerInspect(ctx, id); err == nil {
				cands = endpoints(ins, ports)
			}
		}
		for _, e := range cands {
			if answers(ctx, e.addr, 300*time.Millisecond) {
				return e.addr, true
			}
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", false
}

type endpoint struct {
	port string // the container's port, "5000/tcp"
	addr string // host:port where this process may reach it
}

// endpoints lists where a container's TCP ports may be reached: published ports
// on the engine's host (a wildcard binding through loopback), then the container's
// address on each of its networks; only the given ports unless nil.
func endpoints(ins container.InspectResponse, only map[string]bool) []endpoint {
	if ins.NetworkSettings == nil {
		return nil
	}
	var out []endpoint
	var ports []string
	for p := range ins.NetworkSettings.Ports {
		ports = append(ports, string(p))
	}
	if ins.Config != nil {
		for p := range ins.Config.ExposedPorts {
			if _, dup := ins.NetworkSettings.Ports[p]; !dup {
				ports = append(ports, string(p))
			}
		}
	}
	sort.Strings(ports)
	for _, p := range ports {
		num, proto, _ := strings.Cut(p, "/")
		if (proto != "" && proto != "tcp") || (only != nil && !only[p]) {
			continue
		}
		for _, b := range ins.NetworkSettings.Ports[nat.Port(p)] {
			host := b.HostIP
			switch host {
			case "", "0.0.0.0":
				host = "127.0.0.1"
			case "::":
				host = "::1"
			}
			if b.HostPort != "" {
				out = append(out, endpoint{p, net.JoinHostPort(host, b.HostPort)})
			}
		}
		for _, n := range ins.NetworkSettings.Networks {
			if n == nil {
				continue
			}
			if n.IPAddress != "" {
				out = append(out, endpoint{p, net.JoinHostPort(n.IPAddress, num)})
			}
			if n.GlobalIPv6Address != "" {
				out = append(out, endpoint{p, net.JoinHostPort(n.GlobalIPv6Address, num)})
			}
		}
	}
	return out
}

// answers reports whether an HTTP server answers at addr: any response counts (a
// registry asking for credentials, a TLS listener refusing plain HTTP).
func answers(ctx context.Context, addr string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
	if err != nil {
		return false
	}
	req.Close = true
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}
