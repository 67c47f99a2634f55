// Package docker finds the registry behind a Docker (or Podman, or Swarm) target,
// reads its configuration the way the registry does, maps its storage to a path this
// process can reach, and quiesces and restores its containers around a cleaning.
package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/client"
	"github.com/docker/go-connections/tlsconfig"
)

// Client talks to one Docker Engine API endpoint (Docker, or Podman's compatible API).
type Client struct {
	api *client.Client
	// Host is the endpoint in use, for messages.
	Host string
}

// Endpoint is where the engine listens and how to reach it securely.
type Endpoint struct {
	Host string
	// TLSDir holds ca.pem, cert.pem and key.pem; empty: no client TLS.
	TLSDir    string
	TLSVerify bool
	// From says where the endpoint came from (environment, context NAME, default...).
	From string
}

// NewClient connects as the docker command line would: DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_API_VERSION first, else the current
// Docker context (DOCKER_CONTEXT or the CLI's config.json), else the default socket,
// else a Podman socket when only that exists. The API version is negotiated, so old
// engines (API 1.41 of Docker 20.10, Podman's compat API) work.
func NewClient(ctx context.Context) (*Client, error) {
	ep, err := ResolveEndpoint(os.Getenv, fileExists)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(ep.Host, "ssh://") {
		return nil, fmt.Errorf("engine %s (%s): ssh:// endpoints are not supported; "+
			"run clean-registry on that host, where the registry's storage is", ep.Host, ep.From)
	}
	opts := []client.Opt{client.WithHost(ep.Host), client.WithVersionFromEnv(), client.WithAPIVersionNegotiation()}
	if ep.TLSDir != "" {
		// Must precede WithHost, which configures the transport it installs.
		opts = append([]client.Opt{tlsFromDir(ep.TLSDir, ep.TLSVerify)}, opts...)
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s (%s): %w", ep.Host, ep.From, err)
	}
	c := &Client{api: api, Host: ep.Host}
	if _, err := api.Ping(ctx); err != nil {
		api.Close()
		return nil, fmt.Errorf("cannot reach the container engine at %s (%s): %w", ep.Host, ep.From, err)
	}
	return c, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.api.Close() }

// tlsFromDir configures client TLS from a directory of ca.pem, cert.pem and key.pem,
// as client.FromEnv does for DOCKER_CERT_PATH; a context keeps its own directory.
func tlsFromDir(dir string, verify bool) client.Opt {
	return func(c *client.Client) error {
		file := func(name string) string {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p
			}
			return ""
		}
		tlsc, err := tlsconfig.Client(tlsconfig.Options{
			CAFile:             file("ca.pem"),
			CertFile:           file("cert.pem"),
			KeyFile:            file("key.pem"),
			InsecureSkipVerify: !verify,
		})
		if err != nil {
			return fmt.Errorf("TLS material in %s: %w", dir, err)
		}
		return client.WithHTTPClient(&http.Client{
			Transport:     &http.Transport{TLSClientConfig: tlsc},
			CheckRedirect: client.CheckRedirect,
		})(c)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// ResolveEndpoint decides which engine to talk to, from the environment (getenv) and
// the files that exist (exists): the rules of the docker command line, plus a
// fallback to Podman's socket when Docker's is absent.
func ResolveEndpoint(getenv func(string) string, exists func(string) bool) (Endpoint, error) {
	if host := getenv(client.EnvOverrideHost); host != "" {
		ep := Endpoint{Host: host, From: "DOCKER_HOST"}
		if dir := getenv(client.EnvOverrideCertPath); dir != "" {
			ep.TLSDir, ep.TLSVerify = dir, getenv(client.EnvTLSVerify) != ""
		}
		return ep, nil
	}
	configDir := getenv("DOCKER_CONFIG")
	if configDir == "" {
		if home := getenv("HOME"); home != "" {
			configDir = filepath.Join(home, ".docker")
		}
	}
	name, from := getenv("DOCKER_CONTEXT"), "DOCKER_CONTEXT"
	if name == "" && configDir != "" {
		name, from = currentContext(filepath.Join(configDir, "config.json")), "docker context"
	}
	if name != "" && name != "default" {
		if configDir == "" {
			return Endpoint{}, fmt.Errorf("docker context %q: no docker config directory (set HOME or DOCKER_CONFIG)", name)
		}
		return contextEndpoint(configDir, name, from)
	}
	if exists("/var/run/docker.sock") {
		return Endpoint{Host: client.DefaultDockerHost, From: "default"}, nil
	}
	// Podman serves the Docker API on its own socket: rootless first, then rootful.
	var candidates []string
	if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "podman", "podman.sock"))
	}
	candidates = append(candidates, "/run/podman/podman.sock")
	for _, sock := range candidates {
		if exists(sock) {
			return Endpoint{Host: "unix://" + sock, From: "podman socket"}, nil
		}
	}
	return Endpoint{Host: client.DefaultDockerHost, From: "default"}, nil
}

func currentContext(configFile string) string {
	data, err := os.ReadFile(configFile)
	if err != nil {
		return ""
	}
	var cfg struct {
		CurrentContext string `json:"currentContext"`
	}
	if json.Unmarshal(data, &cfg) != nil {
		return ""
	}
	return cfg.CurrentContext
}

// contextEndpoint reads a context the docker command line stored: its metadata under
// contexts/meta/<sha256 of the name>/meta.json, its TLS files under contexts/tls/.
func contextEndpoint(configDir, name, from string) (Endpoint, error) {
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	data, err := os.ReadFile(filepath.Join(configDir, "contexts", "meta", id, "meta.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Endpoint{}, fmt.Errorf("docker context %q (%s) not found", name, from)
		}
		return Endpoint{}, fmt.Errorf("docker context %q: %w", name, err)
	}
	var meta struct {
		Endpoints map[string]struct {
			Host          string `json:"Host"`
			SkipTLSVerify bool   `json:"SkipTLSVerify"`
		} `json:"Endpoints"`
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return Endpoint{}, fmt.Errorf("docker context %q: %w", name, err)
	}
	d, ok := meta.Endpoints["docker"]
	if !ok || d.Host == "" {
		return Endpoint{}, fmt.Errorf("docker context %q has no docker endpoint", name)
	}
	ep := Endpoint{Host: d.Host, From: fmt.Sprintf("context %s", name)}
	tlsDir := filepath.Join(configDir, "contexts", "tls", id, "docker")
	if fileExists(filepath.Join(tlsDir, "ca.pem")) || fileExists(filepath.Join(tlsDir, "cert.pem")) {
		ep.TLSDir, ep.TLSVerify = tlsDir, !d.SkipTLSVerify
	}
	return ep, nil
}
