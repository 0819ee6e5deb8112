//go:build unix

package gotool

import (
	"os"
	"syscall"
)

// lockBuilds takes an exclusive lock shared by every process building from
// the same tools go.mod into the same cache; the kernel drops it if the
// process dies.
func lockBuilds(modfile string) (func(), error) {
	f, err := os.OpenFile(lockPath(modfile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
