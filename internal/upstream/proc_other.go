//go:build !linux

package upstream

import "os/exec"

// configureChild has no process-group or parent-death support off Linux; the
// child is still stopped by [conn.close].
func configureChild(cmd *exec.Cmd) {}

func killTree(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
