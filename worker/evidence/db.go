package evidence

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib" // registers "pgx" for database/sql
	_ "modernc.org/sqlite"           // the pure-Go SQLite, registered as "sqlite"
)

// DB is the worker's database, read (never written) for evidence.
type DB struct {
	db       *sql.DB
	postgres bool
	own      bool
}

// OpenDB opens the worker's database by URL, as the worker's configuration
// names it: "sqlite:PATH" (opened read-only) or a postgres:// URL. Close it
// when done.
func OpenDB(ctx context.Context, url string) (*DB, error) {
	var d *DB
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(url, "sqlite:")
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, fmt.Errorf("evidence: open %s: %w", path, err)
		}
		d = &DB{db: db, own: true}
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			// pgx's error can quote the URL, password included: do not wrap it.
			return nil, fmt.Errorf("evidence: the postgres URL cannot be used")
		}
		d = &DB{db: stdlib.OpenDBFromPool(pool), postgres: true, own: true}
	default:
		return nil, fmt.Errorf("evidence: database %q is neither sqlite:PATH nor a postgres:// URL", redactURL(url))
	}
	if err := d.db.PingContext(ctx); err != nil {
		_ = d.db.Close()
		return nil, fmt.Errorf("evidence: cannot reach the database: %s", redactURL(err.Error()))
	}
	return d, nil
}

// redactURL drops anything that looks like a URL's password.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.LastIndex(s[i+3:], "@"); j >= 0 {
			return s[:i+3] + "…" + s[i+3+j:]
		}
	}
	return s
}

// NewDB reads an open database: a SQLite *sql.DB (postgres false), or a
// Postgres one (for a pgxpool.Pool, stdlib.OpenDBFromPool). The caller
// keeps it open while the DB is used and closes it after.
func NewDB(db *sql.DB, postgres bool) *DB { return &DB{db: db, postgres: postgres} }

// Close closes a database OpenDB opened.
func (d *DB) Close() error {
	if d.own {
		return d.db.Close()
	}
	return nil
}

// q rewrites '?' placeholders for Postgres.
func (d *DB) q(query string) string {
	if !d.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// The worker stores times as fixed-width UTC text.
const dbTimeLayout = "2006-01-02T15:04:05.000000Z"

func parseDBTime(s string) time.Time {
	t, err := time.Parse(dbTimeLayout, s)
	if err != nil {
		t, _ = time.Parse(time.RFC3339Nano, s)
	}
	return t
}
