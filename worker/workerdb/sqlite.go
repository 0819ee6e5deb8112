package workerdb

import (
	"path/filepath"
	"strings"
)

// uriEscaper escapes what a SQLite URI reads as syntax in a path: '%'
// starts an escape, '?' the parameters and '#' a fragment. Unescaped, a
// database in "/srv/a#b/" would be opened as "/srv/a", and a '?' in the
// path would be taken by modernc.org/sqlite for the start of its own
// parameters.
var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// SQLiteDSN is how every opener of the worker's SQLite database names it to
// modernc.org/sqlite: a file: URI of path, escaped so that every process
// opens the same file whatever its name holds, then params ("mode=ro",
// "_pragma=busy_timeout(10000)", …) joined with '&'.
func SQLiteDSN(path string, params ...string) string {
	uri := "file:"
	if filepath.IsAbs(path) {
		// file:///abs (an empty authority) also keeps a path that starts
		// with "//" from being read as a host; on Windows, file:///C:/x.
		p := filepath.ToSlash(path)
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		uri = "file://" + uriEscaper.Replace(p)
	} else {
		uri += uriEscaper.Replace(filepath.ToSlash(path))
	}
	if len(params) > 0 {
		uri += "?" + strings.Join(params, "&")
	}
	return uri
}
