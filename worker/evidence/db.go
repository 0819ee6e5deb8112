package evidence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
		db, err := sql.Open("sqlite", workerdb.SQLiteDSN(loc.Path, "mode=ro", "_pragma=busy_timeout(10000)"))
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

// Errors of Check: the database is not a worker's, or it holds nothing.
var (
	// ErrNoWorkerSchema: a table the reports read is missing (the database
	// of another application, an empty file, or a worker that never ran
	// its migrations there).
	ErrNoWorkerSchema = errors.New("not a worker's database")
	// ErrEmptyRecord: the worker's tables are there but hold no request
	// and no event.
	ErrEmptyRecord = errors.New("the record is empty: no request and no event")
)

// SchemaError is a database that lacks tables the reports read: another
// application's, or not the worker's at all. It matches ErrNoWorkerSchema.
type SchemaError struct {
	Missing []string // the tables not found
}

// Error names the missing tables.
func (e *SchemaError) Error() string {
	return "evidence: " + ErrNoWorkerSchema.Error() + ": no table " + strings.Join(e.Missing, ", ")
}

// Unwrap gives ErrNoWorkerSchema.
func (e *SchemaError) Unwrap() error { return ErrNoWorkerSchema }

// RecordTables are the worker's tables the reports and Verify read.
var RecordTables = []string{"mpgdpr_request", "mpgdpr_item", "mpgdpr_item_task", "mpgdpr_task", "mpgdpr_event", "mpgdpr_chain"}

// Check is the one test every report and verification of the database
// makes before reading it, so that none passes on the wrong database or an
// empty one: it returns an error wrapping ErrNoWorkerSchema when a table of
// RecordTables is missing, and, unless allowEmpty, one wrapping
// ErrEmptyRecord when the tables hold no request and no event. It reads
// the catalogue and one row at most.
func (d *DB) Check(ctx context.Context, allowEmpty bool) error {
	var missing []string
	for _, t := range RecordTables {
		q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
		if d.postgres {
			// The search path's, as the worker's own queries see them.
			q = `SELECT COUNT(*) FROM (SELECT to_regclass(?::text) AS t) r WHERE r.t IS NOT NULL`
		}
		var n int
		if err := d.db.QueryRowContext(ctx, d.q(q), t).Scan(&n); err != nil {
			return fmt.Errorf("evidence: reading the database's tables: %s", redact.URL(err.Error()))
		}
		if n == 0 {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return &SchemaError{Missing: missing}
	}
	if allowEmpty {
		return nil
	}
	var found bool
	if err := d.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM mpgdpr_request) OR EXISTS (SELECT 1 FROM mpgdpr_event)`).Scan(&found); err != nil {
		return fmt.Errorf("evidence: reading the database: %s", redact.URL(err.Error()))
	}
	if !found {
		return fmt.Errorf("evidence: %w", ErrEmptyRecord)
	}
	return nil
}
