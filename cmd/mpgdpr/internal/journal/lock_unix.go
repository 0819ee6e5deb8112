//go:build unix

package journal

import (
	"errors"
	"os"
	"syscall"
)

var errWouldBlock = syscall.EWOULDBLOCK

// lock takes an exclusive advisory lock on f, so that two runs cannot
// resume the same job at once (each would file the same IDs). The kernel
// releases it when the process ends, however it ends: a killed run never
// leaves a stale lock behind.
func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
