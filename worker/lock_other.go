//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package worker

import "os"

// lockFile does not lock where flock is missing: run one worker per SQLite
// database there. Jobs left running by a dead worker are then rescued by
// River after job_timeout plus a minute.
func lockFile(string) (*os.File, error) { return nil, errNoLock }
