//go:build unix

package pgtest

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
)

// Dump returns pg_dump's plain-text dump of the database at url (schema
// and every row), from the same PostgreSQL installation the clusters come
// from, e.g. to check that some text is nowhere in a database.
func Dump(t testing.TB, url string) []byte {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "pg_dump"), "--no-owner", "--dbname="+url)
	cmd.Env = pgEnv()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("pgtest: pg_dump: %v: %s", err, stderr)
	}
	return out
}
