package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/internal/layout"
	"github.com/clean-registry/clean-registry/v2/internal/lock"
	"github.com/clean-registry/clean-registry/v2/internal/storage/fs"
	"github.com/clean-registry/clean-registry/v2/test/harness"
)

// envHoldLock makes the test binary a lock holder of the storage it names: it takes
// the lock, says "held" and sleeps until killed.
const envHoldLock = "CLEAN_REGISTRY_TEST_HOLD_LOCK"

func holdLock(root string) {
	b, err := fs.New(root, 1)
	if err == nil {
		_, err = lock.Acquire(context.Background(), b, lock.Options{Command: "lock holder of the tests"})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "holding the lock:", err)
		os.Exit(1)
	}
	fmt.Println("held")
	select {}
}

// lockHolder is a process holding a storage's lock.
type lockHolder struct {
	pid  int
	once sync.Once
	cmd  *exec.Cmd
}

// kill kills the holder and reaps it (so its pid is gone and its lock stale); safe to
// call from a test and its cleanup at once.
func (h *lockHolder) kill() {
	h.once.Do(func() { h.cmd.Process.Kill(); h.cmd.Wait() })
}

// startHolder starts a process that holds root's lock, and returns it once it does.
func startHolder(t *testing.T, root string) *lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHoldLock+"="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the lock holder: %v", err)
	}
	h := &lockHolder{pid: cmd.Process.Pid, cmd: cmd}
	t.Cleanup(h.kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "held" {
		t.Fatalf("the lock holder did not take the lock: %q, %v", line, err)
	}
	return h
}

// A real run on a storage whose lock another live process holds exits 1 naming it;
// a dry run goes ahead; --wait waits for the holder to go.
func TestLockHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.s.PushImage("app:1", harness.Image(700, 1, harness.OCI))
	e.s.PushImage("app:1", harness.Image(701, 1, harness.OCI))
	e.reg.StopT(t)
	holder := startHolder(t, e.root)

	r := run(t, "--root", e.root, "--grace", "0")
	if r.code != 1 || !strings.Contains(r.stderr, "pid "+strconv.Itoa(holder.pid)) {
		t.Fatalf("a real run beside a live holder: want exit 1 naming pid %d; got %s", holder.pid, r)
	}
	if !e.exists(harness.RevisionLinkPath("app", old)) {
		t.Fatal("the refused run deleted something")
	}
	js := run(t, "--root", e.root, "--grace", "0", "--json")
	if js.code != 1 || !strings.Contains(js.stdout, `"stage":"lock"`) {
		t.Errorf("--json beside a live holder: want exit 1 and stage lock; got %s", js)
	}
	mustRun(t, "--root", e.root, "--grace", "0", "-n") // a dry run takes no lock

	// Released while the second run waits: it goes ahead.
	go func() {
		time.Sleep(time.Second)
		holder.kill()
	}()
	r = mustRun(t, "--root", e.root, "--grace", "0", "--wait", "30s")
	if e.exists(harness.RevisionLinkPath("app", old)) {
		t.Errorf("the run that waited for the lock did not clean: %s", r)
	}
}

// A holder killed with SIGKILL leaves its lock behind: the next run breaks it, says
// so, and cleans.
func TestLockOfKilledHolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.s.PushImage("app:1", harness.Image(710, 1, harness.OCI))
	e.s.PushImage("app:1", harness.Image(711, 1, harness.OCI))
	e.reg.StopT(t)
	holder := startHolder(t, e.root)
	holder.kill()
	if _, err := os.Stat(filepath.Join(e.root, layout.LockFile)); err != nil {
		t.Fatalf("the killed holder left no lock: %v", err)
	}
	r := mustRun(t, "--root", e.root, "--grace", "0")
	if !strings.Contains(r.stderr, "stale lock") {
		t.Errorf("breaking the killed holder's lock was not reported: %s", r)
	}
	if e.exists(harness.RevisionLinkPath("app", old)) {
		t.Errorf("the run after the killed holder did not clean: %s", r)
	}
	if _, err := os.Stat(filepath.Join(e.root, layout.ToolDir)); !os.IsNotExist(err) {
		t.Errorf("the lock's directory is still there after the run: %v", err)
	}
}

// Two real runs started at once: one cleans, the other either waits its turn
// (--wait) or is refused; the storage ends as after one run, every kept image whole.
func TestTwoRunsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	keep := killScenario(t, e, 40)
	ref := copyOf(t, e.root)
	mustRun(t, "--root", ref, "--grace", "0")
	want := listTree(t, ref)

	for _, wait := range []string{"0", "60s"} {
		root := copyOf(t, e.root)
		var wg sync.WaitGroup
		results := make([]result, 2)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = run(t, "--root", root, "--grace", "0", "-j", "2", "--wait", wait)
			}()
		}
		wg.Wait()
		ok := 0
		for _, r := range results {
			switch {
			case r.code == 0:
				ok++
			case r.code == 1 && strings.Contains(r.stderr, "locked by another clean-registry run") && wait == "0":
			default:
				t.Errorf("--wait %s: a run ended %s", wait, r)
			}
		}
		if ok == 0 || (wait != "0" && ok != 2) {
			t.Errorf("--wait %s: %d runs succeeded: %v", wait, ok, results)
		}
		sameTree(t, "storage after two runs at once (--wait "+wait+")", want, listTree(t, root))
		verifyPulls(t, root, keep)
	}
}
