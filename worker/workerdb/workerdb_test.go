package workerdb

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	dir := filepath.Join(string(filepath.Separator), "etc", "x")
	for _, c := range []struct {
		url, dir string
		driver   Driver
		path     string
	}{
		{"sqlite:worker.db", dir, SQLite, filepath.Join(dir, "worker.db")},
		{"sqlite:sub/../w.db", dir, SQLite, filepath.Join(dir, "w.db")},
		{"sqlite:/var/lib/w.db", dir, SQLite, "/var/lib/w.db"},
		{"sqlite:worker.db", "", SQLite, "worker.db"},
		{"postgres://u:pw@h/db", dir, Postgres, ""},
		{"postgresql://h/db", "", Postgres, ""},
	} {
		loc, err := Resolve(c.url, c.dir)
		if err != nil || loc.Driver != c.driver || loc.Path != c.path {
			t.Errorf("Resolve(%q, %q) = %+v, %v; want %v %q", c.url, c.dir, loc, err, c.driver, c.path)
			continue
		}
		// URL reads back to the same place.
		again, err := Resolve(loc.URL(), c.dir)
		if err != nil || again != loc {
			t.Errorf("Resolve(%q) again = %+v, %v", loc.URL(), again, err)
		}
		if strings.Contains(loc.String(), "pw") {
			t.Errorf("String() shows the password: %s", loc)
		}
	}
	for _, bad := range []string{"", "sqlite:", "mysql://u:pw@h/db", "worker.db"} {
		if _, err := Resolve(bad, dir); !errors.Is(err, ErrBadURL) || strings.Contains(err.Error(), "pw") {
			t.Errorf("Resolve(%q): %v", bad, err)
		}
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                                   "SELECT 1",
		"UPDATE t SET a = ? WHERE id = ?":            "UPDATE t SET a = $1 WHERE id = $2",
		"INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?,?)": "INSERT INTO t VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
	} {
		if got := Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTime(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("x", 3600))
	s := FormatTime(at)
	if s != "2026-03-04T04:06:07.891234Z" {
		t.Fatalf("FormatTime = %q", s)
	}
	if got := ParseTime(s); !got.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("ParseTime(%q) = %v", s, got)
	}
	if got := ParseTime(""); !got.IsZero() {
		t.Errorf("ParseTime(\"\") = %v", got)
	}
}
