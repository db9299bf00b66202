//go:build linux

package upstream

import (
	"os/exec"
	"syscall"
)

// configureChild puts the child in its own process group (so the whole tree,
// for example npx and the node process it starts, is stopped together) and
// asks the kernel to kill it if the gateway dies, so children are never
// orphaned even on SIGKILL.
func configureChild(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killTree kills the child's process group.
func killTree(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
