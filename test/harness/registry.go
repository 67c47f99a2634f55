package harness

import (
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
	"time"
)

// startTimeout bounds how long a registry may take to answer /v2/ after starting.
const startTimeout = 60 * time.Second

// Registry is one upstream registry process serving on loopback.
type Registry struct {
	bin        string
	dir        string // holds config.yml and registry.log
	ownDir     bool   // dir was made by Start and goes with Close
	configPath string
	logPath    string
	cfg        Config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start runs a registry for cfg and waits until it answers. Its config.yml and log
// go to workDir (a new temporary directory when empty, removed by Close).
func Start(ctx context.Context, cfg Config, workDir string) (*Registry, error) {
	bin, err := RegistryBinary(ctx)
	if err != nil {
		return nil, err
	}
	r := &Registry{bin: bin, dir: workDir, cfg: cfg}
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "registry-"); err != nil {
			return nil, err
		}
		r.ownDir = true
	}
	r.configPath = filepath.Join(r.dir, "config.yml")
	r.logPath = filepath.Join(r.dir, "registry.log")
	// A free port found by listening and closing may be taken by someone else before
	// the registry binds it: then try another.
	for attempt := 0; ; attempt++ {
		if cfg.Addr == "" {
			if r.cfg.Addr, err = freeAddr(); err != nil {
				break
			}
		}
		if err = WriteConfig(r.configPath, r.cfg); err != nil {
			break
		}
		if err = r.start(ctx); err == nil || cfg.Addr != "" || attempt == 2 ||
			!strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Addr is the registry's host:port, e.g. "127.0.0.1:40123".
func (r *Registry) Addr() string { return r.cfg.Addr }

// ConfigPath is the registry's config.yml (for garbage-collect and clean-registry --config).
func (r *Registry) ConfigPath() string { return r.configPath }

// Config is what the registry runs with.
func (r *Registry) Config() Config { return r.cfg }

// Running reports whether the registry process is up.
func (r *Registry) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Logs returns everything the registry wrote (every start of it), for failure messages.
func (r *Registry) Logs() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(no registry log: %v)", err)
	}
	return string(b)
}

// start launches the process and waits for /v2/ to answer.
func (r *Registry) start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		select {
		case <-r.done:
		default:
			return errors.New("registry already running")
		}
	}
	log, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "--- %s: registry serve %s on %s\n", time.Now().Format(time.RFC3339Nano), r.configPath, r.cfg.Addr)
	cmd := exec.Command(r.bin, "serve", r.configPath)
	cmd.Env = registryEnv(r.cfg.Env)
	cmd.Stdout, cmd.Stderr = log, log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	r.cmd, r.done = cmd, done

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := client.Get("http://" + r.cfg.Addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("registry exited while starting:\n%s", tail(r.Logs(), 4000))
		case <-ctx.Done():
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("registry not answering on %s: %v:\n%s", r.cfg.Addr, ctx.Err(), tail(r.Logs(), 4000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the registry and waits for it to exit. Pushes are complete once their
// manifest PUT answered, and the filesystem driver writes by rename, so a kill loses
// nothing a test relies on. Stopping a stopped registry does nothing.
func (r *Registry) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return nil
	}
	select {
	case <-r.done:
		return nil
	default:
	}
	if err := r.cmd.Process.Kill(); err != nil {
		return err
	}
	<-r.done
	return nil
}

// Restart stops the registry if it runs and starts it again with the same
// configuration and port: a fresh process, with an empty blob descriptor cache.
func (r *Registry) Restart(ctx context.Context) error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.start(ctx)
}

// Close stops the registry and removes the working directory Start made.
func (r *Registry) Close() error {
	err := r.Stop()
	if r.ownDir {
		os.RemoveAll(r.dir)
	}
	return err
}

// GarbageCollect runs `registry garbage-collect ARGS... CONFIG` (e.g. with
// "--delete-untagged" or "--dry-run") and returns what it printed.
func GarbageCollect(ctx context.Context, configPath string, args ...string) (string, error) {
	bin, err := RegistryBinary(ctx)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"garbage-collect"}, args...), configPath)...)
	cmd.Env = registryEnv(nil)
	dieWithParent(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("registry garbage-collect %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 4000))
	}
	return string(out), nil
}

// registryEnv is this process's environment without REGISTRY_* (only the
// configuration file speaks), plus extra.
func registryEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	// v3 exports traces to localhost:4318 unless told not to; nothing listens there.
	env = append(env, "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	return append(env, extra...)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
