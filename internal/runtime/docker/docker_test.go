package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

func TestContainerToHost(t *testing.T) {
	mounts := []container.MountPoint{
		{Type: mount.TypeVolume, Name: "data", Source: "/var/lib/docker/volumes/data/_data", Destination: "/var/lib/registry"},
		{Type: mount.TypeBind, Source: "/srv/sub", Destination: "/var/lib/registry/nested"},
		{Type: mount.TypeBind, Source: "/srv/etc", Destination: "/etc/distribution"},
		{Type: mount.TypeTmpfs, Destination: "/tmpfs"},
	}
	tests := []struct {
		path, host string
		ok         bool
	}{
		{"/var/lib/registry", "/var/lib/docker/volumes/data/_data", true},
		{"/var/lib/registry/", "/var/lib/docker/volumes/data/_data", true},
		{"/var/lib/registry/store", "/var/lib/docker/volumes/data/_data/store", true},
		{"/var/lib/registry/nested/x", "/srv/sub/x", true}, // the deepest mount wins
		{"/var/lib/registry2", "", false},                  // a prefix, not a parent
		{"/data", "", false},
		{"/tmpfs/x", "", false},
	}
	for _, tc := range tests {
		host, _, ok := containerToHost(mounts, nil, tc.path)
		if host != tc.host || ok != tc.ok {
			t.Errorf("containerToHost(%q) = %q, %v; want %q, %v", tc.path, host, ok, tc.host, tc.ok)
		}
	}
}

func TestVolumeSubpath(t *testing.T) {
	mounts := []container.MountPoint{{Type: mount.TypeVolume, Name: "v", Source: "/vols/v/_data", Destination: "/var/lib/registry"}}
	declared := []mount.Mount{{Type: mount.TypeVolume, Source: "v", Target: "/var/lib/registry",
		VolumeOptions: &mount.VolumeOptions{Subpath: "reg"}}}
	if host, _, _ := containerToHost(mounts, declared, "/var/lib/registry/x"); host != "/vols/v/_data/reg/x" {
		t.Errorf("subpath: got %q", host)
	}
	mounts[0].Source = "/vols/v/_data/reg" // an engine that reports the subpath itself
	if host, _, _ := containerToHost(mounts, declared, "/var/lib/registry"); host != "/vols/v/_data/reg" {
		t.Errorf("reported subpath: got %q", host)
	}
}

func TestHostToContainer(t *testing.T) {
	self := []container.MountPoint{
		{Type: mount.TypeVolume, Name: "data", Source: "/var/lib/docker/volumes/data/_data", Destination: "/data"},
		{Type: mount.TypeBind, Source: "/srv", Destination: "/host/srv"},
		{Type: mount.TypeBind, Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"},
	}
	tests := []struct {
		host, local string
		ok          bool
	}{
		{"/var/lib/docker/volumes/data/_data/store", "/data/store", true},
		{"/srv/registry", "/host/srv/registry", true},
		{"/srv", "/host/srv", true},
		{"/var/lib/docker/volumes/other/_data", "", false},
	}
	for _, tc := range tests {
		local, ok := hostToContainer(self, nil, tc.host)
		if local != tc.local || ok != tc.ok {
			t.Errorf("hostToContainer(%q) = %q, %v; want %q, %v", tc.host, local, ok, tc.local, tc.ok)
		}
	}
}

func TestOverlaps(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"/srv/reg", "/srv/reg", true},
		{"/srv/reg/docker", "/srv/reg", true},
		{"/srv", "/srv/reg", true},
		{"/srv/registry2", "/srv/registry", false},
	} {
		if got := overlaps(tc.a, tc.b); got != tc.want {
			t.Errorf("overlaps(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestConfigPaths(t *testing.T) {
	tests := []struct {
		name  string
		entry string
		args  []string
		env   []string
		want  []string
	}{
		{"v3 image", "registry", []string{"serve", "/etc/distribution/config.yml"}, nil, []string{"/etc/distribution/config.yml"}},
		{"registry:2 entrypoint", "/entrypoint.sh", []string{"/etc/docker/registry/config.yml"}, nil, []string{"/etc/docker/registry/config.yml"}},
		{"serve with a flag", "/bin/registry", []string{"serve", "--debug", "/c.yaml"}, nil, []string{"/c.yaml"}},
		{"shell form", "/bin/sh", []string{"-c", "exec registry serve /x/config.yml"}, nil, []string{"/x/config.yml"}},
		{"environment", "/bin/registry", []string{"serve"}, []string{"REGISTRY_CONFIGURATION_PATH=/cfg.yml"}, []string{"/cfg.yml"}},
		{"defaults", "/bin/registry", nil, nil, defaultConfigPaths},
	}
	for _, tc := range tests {
		if got := configPaths(tc.entry, tc.args, tc.env); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: configPaths = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		out   string
		v     [3]int
		ok    bool
		atMin bool
	}{
		{"registry github.com/distribution/distribution/v3 v3.1.2+unknown\n", [3]int{3, 1, 2}, true, true},
		{"/bin/registry github.com/docker/distribution v2.8.3", [3]int{2, 8, 3}, true, true},
		{"registry github.com/docker/distribution v2.4.0", [3]int{2, 4, 0}, true, true},
		{"registry github.com/docker/distribution v2.3.1", [3]int{2, 3, 1}, true, false},
		{"registry github.com/docker/distribution v2.7.0-rc.0-52-gabc", [3]int{2, 7, 0}, true, true},
		{"exec: registry: not found", [3]int{}, false, false},
	}
	for _, tc := range tests {
		v, _, ok := parseVersion(tc.out)
		if v != tc.v || ok != tc.ok {
			t.Errorf("parseVersion(%q) = %v, %v", tc.out, v, ok)
		}
		if ok && versionAtLeast(v, MinVersion) != tc.atMin {
			t.Errorf("versionAtLeast(%v) != %v", v, tc.atMin)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	none := func(string) bool { return false }

	ep, err := ResolveEndpoint(env(map[string]string{"DOCKER_HOST": "tcp://h:2376", "DOCKER_CERT_PATH": "/certs", "DOCKER_TLS_VERIFY": "1"}), none)
	if err != nil || ep.Host != "tcp://h:2376" || ep.TLSDir != "/certs" || !ep.TLSVerify {
		t.Errorf("DOCKER_HOST: %+v, %v", ep, err)
	}
	ep, _ = ResolveEndpoint(env(nil), func(p string) bool { return p == "/var/run/docker.sock" })
	if ep.Host != "unix:///var/run/docker.sock" {
		t.Errorf("default: %+v", ep)
	}
	ep, _ = ResolveEndpoint(env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}),
		func(p string) bool { return p == "/run/user/1000/podman/podman.sock" })
	if ep.Host != "unix:///run/user/1000/podman/podman.sock" {
		t.Errorf("podman: %+v", ep)
	}

	// A context stored the docker command line's way.
	dir := t.TempDir()
	sum := sha256.Sum256([]byte("remote"))
	id := hex.EncodeToString(sum[:])
	meta := filepath.Join(dir, "contexts", "meta", id)
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(meta, "meta.json"), []byte(`{"Name":"remote","Endpoints":{"docker":{"Host":"tcp://remote:2375","SkipTLSVerify":false}}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"currentContext":"remote"}`), 0o644)
	ep, err = ResolveEndpoint(env(map[string]string{"DOCKER_CONFIG": dir}), none)
	if err != nil || ep.Host != "tcp://remote:2375" {
		t.Errorf("context from config.json: %+v, %v", ep, err)
	}
	if _, err := ResolveEndpoint(env(map[string]string{"DOCKER_CONFIG": dir, "DOCKER_CONTEXT": "missing"}), none); err == nil {
		t.Error("a missing context must be an error")
	}
	ep, _ = ResolveEndpoint(env(map[string]string{"DOCKER_CONFIG": dir, "DOCKER_CONTEXT": "default"}), none)
	if ep.Host != "unix:///var/run/docker.sock" {
		t.Errorf("default context: %+v", ep)
	}
}

func TestSelfContainerIDs(t *testing.T) {
	id := "4f1c5a0e7a7e5f0b9d3c8e2a1b6d4c3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c"
	files := map[string]string{
		"/proc/self/mountinfo": "1 2 0:1 / / rw - overlay overlay rw\n" +
			"650 640 254:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw - ext4 /dev/vda rw\n" +
			"651 640 254:1 /var/lib/docker/containers/" + id[:63] + "0/mounts/shm /dev/shm rw - ext4 /dev/vda rw\n",
	}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("absent")
	}
	got := selfContainerIDs(read, id[:12])
	if !reflect.DeepEqual(got, []string{id, id[:12]}) {
		t.Errorf("got %v", got)
	}
	if got := selfContainerIDs(read, "vm"); !reflect.DeepEqual(got, []string{id}) {
		t.Errorf("hostname not an ID: got %v", got)
	}
	files = map[string]string{"/run/.containerenv": "engine=\"podman-4.3.1\"\nname=\"x\"\nid=\"" + id + "\"\n"}
	if got := selfContainerIDs(read, "x"); !reflect.DeepEqual(got, []string{id}) {
		t.Errorf("podman: got %v", got)
	}
}

// The engine's answers (missing container, wrong state) are not retried; other
// failures are, engineRetry.Attempts times in all.
func TestRetryEngine(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err   error
		calls int
	}{
		{cerrdefs.ErrNotFound, 1},
		{cerrdefs.ErrConflict, 1},
		{errors.New("connection reset"), engineRetry.Attempts},
	} {
		calls := 0
		err := retryEngine(ctx, func() error { calls++; return c.err })
		if calls != c.calls || !errors.Is(err, c.err) {
			t.Errorf("%v: %d calls, err %v; want %d calls", c.err, calls, err, c.calls)
		}
	}
}
