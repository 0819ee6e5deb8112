package workerdb

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Driver says which database a Location names.
type Driver int

const (
	// SQLite is a file, opened with modernc.org/sqlite.
	SQLite Driver = iota + 1
	// Postgres is a server, reached with pgx.
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Driver) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Driver(%d)", int(d))
}

// Location is a resolved database name.
type Location struct {
	Driver Driver
	// Path is the SQLite file (cleaned; absolute when Resolve was given a
	// directory and the path was relative to it). Empty for Postgres.
	Path string
	// url is the Postgres URL as given; it may hold a password, so it is
	// reachable only through URL, never through String or an error.
	url string
}

// ErrBadURL is what Resolve's errors wrap.
var ErrBadURL = errors.New("database must be sqlite:PATH or a postgres:// URL")

// Resolve reads a database URL: "sqlite:PATH" or "postgres://…" /
// "postgresql://…". A relative SQLite PATH is taken from dir, the directory
// of the configuration file that names it (so the worker, its status
// command and the evidence report open the same file wherever they are
// started); with dir empty it stays relative to the current directory.
// The error never quotes the URL (it may hold a password).
func Resolve(url, dir string) (Location, error) {
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		if path == "" {
			return Location{}, fmt.Errorf("%w: sqlite: with no path", ErrBadURL)
		}
		if dir != "" && !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		return Location{Driver: SQLite, Path: filepath.Clean(path)}, nil
	}
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return Location{Driver: Postgres, url: url}, nil
	}
	return Location{}, ErrBadURL
}

// URL returns the location as a URL Resolve reads back: "sqlite:PATH" or
// the Postgres URL, password included (for opening it, not for showing).
func (l Location) URL() string {
	if l.Driver == SQLite {
		return "sqlite:" + l.Path
	}
	return l.url
}

// String names the location for a message: the SQLite path, or for
// Postgres only the driver (the URL may hold a password).
func (l Location) String() string {
	if l.Driver == SQLite {
		return "sqlite:" + l.Path
	}
	return "a postgres:// URL"
}
