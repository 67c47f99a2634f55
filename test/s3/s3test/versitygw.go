// Package s3test runs a real S3 server for tests and benchmarks: versitygw (the Versity
// S3 Gateway, Apache-2.0) with its posix backend, on a free loopback port, built from
// its Go module into the clean-registry cache on first use.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// VersityModule and VersityVersion pin the server the tests run against.
const (
	VersityModule  = "github.com/versity/versitygw"
	VersityVersion = "v1.8.0"
)

// Credentials of the servers started here (and the defaults for an external one).
const (
	DefaultAccessKey = "cleanregistry"
	DefaultSecretKey = "cleanregistry-secret-key"
	Region           = "us-east-1"
)

// Environment variables that point the tests at a server already running instead.
const (
	EnvEndpoint  = "CLEAN_REGISTRY_S3_ENDPOINT" // e.g. http://127.0.0.1:7070
	EnvAccessKey = "CLEAN_REGISTRY_S3_ACCESS_KEY"
	EnvSecretKey = "CLEAN_REGISTRY_S3_SECRET_KEY"
)

// CacheDir is where built tools are kept: the harness's cache, $CLEAN_REGISTRY_CACHE,
// else $HOME/.cache/clean-registry.
func CacheDir() string { return harness.CacheDir() }

// VersityBinaryPath is where the pinned versitygw binary lives once built.
func VersityBinaryPath() string {
	return filepath.Join(CacheDir(), "versitygw-"+VersityVersion, "versitygw")
}

var buildMu sync.Mutex

// VersityBinary returns the versitygw binary, building it with `go install` from the
// module proxy when it is not in the cache yet (a few minutes, once).
func VersityBinary() (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	return goInstall(VersityBinaryPath(), VersityModule+"/cmd/versitygw@"+VersityVersion)
}

// Server is an S3 endpoint for tests.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	// Dir holds the posix root, the sidecar metadata and the log of a server started
	// here; empty for an external one.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start runs versitygw on a free loopback port with its data below dir: dir/root
// holds the buckets, dir/sidecar the metadata (versitygw wants it outside the root).
func Start(dir string) (*Server, error) { return StartLogged(dir, "") }

// StartLogged is Start with versitygw's access log (one line a request) written to
// accessLog, when not empty: a count of the requests any client sent.
func StartLogged(dir, accessLog string) (*Server, error) {
	bin, err := VersityBinary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	// A port found free can be taken before the server binds it: try a few.
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(bin, dir, accessLog)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin, dir, accessLog string) (*Server, error) {
	root, sidecar := filepath.Join(dir, "root"), filepath.Join(dir, "sidecar")
	for _, d := range []string{root, sidecar} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"--port", addr, "--access", DefaultAccessKey, "--secret", DefaultSecretKey,
		"--region", Region, "--quiet"}
	if accessLog != "" {
		args = append(args, "--access-log", accessLog)
	}
	cmd := exec.Command(bin, append(args, "posix", "--sidecar", sidecar, root)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = versityEnv()
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &Server{Endpoint: "http://" + addr, AccessKey: DefaultAccessKey, SecretKey: DefaultSecretKey,
		Dir: dir, cmd: cmd, done: make(chan struct{}), log: logFile}
	go func() { cmd.Wait(); close(s.done) }()
	if err := s.waitReady(); err != nil {
		s.Close()
		return nil, fmt.Errorf("versitygw on %s: %w\n%s", addr, err, s.LogTail())
	}
	return s, nil
}

// versityEnv drops variables versitygw would read as its own settings.
func versityEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_ACCESS_KEY") || strings.HasPrefix(kv, "ROOT_SECRET") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until the server answers HTTP (any status: anonymous requests get
// 403) or exits.
func (s *Server) waitReady() error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("exited at start")
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not answering after 60s")
}

// LogTail is the end of the server's log, for failure messages.
func (s *Server) LogTail() string {
	if s.Dir == "" {
		return ""
	}
	data, _ := os.ReadFile(filepath.Join(s.Dir, "versitygw.log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(bytes.TrimSpace(data))
}

// Close stops a server started here; an external one is left alone.
func (s *Server) Close() error {
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Kill()
	<-s.done
	s.log.Close()
	return nil
}

// Client is a plain SDK client for setting up and inspecting buckets.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// CreateBucket makes a bucket (names need at least three characters).
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		return fmt.Errorf("creating bucket %s: %w", name, err)
	}
	return nil
}

// DriverParams are the registry s3 driver parameters (storage.s3 in config.yml) for a
// bucket on this server, with the registry's rootdirectory root ("" for none).
func (s *Server) DriverParams(bucket, root string) map[string]any {
	p := map[string]any{
		"bucket":         bucket,
		"region":         Region,
		"regionendpoint": s.Endpoint,
		"forcepathstyle": true,
		"secure":         false,
		"accesskey":      s.AccessKey,
		"secretkey":      s.SecretKey,
	}
	if root != "" {
		p["rootdirectory"] = root
	}
	return p
}

// External is the server named by CLEAN_REGISTRY_S3_ENDPOINT, or nil.
func External() *Server {
	ep := os.Getenv(EnvEndpoint)
	if ep == "" {
		return nil
	}
	s := &Server{Endpoint: strings.TrimSuffix(ep, "/"), AccessKey: DefaultAccessKey, SecretKey: DefaultSecretKey}
	if v := os.Getenv(EnvAccessKey); v != "" {
		s.AccessKey = v
	}
	if v := os.Getenv(EnvSecretKey); v != "" {
		s.SecretKey = v
	}
	return s
}

// Shared is one server for a whole test binary: started on first use, stopped by
// Shutdown (call it from TestMain).
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
	dir  string
}

// Get returns the shared server: the external one if CLEAN_REGISTRY_S3_ENDPOINT is
// set, else a versitygw started here. Without one it skips the test, or fails it
// when CLEAN_REGISTRY_REQUIRE_ALL=1.
func (sh *Shared) Get(t testing.TB) *Server {
	t.Helper()
	sh.once.Do(func() {
		if sh.srv = External(); sh.srv != nil {
			return
		}
		sh.dir, sh.err = os.MkdirTemp("", "clean-registry-s3-")
		if sh.err == nil {
			sh.srv, sh.err = Start(sh.dir)
		}
	})
	if sh.err != nil {
		harness.Unavailable(t, "no S3 server: set %s, or let the tests build and start versitygw %s: %v", EnvEndpoint, VersityVersion, sh.err)
	}
	return sh.srv
}

// Shutdown stops the shared server, if one was started.
func (sh *Shared) Shutdown() {
	if sh.srv != nil {
		sh.srv.Close()
	}
	if sh.dir != "" {
		os.RemoveAll(sh.dir)
	}
}
