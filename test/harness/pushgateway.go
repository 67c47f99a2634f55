package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// PushgatewayVersion is the Prometheus Pushgateway release the metrics tests push to.
const PushgatewayVersion = "v1.11.1"

const pushgatewayModule = "github.com/prometheus/pushgateway"

// PushgatewayBinaryPath is where the Pushgateway binary lives once built.
func PushgatewayBinaryPath() string {
	return filepath.Join(CacheDir(), "pushgateway-"+PushgatewayVersion, "pushgateway")
}

var pushgatewayBuildMu sync.Mutex

// PushgatewayBinary returns the Pushgateway binary, building it from its Go module
// the first time (a minute), like RegistryBinary. It is built in a throwaway module
// requiring it rather than with `go install MODULE@VERSION`, which also asks the
// proxy for the module's version list and fails where the proxy refuses that list
// (see .ci/prepare.sh).
func PushgatewayBinary(ctx context.Context) (string, error) {
	goVersion := strings.Fields(strings.TrimPrefix(runtime.Version(), "go"))[0]
	mod := fmt.Sprintf("module build\n\ngo %s\n\nrequire %s %s\n", goVersion, pushgatewayModule, PushgatewayVersion)
	return cachedBuild(&pushgatewayBuildMu, PushgatewayBinaryPath(), func(tmp string) (*exec.Cmd, error) {
		if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte(mod), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(tmp, "pushgateway"), pushgatewayModule)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off")
		return cmd, nil
	}, pushgatewayModule+"@"+PushgatewayVersion)
}

// Pushgateway is one Pushgateway process serving on loopback, without persistence.
type Pushgateway struct {
	// URL is where it serves, e.g. http://127.0.0.1:40123.
	URL     string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartPushgateway runs a Pushgateway on a free loopback port for the test and stops
// it when the test ends. Without a Pushgateway binary (none cached and none
// buildable) the test skips, or fails when CLEAN_REGISTRY_REQUIRE_ALL=1.
func StartPushgateway(t testing.TB) *Pushgateway {
	t.Helper()
	bin, err := PushgatewayBinary(context.Background())
	if err != nil {
		Unavailable(t, "no Pushgateway %s binary: %v", PushgatewayVersion, err)
	}
	dir := t.TempDir()
	// A port found free may be taken before the Pushgateway binds it: try another.
	for attempt := 0; ; attempt++ {
		g, err := startPushgateway(bin, dir)
		if err == nil {
			t.Cleanup(g.stop)
			return g
		}
		if attempt == 2 {
			t.Fatalf("starting the Pushgateway: %v", err)
		}
	}
}

func startPushgateway(bin, dir string) (*Pushgateway, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "pushgateway.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "--- %s: pushgateway on %s\n", time.Now().Format(time.RFC3339Nano), addr)
	// No --persistence.file: the metrics live in memory only.
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--log.level=info")
	cmd.Stdout, cmd.Stderr = log, log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	g := &Pushgateway{URL: "http://" + addr, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(g.done) }()

	deadline := time.After(startTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := client.Get(g.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, nil
			}
		}
		select {
		case <-g.done:
			return nil, fmt.Errorf("the Pushgateway exited while starting:\n%s", tail(g.Logs(), 4000))
		case <-deadline:
			g.stop()
			return nil, fmt.Errorf("the Pushgateway is not answering on %s:\n%s", addr, tail(g.Logs(), 4000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Logs returns what the Pushgateway wrote, for failure messages.
func (g *Pushgateway) Logs() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return fmt.Sprintf("(no Pushgateway log: %v)", err)
	}
	return string(b)
}

func (g *Pushgateway) stop() {
	select {
	case <-g.done:
	default:
		g.cmd.Process.Kill()
		<-g.done
	}
}
