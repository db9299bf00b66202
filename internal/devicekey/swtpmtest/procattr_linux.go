package swtpmtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes swtpm exit when the test process dies without
// running its cleanups (a timeout panic, a kill), so no TPM is left
// running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
