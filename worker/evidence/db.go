package evidence

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib" // registers "pgx" for database/sql
	_ "modernc.org/sqlite"           // the pure-Go SQLite, registered as "sqlite"

	"github.com/privacykit/mpgdpr/internal/redact"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// DB is the worker's database, read (never written) for evidence.
type DB struct {
	db       *sql.DB
	postgres bool
	own      bool

	schemaMu sync.Mutex
	schema   int64 // the worker's schema version, once read (schemaVersion)
}

// OpenDB opens the worker's database by URL, as the worker's configuration
// names it: "sqlite:PATH" (opened read-only; a relative PATH is taken from
// the current directory: resolve a configuration's URL with
// workerdb.Resolve first) or a postgres:// URL. Close it when done.
func OpenDB(ctx context.Context, url string) (*DB, error) {
	loc, err := workerdb.Resolve(url, "")
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	var d *DB
	switch loc.Driver {
	case workerdb.SQLite:
		// Read-only: a missing file is an error, not a new empty database.
		db, err := sql.Open("sqlite", "file:"+loc.Path+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, fmt.Errorf("evidence: open %s: %w", loc.Path, err)
		}
		d = &DB{db: db, own: true}
	case workerdb.Postgres:
		pool, err := pgxpool.New(ctx, loc.URL())
		if err != nil {
			// pgx's error can quote the URL, password included: do not wrap it.
			return nil, fmt.Errorf("evidence: the postgres URL cannot be used")
		}
		d = &DB{db: stdlib.OpenDBFromPool(pool), postgres: true, own: true}
	}
	if err := d.db.PingContext(ctx); err != nil {
		_ = d.db.Close()
		return nil, fmt.Errorf("evidence: cannot reach the database %s: %s", loc, redact.URL(err.Error()))
	}
	return d, nil
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
	return workerdb.Rebind(query)
}
