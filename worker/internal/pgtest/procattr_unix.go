//go:build unix && !linux

package pgtest

import "syscall"

// serverProcAttr runs postgres as cred's user. Without Linux's Pdeathsig,
// a test binary killed with SIGKILL leaves its postgres running (its
// directory is swept once that postgres is gone).
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
