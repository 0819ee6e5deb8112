//go:build !unix && !windows

package safefile

import "os"

// Without flock or LockFileEx (wasm, plan9), locking fails loudly: a caller
// that needs a lock to be safe must refuse to run, not run unlocked.
func lock(*os.File, bool) error { return ErrUnsupported }

func unlock(*os.File) error { return ErrUnsupported }
