package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

// Where registry images keep their configuration: distribution v3's image, then
// registry:2's.
var defaultConfigPaths = []string{"/etc/distribution/config.yml", "/etc/docker/registry/config.yml"}

// configPaths says where a registry container reads its configuration, from its
// command line (entrypoint path and arguments) and environment: the file named on the
// command line (`registry serve FILE`, or registry:2's entrypoint given FILE.yml),
// else REGISTRY_CONFIGURATION_PATH, else the images' default paths. A file named
// explicitly is the only candidate: the registry reads nothing else.
func configPaths(entry string, args []string, env []string) []string {
	cmd := append([]string{entry}, args...)
	// A shell form ("sh -c 'registry serve /x.yml'") is split the simple way.
	for i, a := range cmd {
		if a == "-c" && i+1 < len(cmd) && strings.HasSuffix(path.Base(cmd[0]), "sh") {
			cmd = strings.Fields(cmd[i+1])
			break
		}
	}
	for i, a := range cmd {
		if a != "serve" {
			continue
		}
		for _, b := range cmd[i+1:] {
			if !strings.HasPrefix(b, "-") {
				return []string{b}
			}
		}
	}
	for i := len(cmd) - 1; i >= 1; i-- {
		if strings.HasSuffix(cmd[i], ".yml") || strings.HasSuffix(cmd[i], ".yaml") {
			return []string{cmd[i]}
		}
	}
	if p := envValue(env, "REGISTRY_CONFIGURATION_PATH"); p != "" {
		return []string{p}
	}
	return defaultConfigPaths
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// errNoFile is returned when a path does not exist in the container.
var errNoFile = errors.New("no such file")

// readContainerFile reads a regular file out of a container (running, paused or
// stopped) through the engine's archive API, following symbolic links.
func (c *Client) readContainerFile(ctx context.Context, id, p string) ([]byte, error) {
	for hops := 0; hops < 16; hops++ {
		rc, _, err := c.api.CopyFromContainer(ctx, id, p)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				return nil, fmt.Errorf("%s: %w", p, errNoFile)
			}
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		data, link, err := firstTarFile(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if link == "" {
			return data, nil
		}
		if !path.IsAbs(link) {
			link = path.Join(path.Dir(p), link)
		}
		p = link
	}
	return nil, fmt.Errorf("reading %s: too many symbolic links", p)
}

// firstTarFile returns the content of the archive's first entry, or the target when
// it is a symbolic link.
func firstTarFile(r io.Reader) (data []byte, link string, err error) {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		return nil, "", err
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		return nil, hdr.Linkname, nil
	case tar.TypeReg:
	default:
		return nil, "", fmt.Errorf("not a regular file")
	}
	const limit = 4 << 20 // a configuration file, not an image
	if hdr.Size > limit {
		return nil, "", fmt.Errorf("%d bytes is too large for a configuration file", hdr.Size)
	}
	data, err = io.ReadAll(tr)
	return data, "", err
}
