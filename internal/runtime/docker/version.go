package docker

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// MinVersion is the oldest distribution release whose storage layout and garbage
// collection this tool's rules match (the seed's requirement).
var MinVersion = [3]int{2, 4, 0}

var versionPattern = regexp.MustCompile(`\bv?(\d+)\.(\d+)\.(\d+)`)

// parseVersion finds the release in `registry --version` output, such as
// "registry github.com/distribution/distribution/v3 v3.1.2" or
// "registry github.com/docker/distribution v2.8.3", or in an image label.
func parseVersion(out string) (v [3]int, text string, ok bool) {
	fields := strings.Fields(out)
	// The release is the last field; a module path (".../v3") holds no dots-triple.
	for i := len(fields) - 1; i >= 0; i-- {
		if m := versionPattern.FindStringSubmatch(fields[i]); m != nil {
			for j := range 3 {
				v[j], _ = strconv.Atoi(m[j+1])
			}
			return v, fields[i], true
		}
	}
	return v, "", false
}

func versionAtLeast(v, min [3]int) bool {
	for i := range 3 {
		if v[i] != min[i] {
			return v[i] > min[i]
		}
	}
	return true
}

// registryVersion tells which distribution release a container runs: `registry
// --version` executed in it when it runs, else its image run once with --version in
// a throw-away container without network (as the seed did). Image labels are not
// trusted: a derived image's version label is its own, not the registry's.
func (c *Client) registryVersion(ctx context.Context, ctr container.InspectResponse) (string, error) {
	var tried []string
	if ctr.State != nil && ctr.State.Running && !ctr.State.Paused {
		for _, bin := range versionCommands(ctr.Path) {
			out, err := c.execOutput(ctx, ctr.ID, []string{bin, "--version"})
			if err == nil {
				if _, text, ok := parseVersion(out); ok {
					return text, nil
				}
				err = fmt.Errorf("unexpected output %q", strings.TrimSpace(out))
			}
			tried = append(tried, fmt.Sprintf("%s --version: %v", bin, err))
		}
	}
	out, err := c.runOnce(ctx, ctr.Image, []string{"--version"})
	if err == nil {
		if _, text, ok := parseVersion(out); ok {
			return text, nil
		}
		err = fmt.Errorf("unexpected output %q", strings.TrimSpace(out))
	}
	tried = append(tried, fmt.Sprintf("image %s run with --version: %v", ctr.Config.Image, err))
	return "", fmt.Errorf("cannot tell which registry release container %s runs (%s)", containerName(ctr), strings.Join(tried, "; "))
}

// versionCommands are the registry binaries to try in a running container: on the
// PATH (official images), the container's own program when it is the registry, and
// registry:2's location.
func versionCommands(entry string) []string {
	cmds := []string{"registry"}
	if entry != "" && strings.Contains(path.Base(entry), "registry") && entry != "registry" {
		cmds = append(cmds, entry)
	}
	if entry != "/bin/registry" {
		cmds = append(cmds, "/bin/registry")
	}
	return cmds
}

// execOutput runs a command in a running container and returns its output.
func (c *Client) execOutput(ctx context.Context, id string, cmd []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ex, err := c.api.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	att, err := c.api.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		return "", err
	}
	st, err := c.api.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return "", err
	}
	if st.ExitCode != 0 {
		return "", fmt.Errorf("exit status %d: %s", st.ExitCode, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// runOnce runs an image's entrypoint with the given command in a throw-away
// container without network and returns its output.
func (c *Client) runOnce(ctx context.Context, image string, cmd []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	created, err := c.api.ContainerCreate(ctx,
		&container.Config{Image: image, Cmd: cmd, Labels: map[string]string{"clean-registry.role": "version-probe"}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		return "", err
	}
	defer func() {
		rmCtx, rmCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer rmCancel()
		c.api.ContainerRemove(rmCtx, created.ID, container.RemoveOptions{Force: true})
	}()
	waitC, errC := c.api.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := c.api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", err
	}
	select {
	case <-waitC:
	case err := <-errC:
		return "", err
	}
	logs, err := c.api.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer logs.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil {
		return "", err
	}
	return out.String(), nil
}

func containerName(ctr container.InspectResponse) string {
	if n := strings.TrimPrefix(ctr.Name, "/"); n != "" {
		return n
	}
	return shortID(ctr.ID)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
