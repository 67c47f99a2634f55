package docker

import (
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

// within reports whether p is dir or below it, comparing whole path components,
// and returns p relative to dir ("" for dir itself).
func within(p, dir string) (rel string, ok bool) {
	p, dir = path.Clean(p), path.Clean(dir)
	if p == dir {
		return "", true
	}
	if dir == "/" {
		return strings.TrimPrefix(p, "/"), strings.HasPrefix(p, "/")
	}
	if strings.HasPrefix(p, dir+"/") {
		return p[len(dir)+1:], true
	}
	return "", false
}

// mountSource is where a mount's content lives on the engine's host, volume subpaths
// (engines from API 1.45) included.
func mountSource(m container.MountPoint, declared []mount.Mount) string {
	src := m.Source
	for _, d := range declared {
		if d.Type == mount.TypeVolume && path.Clean(d.Target) == path.Clean(m.Destination) &&
			d.VolumeOptions != nil && d.VolumeOptions.Subpath != "" {
			sub := path.Clean(d.VolumeOptions.Subpath)
			// Some engines report the volume's root, others the subpath itself.
			if !strings.HasSuffix(path.Clean(src), "/"+sub) {
				src = path.Join(src, sub)
			}
		}
	}
	return src
}

// containerToHost maps a path inside a container to the engine host's path through
// the container's mounts (bind or volume), the deepest mount winning. ok is false when
// no mount holds the path: it lives in the container's own filesystem, or in a tmpfs.
func containerToHost(mounts []container.MountPoint, declared []mount.Mount, p string) (host string, via container.MountPoint, ok bool) {
	best := -1
	for i, m := range mounts {
		if _, in := within(p, m.Destination); in && (best < 0 || len(path.Clean(m.Destination)) > len(path.Clean(mounts[best].Destination))) {
			best = i
		}
	}
	if best < 0 {
		return "", container.MountPoint{}, false
	}
	m := mounts[best]
	src := mountSource(m, declared)
	if m.Type == mount.TypeTmpfs || src == "" {
		return "", m, false
	}
	rel, _ := within(p, m.Destination)
	return path.Join(src, rel), m, true
}

// hostToContainer maps a path on the engine's host to where a container sees it
// through its mounts, the deepest source winning.
func hostToContainer(mounts []container.MountPoint, declared []mount.Mount, host string) (string, bool) {
	best, bestSrc := -1, ""
	for i, m := range mounts {
		if m.Type == mount.TypeTmpfs {
			continue
		}
		src := mountSource(m, declared)
		if src == "" {
			continue
		}
		if _, in := within(host, src); in && (best < 0 || len(path.Clean(src)) > len(path.Clean(bestSrc))) {
			best, bestSrc = i, src
		}
	}
	if best < 0 {
		return "", false
	}
	rel, _ := within(host, bestSrc)
	return path.Join(mounts[best].Destination, rel), true
}

// overlaps reports whether two host paths are the same or one holds the other: a
// container mounting either can write the other's content.
func overlaps(a, b string) bool {
	_, in1 := within(a, b)
	_, in2 := within(b, a)
	return in1 || in2
}

var containerIDInPath = regexp.MustCompile(`(?:containers|docker|libpod-|crio-|docker-)[/-]?([0-9a-f]{64})\b`)

// selfContainerIDs lists the IDs this process's container may have, most reliable
// first: the engine bind-mounts /etc/hostname and friends from a directory named
// after the container (Docker: .../containers/<id>/, Podman:
// .../overlay-containers/<id>/), cgroup v1 paths carry it, Podman writes
// /run/.containerenv, and the default hostname is the ID's first 12 characters.
// Running in a container whose ID the engine does not know (another engine's, as on
// a CI runner that is itself a container) is the same as running on the host.
func selfContainerIDs(readFile func(string) ([]byte, error), hostname string) []string {
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, f := range []string{"/proc/self/mountinfo", "/proc/self/cgroup"} {
		if data, err := readFile(f); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if f == "/proc/self/mountinfo" && !strings.Contains(line, "/hostname ") &&
					!strings.Contains(line, "/hosts ") && !strings.Contains(line, "/resolv.conf ") {
					continue
				}
				for _, m := range containerIDInPath.FindAllStringSubmatch(line, -1) {
					add(m[1])
				}
			}
		}
	}
	if data, err := readFile("/run/.containerenv"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "id="); ok {
				add(strings.Trim(v, `"`))
			}
		}
	}
	if regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(hostname) {
		add(hostname)
	}
	return ids
}

// inContainer reports whether this process runs in some container (of any engine).
func inContainer() bool {
	return fileExists("/.dockerenv") || fileExists("/run/.containerenv")
}

func osHostname() string {
	h, _ := os.Hostname()
	return h
}
