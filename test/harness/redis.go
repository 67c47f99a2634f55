package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedis runs a throw-away redis-server on loopback for the test (no persistence,
// its files in a temporary directory) and returns its host:port. Without
// redis-server (Debian package redis-server) the test skips, or fails under
// CLEAN_REGISTRY_REQUIRE_ALL=1.
func StartRedis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Unavailable(t, "redis-server is not installed (Debian package redis-server)")
	}
	dir := t.TempDir()
	// A port found free can be taken before redis binds it: try a few.
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("finding a free loopback port: %v", err)
		}
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", "")
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server on %s: %v", addr, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		stop := func() {
			cmd.Process.Kill()
			<-done
		}
		if redisAnswers(addr, done) {
			t.Cleanup(stop)
			return addr
		}
		stop()
	}
	t.Fatalf("redis-server does not answer on loopback")
	return ""
}

// redisAnswers waits up to 5s for the server at addr to answer PING; false when it
// does not, or exits first (most likely: the port was taken).
func redisAnswers(addr string, exited <-chan struct{}) bool {
	for i := 0; i < 200; i++ {
		if reply, _ := RedisCommand(addr, "PING"); reply == "+PONG" {
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(25 * time.Millisecond):
		}
	}
	return false
}

// RedisCommand sends one inline command to the redis server at addr and returns the
// first line of its reply (e.g. "+PONG", ":1", "$-1").
func RedisCommand(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\r\n", strings.Join(args, " ")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// RedisInt is the integer reply (":N") of a command such as DBSIZE or EXISTS.
func RedisInt(addr string, args ...string) (int64, error) {
	reply, err := RedisCommand(addr, args...)
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(reply, ":") {
		return 0, fmt.Errorf("redis %s: reply %q is no integer", strings.Join(args, " "), reply)
	}
	return strconv.ParseInt(reply[1:], 10, 64)
}

// Blob descriptor caches a registry can run with (storage.cache.blobdescriptor).
const (
	CacheNone     = ""
	CacheInMemory = "inmemory"
	CacheRedis    = "redis"
)

// UseBlobDescriptorCache rewrites the registry's config.yml so that its blob
// descriptor cache is cache (CacheNone: no cache at all; CacheRedis: the redis server
// at redisAddr, in the file's top-level redis section) and restarts it on the same
// port. The file is then the registry's whole configuration, as `clean-registry
// --config` reads it.
func (r *Registry) UseBlobDescriptorCache(ctx context.Context, cache, redisAddr string) error {
	yml := r.cfg.YAML()
	const line = "    blobdescriptor: \"inmemory\"\n"
	if !strings.Contains(yml, "  cache:\n"+line) {
		return fmt.Errorf("the registry's config.yml has no in-memory cache section to replace:\n%s", yml)
	}
	switch cache {
	case CacheNone:
		yml = strings.Replace(yml, "  cache:\n"+line, "", 1)
	case CacheInMemory:
	case CacheRedis:
		if redisAddr == "" {
			return fmt.Errorf("a redis cache needs the server's address")
		}
		yml = strings.Replace(yml, line, "    blobdescriptor: \"redis\"\n", 1)
		yml += "redis:\n  addrs:\n    - " + strconv.Quote(redisAddr) + "\n"
	default:
		return fmt.Errorf("unknown blob descriptor cache %q", cache)
	}
	if err := os.WriteFile(r.configPath, []byte(yml), 0o644); err != nil {
		return err
	}
	return r.Restart(ctx)
}

// UseBlobDescriptorCacheT is UseBlobDescriptorCache for tests: it fails the test on
// error.
func (r *Registry) UseBlobDescriptorCacheT(t testing.TB, cache, redisAddr string) {
	t.Helper()
	if err := r.UseBlobDescriptorCache(context.Background(), cache, redisAddr); err != nil {
		t.Fatalf("configuring the registry's blob descriptor cache (%q): %v", cache, err)
	}
}
