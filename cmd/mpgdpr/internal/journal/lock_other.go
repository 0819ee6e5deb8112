//go:build !unix

package journal

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// lock does nothing where flock(2) is not available: do not run two
// processes on one journal there.
func lock(*os.File) error { return nil }
