//go:build race

package main

// raceFlags builds the binary the tests run the way the test binary itself
// was built: with the race detector, so that `go build` links from the
// packages `go test -race` already compiled (a build without -race would
// compile SQLite, River and every other dependency a second time, about a
// minute of CPU on a cold cache) and the subprocess tests run under the race
// detector too.
var raceFlags = []string{"-race"}
