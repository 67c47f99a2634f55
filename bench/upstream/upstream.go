// Package upstream runs the upstream distribution registry the benchmark compares
// with (the binary comes from test/harness) on a storage root: garbage-collect, and
// serve (read-only) for pulls that prove a tree intact.
package upstream

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
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// Version is the upstream release compared with.
const Version = harness.RegistryVersion

// Path is where the binary lives once built (the test harness's cache).
func Path() string { return harness.RegistryBinaryPath() }

// Binary returns the path of the upstream registry binary, building it with
// `go install` from the Go module proxy when it is not cached yet (about 2 minutes).
func Binary(ctx context.Context) (string, error) { return harness.RegistryBinary(ctx) }

// GCConfig writes a config.yml for `registry garbage-collect` on root. Logging is
// kept to errors so that its cost does not count against upstream.
func GCConfig(path, root string) error {
	return os.WriteFile(path, []byte(fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %q
`, root)), 0o644)
}

// Server is a read-only upstream registry serving a storage root on loopback.
type Server struct {
	URL  string
	cmd  *exec.Cmd
	done chan error
	log  bytes.Buffer
}

// Serve starts the registry read-only on root (no upload purging: the tree is left
// as it is) and waits until it answers.
func Serve(ctx context.Context, binary, root, workDir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cfgPath := filepath.Join(workDir, "serve.yml")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
http:
  addr: %s
`, root, addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + addr, done: make(chan error, 1)}
	s.cmd = exec.Command(binary, "serve", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("registry exited: %v\n%s", err, s.log.Bytes())
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("registry did not answer within 30s")
		}
	}
}

// Stop ends the registry process this Server started.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.done <- nil // a second Stop returns at once
}
