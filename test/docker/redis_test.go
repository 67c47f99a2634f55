package docker_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRedis runs a throw-away redis-server on loopback.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		harness.Unavailable(t, "redis-server is not installed (Debian package redis-server)")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server on %s: %v", addr, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for range 100 {
		if redisCommand(addr, "PING") == "+PONG" {
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis-server at %s does not answer", addr)
	return ""
}

// redisCommand sends one inline command and returns the first line of the reply.
func redisCommand(addr string, args ...string) string {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "%s\r\n", strings.Join(args, " "))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestRedisCache: a registry whose blob descriptor cache is redis is only paused
// and unpaused, and the deleted digests' keys are cleared from redis, so a later
// push of a deleted layer uploads it again.
func TestRedisCache(t *testing.T) {
	engine(t)
	redisAddr := startRedis(t)
	ctx := context.Background()
	dir := t.TempDir()
	name := uniqueName("redis")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := engine(t)
	created, err := api.ContainerCreate(ctx, &container.Config{Image: registryImage(t), Env: []string{
		"REGISTRY_HTTP_ADDR=" + addr,
		"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis",
		"REGISTRY_REDIS_ADDRS=[" + redisAddr + "]",
	}}, &container.HostConfig{NetworkMode: "host",
		Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/var/lib/registry"}}}, nil, nil, name)
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	t.Cleanup(func() {
		api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := api.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	waitAnswers(t, addr)
	f := fill(t, addr)
	key := "blobs::" + f.untaggedLayerDigest
	if redisCommand(redisAddr, "EXISTS", key) != ":1" {
		t.Fatalf("the registry did not cache %s in redis", key)
	}

	c := runtimeClient(t)
	reg := resolve(t, c, name, options(t))
	if m := reg.Containers[0]; m.Cache != "redis" || m.Redis == nil || len(m.Redis.Addrs) != 1 || m.Redis.Addrs[0] != redisAddr {
		t.Fatalf("redis cache not seen: %+v; want cache redis at %s", m, redisAddr)
	}
	_, started := state(t, created.ID)
	if err := c.WithQuiesced(ctx, reg, options(t), cleanRun(t, reg, nil)); err != nil {
		t.Fatalf("cleaning %s (redis cache): %v", name, err)
	}
	wantRestored(t, created.ID, started, false)
	f.verifyLayerDeleted(t, dir)
	for _, k := range []string{key, "repository::app::blobs::" + f.untaggedLayerDigest} {
		if got := redisCommand(redisAddr, "EXISTS", k); got != ":0" {
			t.Errorf("redis still holds %s: EXISTS = %q, want \":0\"", k, got)
		}
	}
	if got := redisCommand(redisAddr, "SISMEMBER", "repository::app::blobs", f.untaggedLayerDigest); got != ":0" {
		t.Errorf("redis still lists the deleted layer in repository app: SISMEMBER = %q, want \":0\"", got)
	}
	f.verifyKept(t, addr)
	f.verifyRepushed(t, addr)
}
