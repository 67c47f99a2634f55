package harness

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills a child process when the test process dies without cleaning up.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
