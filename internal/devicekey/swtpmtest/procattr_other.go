//go:build !linux

package swtpmtest

import "os/exec"

func dieWithParent(cmd *exec.Cmd) {}
