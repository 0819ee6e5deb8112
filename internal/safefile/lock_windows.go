//go:build windows

package safefile

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// LockFileEx and UnlockFileEx from kernel32, through the standard library's
// syscall package: golang.org/x/sys/windows has them too, but would be the
// library's only dependency for two calls.
var (
	kernel32         = syscall.NewLazyDLL("kernel32.dll")
	procLockFileEx   = kernel32.NewProc("LockFileEx")
	procUnlockFileEx = kernel32.NewProc("UnlockFileEx")
)

const (
	lockfileFailImmediately = 0x1
	lockfileExclusiveLock   = 0x2
	errorLockViolation      = syscall.Errno(33) // ERROR_LOCK_VIOLATION
)

// Windows locks are mandatory: a locked range cannot be read or written
// through another handle. Locking one byte far past any data keeps the lock
// advisory, as flock's is: the file stays readable and writable by all.
const lockOffsetHigh = 0x7fffffff

func lockRange() *syscall.Overlapped { return &syscall.Overlapped{OffsetHigh: lockOffsetHigh} }

func lock(f *os.File, wait bool) error {
	flags := uint32(lockfileExclusiveLock)
	if !wait {
		flags |= lockfileFailImmediately
	}
	r, _, err := procLockFileEx.Call(f.Fd(), uintptr(flags), 0, 1, 0, uintptr(unsafe.Pointer(lockRange())))
	if r != 0 {
		return nil
	}
	if errors.Is(err, errorLockViolation) || errors.Is(err, syscall.ERROR_IO_PENDING) {
		return ErrLocked
	}
	return &os.PathError{Op: "LockFileEx", Path: f.Name(), Err: err}
}

func unlock(f *os.File) error {
	r, _, err := procUnlockFileEx.Call(f.Fd(), 0, 1, 0, uintptr(unsafe.Pointer(lockRange())))
	if r == 0 {
		return &os.PathError{Op: "UnlockFileEx", Path: f.Name(), Err: err}
	}
	return nil
}
