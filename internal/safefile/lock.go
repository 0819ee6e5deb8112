package safefile

import (
	"errors"
	"os"
)

// ErrLocked is TryLock's answer when another open file (in this process or
// another) holds the lock.
var ErrLocked = errors.New("safefile: locked by another process")

// ErrUnsupported is the answer of Lock and TryLock on a system without file
// locks (neither flock nor LockFileEx): callers must refuse, not carry on
// unlocked. errors.Is(err, errors.ErrUnsupported) is true too.
var ErrUnsupported = unsupported{}

type unsupported struct{}

func (unsupported) Error() string        { return "safefile: file locks are not supported on this system" }
func (unsupported) Is(target error) bool { return target == errors.ErrUnsupported }

// TryLock takes an exclusive lock on f without waiting, or returns
// ErrLocked. The lock is advisory (it binds only those who lock), lasts
// until Unlock or until f is closed, and the system drops it when the
// process dies however it dies: a lock never outlives its holder.
func TryLock(f *os.File) error { return lock(f, false) }

// Lock takes an exclusive lock on f like TryLock, waiting for it as long
// as it is held.
func Lock(f *os.File) error { return lock(f, true) }

// Unlock releases a lock Lock or TryLock took on f. Closing f releases it
// too.
func Unlock(f *os.File) error { return unlock(f) }
