package docker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/clean-registry/clean-registry/v2/internal/runtime/docker"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// swarmMode makes this engine a single-node swarm for the test when it is not one,
// and leaves swarm mode again afterwards. An engine that cannot run services here
// skips the test, or fails it under CLEAN_REGISTRY_REQUIRE_ALL=1: the engine CI
// uses is a fresh local one, in no swarm, that accepts swarm mode.
func swarmMode(t *testing.T) {
	t.Helper()
	api := engine(t)
	ctx := context.Background()
	info, err := api.Info(ctx)
	if err != nil {
		t.Fatalf("engine info (for its swarm state): %v", err)
	}
	switch info.Swarm.LocalNodeState {
	case swarm.LocalNodeStateInactive:
		if _, err := api.SwarmInit(ctx, swarm.InitRequest{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
			harness.Unavailable(t, "the engine refuses swarm mode (%v): Swarm services cannot be tested", err)
		}
		t.Cleanup(func() {
			if err := api.SwarmLeave(context.Background(), true); err != nil {
				t.Errorf("leaving swarm mode: %v", err)
			}
		})
	case swarm.LocalNodeStateActive:
		if !info.Swarm.ControlAvailable {
			harness.Unavailable(t, "this engine is a swarm worker, not a manager: services cannot be created here")
		}
	default:
		harness.Unavailable(t, "swarm state %q (want inactive, or active as a manager): Swarm services cannot be tested", info.Swarm.LocalNodeState)
	}
}

// runningTasks waits (bounded) until the service runs n tasks with containers, and
// returns their container IDs.
func runningTasks(t *testing.T, serviceID string, n int, not map[string]bool) []string {
	t.Helper()
	api := engine(t)
	var last []string
	for range 300 {
		tasks, err := api.TaskList(context.Background(), swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", serviceID), filters.Arg("desired-state", "running"))})
		if err != nil {
			t.Fatalf("listing the tasks of service %s: %v", serviceID, err)
		}
		last = last[:0]
		for _, task := range tasks {
			if task.Status.State == swarm.TaskStateRunning && task.Status.ContainerStatus != nil &&
				!not[task.Status.ContainerStatus.ContainerID] {
				last = append(last, task.Status.ContainerStatus.ContainerID)
			}
		}
		if len(last) >= n {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("service %s runs %d task(s), want %d", serviceID, len(last), n)
	return nil
}

// TestSwarmService: a registry service with two replicas on one named volume, its
// port published in host mode (this engine's routing mesh does not answer). The
// service target pauses both tasks; since blobs were deleted, both are killed while
// paused and Swarm replaces them; a task container as the target finds its sibling.
func TestSwarmService(t *testing.T) {
	ctx := context.Background()
	api := engine(t)
	img := registryImage(t)
	vol := namedVolume(t)
	swarmMode(t)

	replicas := uint64(2)
	delay := 200 * time.Millisecond
	svcName := uniqueName("svc")
	created, err := api.ServiceCreate(ctx, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: svcName},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: img,
				Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/var/lib/registry"}}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP,
			TargetPort: 5000, PublishMode: swarm.PortConfigPublishModeHost}}},
	}, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	t.Cleanup(func() { removeService(t, created.ID) })

	before := runningTasks(t, created.ID, 2, nil)
	addr := addrOf(t, before[0])
	addrOf(t, before[1]) // waits until the second task answers too
	f := fill(t, addr)
	c := runtimeClient(t)

	t.Run("--stop is refused", func(t *testing.T) {
		opts := options(t)
		opts.Stop = true
		if _, err := c.Resolve(ctx, svcName, opts); err == nil || !strings.Contains(err.Error(), "--stop") {
			t.Fatalf("got %v, want --stop refused for a service", err)
		}
	})

	t.Run("service", func(t *testing.T) {
		reg := resolve(t, c, svcName, options(t))
		if reg.Kind != docker.KindService || len(reg.Containers) != 2 || reg.Elsewhere != 0 {
			t.Fatalf("resolved %+v; want a service with 2 task containers here, none elsewhere", reg)
		}
		for _, m := range reg.Containers {
			if !m.Registry || m.ServiceName != svcName || m.Cache != "inmemory" {
				t.Fatalf("task container %+v; want a registry of service %s with the inmemory cache", m, svcName)
			}
		}
		if err := c.WithQuiesced(ctx, reg, options(t), cleanRun(t, reg, statesDuring(t, "paused", before...))); err != nil {
			t.Fatalf("cleaning service %s while its tasks are paused: %v", svcName, err)
		}
		old := map[string]bool{before[0]: true, before[1]: true}
		after := runningTasks(t, created.ID, 2, old)
		for _, id := range after {
			f.verifyKept(t, addrOf(t, id))
		}
		// Each replaced task has a fresh cache: a push of a deleted layer through
		// one and a pull through each finds it whole.
		a0, a1 := addrOf(t, after[0]), addrOf(t, after[1])
		f.verifyRepushed(t, a0, a0, a1)
	})

	t.Run("through the binary", func(t *testing.T) {
		cliBinary(t)
		g := fill(t, addrOf(t, runningTasks(t, created.ID, 2, nil)[0]))
		tasks := runningTasks(t, created.ID, 2, nil)
		since := time.Now()
		code, out := runCLI(t, svcName)
		if code != 0 {
			t.Fatalf("clean-registry %s: exit %d\n%s", svcName, code, out)
		}
		for _, id := range tasks {
			if actions := containerActions(t, id, since, time.Now()); !contains(actions, "pause") {
				t.Fatalf("task %s: engine events %v, want pause\n%s", id[:12], actions, out)
			}
		}
		for _, id := range runningTasks(t, created.ID, 2, nil) {
			g.verifyKept(t, addrOf(t, id))
		}
	})

	t.Run("task container", func(t *testing.T) {
		tasks := runningTasks(t, created.ID, 2, nil)
		ins, err := api.ContainerInspect(ctx, tasks[0])
		if err != nil {
			t.Fatalf("inspecting task container %s: %v", tasks[0][:12], err)
		}
		reg := resolve(t, c, strings.TrimPrefix(ins.Name, "/"), options(t))
		if reg.Kind != docker.KindContainer || len(reg.Containers) != 2 {
			t.Fatalf("resolved %s as %s with containers %+v; want a container and its sibling task (2)", ins.Name, reg.Kind, reg.Containers)
		}
		err = c.WithQuiesced(ctx, reg, options(t), func(ctx context.Context, quiesced bool) (docker.Outcome, error) {
			for _, id := range tasks {
				if st, _ := state(t, id); st != "paused" {
					return docker.Outcome{}, fmt.Errorf("during the run: task %s is %s, want paused", id[:12], st)
				}
			}
			return docker.Outcome{}, nil
		})
		if err != nil {
			t.Fatalf("quiescing task container %s and its sibling: %v", ins.Name, err)
		}
		for _, id := range tasks {
			if st, _ := state(t, id); st != "running" {
				t.Fatalf("after the run: task %s is %s, want running", id[:12], st)
			}
		}
	})
}

// removeService removes a service and waits (bounded) until its containers are gone,
// so that its volume can go too.
func removeService(t *testing.T, id string) {
	api := engine(t)
	ctx := context.Background()
	if err := api.ServiceRemove(ctx, id); err != nil {
		t.Errorf("removing service: %v", err)
	}
	for range 150 {
		list, err := api.ContainerList(ctx, container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+id))})
		if err != nil || len(list) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("the containers of service %s outlived it", id)
}
