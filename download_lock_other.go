//go:build !unix

package mpgdpr

import "os"

// tryLock reports the file as lockable: without flock, a running
// download's part is protected only by the system refusing to remove a
// file that is open (as Windows does).
func tryLock(*os.File) (bool, error) { return true, nil }
