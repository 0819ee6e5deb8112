package pgtest

import "syscall"

// serverProcAttr runs postgres as cred's user. Pdeathsig: postgres dies
// with the process that started it, even one killed with SIGKILL. Setpgid:
// a terminal's Ctrl-C reaches the test process, which stops postgres
// itself, in order.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
