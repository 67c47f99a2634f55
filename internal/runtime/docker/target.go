package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/clean-registry/clean-registry/v2/internal/blobcache"
	"github.com/clean-registry/clean-registry/v2/internal/regconfig"
)

// Options are the command line's choices for a Docker target.
type Options struct {
	// Volume: the target names a volume, not a container or service (-v).
	Volume bool
	// Stop stops and starts the containers instead of pausing them (--stop).
	Stop bool
	// NoRestart never restarts a registry to refresh its cache (--no-restart).
	NoRestart bool
	// Log receives one line per action on a container; nil: silent.
	Log io.Writer
	// Warn receives warnings: a cache that could not be refreshed, a task left
	// alone... nil: discarded.
	Warn io.Writer
}

// Target kinds.
const (
	KindContainer = "container"
	KindService   = "service"
	KindVolume    = "volume"
)

// Container is one container the run concerns.
type Container struct {
	ID   string
	Name string
	// State as found: running, paused, exited, created, restarting...
	State string
	// ServiceID and ServiceName are set for a Swarm task's container.
	ServiceID, ServiceName string
	// Registry is set for a container running the registry whose storage is cleaned
	// (its configuration was read); other containers only mount the same storage.
	Registry bool
	// ReadOnly: the registry runs in read-only maintenance mode.
	ReadOnly bool
	// Cache is the registry's blob descriptor cache: "inmemory", "redis" or "".
	Cache string
	// Redis is how the registry reaches its redis, when Cache is "redis" (nil when
	// its configuration's redis section could not be read).
	Redis *blobcache.Redis
}

// Storage is the registry's storage as the registry sees it, and for the filesystem
// driver, where this process reaches it.
type Storage struct {
	// Driver, Parameters (the full driver configuration, as the registry reads it),
	// ReadOnly, BlobDescriptorCache, Redis.
	*regconfig.Storage
	// Root is the filesystem driver's root directory as this process reaches it.
	Root string
	// HostRoot is that directory on the engine's host.
	HostRoot string
	// ContainerRoot is the rootdirectory as the registry sees it ("" when only a
	// volume is known).
	ContainerRoot string
}

// Registry is a resolved target: the containers to quiesce and the storage to clean.
type Registry struct {
	Target string
	Kind   string
	// Version is the distribution release the registry runs ("" for a volume no
	// registry container mounts).
	Version    string
	Storage    Storage
	Containers []Container
	// Notes say how the target was understood, for the report.
	Notes []string
	// Elsewhere counts the service's running tasks on other nodes: they cannot be
	// quiesced from here, so the registry is not known to be quiet.
	Elsewhere int
}

// Resolve finds the registry behind a target: a Swarm service (its running tasks on
// this node), a container (name or ID), or with opts.Volume a named volume (the
// containers that mount it). It reads the registry's configuration out of a container
// with the container's REGISTRY_* environment, checks the registry's release, and
// maps the storage to a path this process reaches. Running containers that mount the
// same storage read-write are added, to be quiesced too.
func (c *Client) Resolve(ctx context.Context, target string, opts Options) (*Registry, error) {
	self := c.selfContainer(ctx)
	reg := &Registry{Target: target}
	var err error
	if opts.Volume {
		err = c.resolveVolume(ctx, reg, self)
	} else {
		err = c.resolveContainerOrService(ctx, reg, self)
	}
	if err != nil {
		return nil, err
	}
	if reg.Storage.Driver == "filesystem" && reg.Storage.HostRoot != "" {
		if err := c.addSharers(ctx, reg, self); err != nil {
			return nil, err
		}
	}
	if opts.Stop {
		for _, m := range reg.Containers {
			if m.ServiceID != "" && m.State == "running" {
				return nil, fmt.Errorf("--stop cannot quiesce %s: Swarm would replace a stopped task of service %s at once; "+
					"the default (pause) works for services", m.Name, m.ServiceName)
			}
		}
	}
	return reg, nil
}

func (c *Client) resolveContainerOrService(ctx context.Context, reg *Registry, self *container.InspectResponse) error {
	// A service first, as the seed did: its tasks' containers are named after it.
	svc, _, err := c.api.ServiceInspectWithRaw(ctx, reg.Target, swarm.ServiceInspectOptions{})
	switch {
	case err == nil:
		reg.Kind = KindService
		ctrs, elsewhere, err := c.serviceContainers(ctx, svc)
		if err != nil {
			return err
		}
		c.noteElsewhere(reg, svc, elsewhere)
		if len(ctrs) == 0 {
			return fmt.Errorf("service %s has no running task on this node", svc.Spec.Name)
		}
		return c.describeRegistry(ctx, reg, ctrs, self)
	case !notService(err):
		return fmt.Errorf("service %s: %w", reg.Target, err)
	}
	ctr, err := c.api.ContainerInspect(ctx, reg.Target)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("no such container or service: %s (a volume needs -v)", reg.Target)
		}
		return fmt.Errorf("container %s: %w", reg.Target, err)
	}
	if self != nil && ctr.ID == self.ID {
		return fmt.Errorf("%s is the container clean-registry runs in", reg.Target)
	}
	reg.Kind = KindContainer
	ctrs := []container.InspectResponse{ctr}
	// A task of a service: its siblings on this node serve the same storage.
	if sid := ctr.Config.Labels["com.docker.swarm.service.id"]; sid != "" {
		if svc, _, err := c.api.ServiceInspectWithRaw(ctx, sid, swarm.ServiceInspectOptions{}); err == nil {
			siblings, elsewhere, err := c.serviceContainers(ctx, svc)
			if err != nil {
				return err
			}
			c.noteElsewhere(reg, svc, elsewhere)
			for _, s := range siblings {
				if s.ID != ctr.ID {
					ctrs = append(ctrs, s)
				}
			}
		}
	}
	return c.describeRegistry(ctx, reg, ctrs, self)
}

// notService tells the errors that mean "not a service here": none by that name, or
// no swarm at all (a plain engine, Podman).
func notService(err error) bool {
	if cerrdefs.IsNotFound(err) || cerrdefs.IsUnavailable(err) || cerrdefs.IsNotImplemented(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "not a swarm manager") || strings.Contains(msg, "swarm mode") ||
		strings.Contains(msg, "not supported") || strings.Contains(msg, "page not found")
}

func (c *Client) noteElsewhere(reg *Registry, svc swarm.Service, n int) {
	if n > 0 {
		reg.Elsewhere += n
		reg.Notes = append(reg.Notes, fmt.Sprintf("service %s runs %d task(s) on other nodes, which are not quiesced "+
			"(run clean-registry on each node whose storage is its own)", svc.Spec.Name, n))
	}
}

// serviceContainers inspects the containers of a service's running tasks on this
// node, and counts those on other nodes.
func (c *Client) serviceContainers(ctx context.Context, svc swarm.Service) ([]container.InspectResponse, int, error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	tasks, err := c.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", svc.ID),
		filters.Arg("desired-state", "running"),
	)})
	if err != nil {
		return nil, 0, fmt.Errorf("tasks of service %s: %w", svc.Spec.Name, err)
	}
	var ctrs []container.InspectResponse
	elsewhere := 0
	for _, t := range tasks {
		if t.NodeID != info.Swarm.NodeID {
			if t.Status.State == swarm.TaskStateRunning {
				elsewhere++
			}
			continue
		}
		if t.Status.ContainerStatus == nil || t.Status.ContainerStatus.ContainerID == "" {
			continue
		}
		ctr, err := c.api.ContainerInspect(ctx, t.Status.ContainerStatus.ContainerID)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue // the task just ended
			}
			return nil, 0, err
		}
		ctrs = append(ctrs, ctr)
	}
	sort.Slice(ctrs, func(i, j int) bool { return ctrs[i].Name < ctrs[j].Name })
	return ctrs, elsewhere, nil
}

// describeRegistry reads the registry containers' configuration, checks their release
// and storage, and fills reg.
func (c *Client) describeRegistry(ctx context.Context, reg *Registry, ctrs []container.InspectResponse, self *container.InspectResponse) error {
	checked := map[string]string{} // image ID -> version
	for i, ctr := range ctrs {
		st, err := c.containerStorage(ctx, ctr, self)
		if err != nil {
			return err
		}
		if v, ok := checked[ctr.Image]; ok {
			reg.Version = v
		} else {
			v, err := c.registryVersion(ctx, ctr)
			if err != nil {
				return err
			}
			parsed, _, _ := parseVersion(v)
			if !versionAtLeast(parsed, MinVersion) {
				return fmt.Errorf("container %s runs registry %s; distribution 2.4.0 or later is needed", containerName(ctr), v)
			}
			checked[ctr.Image], reg.Version = v, v
		}
		if i == 0 {
			reg.Storage = *st
		} else if st.Driver != reg.Storage.Driver || st.HostRoot != reg.Storage.HostRoot {
			return fmt.Errorf("containers %s and %s do not share their storage (%s, %s): clean each by name",
				containerName(ctrs[0]), containerName(ctr), describeStorage(reg.Storage), describeStorage(*st))
		}
		reg.Containers = append(reg.Containers, memberOf(ctr, st))
	}
	return nil
}

func describeStorage(s Storage) string {
	if s.Driver == "filesystem" {
		return s.HostRoot
	}
	return s.Driver
}

func memberOf(ctr container.InspectResponse, st *Storage) Container {
	m := Container{ID: ctr.ID, Name: containerName(ctr)}
	if ctr.State != nil {
		m.State = ctr.State.Status
	}
	if ctr.Config != nil {
		m.ServiceID = ctr.Config.Labels["com.docker.swarm.service.id"]
		m.ServiceName = ctr.Config.Labels["com.docker.swarm.service.name"]
	}
	if st != nil {
		m.Registry, m.ReadOnly, m.Cache, m.Redis = true, st.ReadOnly, st.BlobDescriptorCache, st.Redis
	}
	return m
}

// containerStorage reads one registry container's configuration and maps its
// storage.
func (c *Client) containerStorage(ctx context.Context, ctr container.InspectResponse, self *container.InspectResponse) (*Storage, error) {
	name := containerName(ctr)
	env := ctr.Config.Env
	var data []byte
	var tried []string
	for _, p := range configPaths(ctr.Path, ctr.Args, env) {
		d, err := c.readContainerFile(ctx, ctr.ID, p)
		if err == nil {
			data = d
			break
		}
		if !errors.Is(err, errNoFile) {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
		tried = append(tried, p)
	}
	if data == nil {
		if envValue(env, "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY") == "" {
			return nil, fmt.Errorf("container %s: no registry configuration found (tried %s)", name, strings.Join(tried, ", "))
		}
		// The environment alone configures the storage.
		data = []byte("version: 0.1\nstorage:\n  filesystem: {}\n")
	}
	rs, err := regconfig.Parse(data, env)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	st := &Storage{Storage: rs}
	if rs.Driver != "filesystem" {
		return st, nil
	}
	st.ContainerRoot = rs.RootDirectory()
	var declared []mount.Mount
	if ctr.HostConfig != nil {
		declared = ctr.HostConfig.Mounts
	}
	host, _, ok := containerToHost(ctr.Mounts, declared, st.ContainerRoot)
	if !ok {
		return nil, fmt.Errorf("container %s keeps its storage %s in its own filesystem, not in a volume or bind mount: "+
			"recreate it with a volume at %s", name, st.ContainerRoot, st.ContainerRoot)
	}
	st.HostRoot = host
	st.Root, err = localPath(host, st.ContainerRoot, self)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	return st, nil
}

// localPath is where this process reaches a host path: through the mounts of its own
// container when it runs in one of this engine's containers, else the host path
// itself.
func localPath(host, containerRoot string, self *container.InspectResponse) (string, error) {
	if self != nil {
		var declared []mount.Mount
		if self.HostConfig != nil {
			declared = self.HostConfig.Mounts
		}
		if p, ok := hostToContainer(self.Mounts, declared, host); ok {
			return p, nil
		}
		return "", fmt.Errorf("the storage %s is not mounted into clean-registry's container %s: "+
			"run it with the registry's volume or directory mounted (see docs/docker.md)", host, containerName(*self))
	}
	if dirExists(host) {
		return host, nil
	}
	// In some other engine's container, the seed's rule: the storage is mounted at
	// the registry's own path.
	if inContainer() && containerRoot != "" && dirExists(containerRoot) {
		return containerRoot, nil
	}
	return "", fmt.Errorf("the storage %s is not visible here: run clean-registry on the engine's host, "+
		"or in a container with the storage mounted (see docs/docker.md)", host)
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// resolveVolume finds the containers that mount a named volume; those whose
// registry storage lies in it are the registry, the rest only mount it. Without a
// registry container, the volume's root is the storage root (the seed's rule).
func (c *Client) resolveVolume(ctx context.Context, reg *Registry, self *container.InspectResponse) error {
	vol, err := c.api.VolumeInspect(ctx, reg.Target)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("no such volume: %s", reg.Target)
		}
		return fmt.Errorf("volume %s: %w", reg.Target, err)
	}
	reg.Kind = KindVolume
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", vol.Name))})
	if err != nil {
		return fmt.Errorf("containers mounting volume %s: %w", vol.Name, err)
	}
	var registries []container.InspectResponse
	var others []container.InspectResponse
	for _, s := range list {
		if self != nil && s.ID == self.ID {
			continue
		}
		ctr, err := c.api.ContainerInspect(ctx, s.ID)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue
			}
			return err
		}
		if !mountsVolume(ctr, vol.Name) {
			continue // the filter also matches a mount destination named like the volume
		}
		st, err := c.containerStorage(ctx, ctr, self)
		if err == nil && st.Driver == "filesystem" && volumeHolds(ctr, vol.Name, st.ContainerRoot) {
			registries = append(registries, ctr)
		} else {
			others = append(others, ctr)
		}
	}
	// Prefer running registries as the reference; stopped ones are described too.
	sort.SliceStable(registries, func(i, j int) bool {
		return registries[i].State.Running && !registries[j].State.Running
	})
	if len(registries) > 0 {
		if err := c.describeRegistry(ctx, reg, registries, self); err != nil {
			return err
		}
	} else {
		root := vol.Mountpoint
		local, err := volumeLocalPath(vol.Name, root, self)
		if err != nil {
			return err
		}
		reg.Storage = Storage{
			Storage:  &regconfig.Storage{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": local}},
			Root:     local,
			HostRoot: root,
		}
		reg.Notes = append(reg.Notes, fmt.Sprintf("no registry container mounts volume %s: its root is taken as the storage root", vol.Name))
	}
	for _, o := range others {
		if o.State != nil && (o.State.Running || o.State.Paused) {
			reg.Containers = append(reg.Containers, memberOf(o, nil))
		}
	}
	return nil
}

func mountsVolume(ctr container.InspectResponse, name string) bool {
	for _, m := range ctr.Mounts {
		if m.Type == mount.TypeVolume && m.Name == name {
			return true
		}
	}
	return false
}

// volumeHolds reports whether the container's path p lies in the named volume.
func volumeHolds(ctr container.InspectResponse, name, p string) bool {
	var declared []mount.Mount
	if ctr.HostConfig != nil {
		declared = ctr.HostConfig.Mounts
	}
	_, via, ok := containerToHost(ctr.Mounts, declared, p)
	return ok && via.Type == mount.TypeVolume && via.Name == name
}

// volumeLocalPath is where this process reaches a volume's root.
func volumeLocalPath(name, mountpoint string, self *container.InspectResponse) (string, error) {
	if self != nil {
		for _, m := range self.Mounts {
			if m.Type == mount.TypeVolume && m.Name == name {
				return m.Destination, nil
			}
		}
		return "", fmt.Errorf("volume %s is not mounted into clean-registry's container %s: run it with -v %s:/var/lib/registry (see docs/docker.md)",
			name, containerName(*self), name)
	}
	if dirExists(mountpoint) {
		return mountpoint, nil
	}
	if inContainer() {
		// The seed's rule in a container: the volume is mounted where the registry
		// would have it.
		p := os.Getenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
		if p == "" {
			p = regconfig.DefaultRootDirectory
		}
		if dirExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("volume %s (%s) is not visible here: run clean-registry on the engine's host, "+
		"or in a container with the volume mounted (see docs/docker.md)", name, mountpoint)
}

// addSharers adds the running containers, other than the registry's and this
// process's own, that mount the storage read-write: they could write to it during the
// run, so they are quiesced too.
func (c *Client) addSharers(ctx context.Context, reg *Registry, self *container.InspectResponse) error {
	list, err := c.api.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	known := map[string]bool{}
	for _, m := range reg.Containers {
		known[m.ID] = true
	}
	for _, s := range list {
		if known[s.ID] || (self != nil && s.ID == self.ID) {
			continue
		}
		shares := false
		for _, m := range s.Mounts {
			if m.RW && m.Type != mount.TypeTmpfs && m.Source != "" && path.Clean(m.Source) != "/" && overlaps(m.Source, reg.Storage.HostRoot) {
				shares = true
			}
		}
		if !shares {
			continue
		}
		ctr, err := c.api.ContainerInspect(ctx, s.ID)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue
			}
			return err
		}
		// Another registry on the same storage has a cache of its own to refresh.
		if st, err := c.containerStorage(ctx, ctr, self); err == nil && st.Driver == "filesystem" && st.HostRoot == reg.Storage.HostRoot {
			reg.Containers = append(reg.Containers, memberOf(ctr, st))
			reg.Notes = append(reg.Notes, fmt.Sprintf("registry container %s serves the same storage: it is quiesced too", containerName(ctr)))
		} else {
			reg.Containers = append(reg.Containers, memberOf(ctr, nil))
			reg.Notes = append(reg.Notes, fmt.Sprintf("container %s also mounts the storage: it is quiesced too", containerName(ctr)))
		}
		known[s.ID] = true
	}
	return nil
}

// selfContainer is the container of this engine that this process runs in, if any.
func (c *Client) selfContainer(ctx context.Context) *container.InspectResponse {
	if !inContainer() && !fileExists("/proc/self/mountinfo") {
		return nil
	}
	for _, id := range selfContainerIDs(os.ReadFile, osHostname()) {
		ctr, err := c.api.ContainerInspect(ctx, id)
		if err == nil && strings.HasPrefix(ctr.ID, id) && ctr.State != nil && ctr.State.Running {
			return &ctr
		}
	}
	return nil
}
