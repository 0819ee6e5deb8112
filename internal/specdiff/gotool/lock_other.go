//go:build !unix

package gotool

// lockBuilds does nothing where flock is not available: concurrent builds of
// the same tool are then only slower, not wrong.
func lockBuilds(string) (func(), error) { return func() {}, nil }
