package worker

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// The worker's own tables are reached through this small interface so that
// the same SQL runs on SQLite (database/sql over modernc.org/sqlite) and on
// Postgres (pgx v5). Queries are written with '?' placeholders; the Postgres
// side rewrites them to $1, $2, ... (no query of ours has a '?' elsewhere).

type dialect int

const (
	dialectSQLite dialect = iota + 1
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// querier is what both a pool and a transaction offer.
type querier interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, args ...any) (rowsIter, error)
	queryRow(ctx context.Context, q string, args ...any) rowScanner
}

type rowsIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type rowScanner interface {
	Scan(dest ...any) error
}

// dbTx is one transaction; raw is the driver's own transaction (*sql.Tx or
// pgx.Tx) for River's InsertTx.
type dbTx interface {
	querier
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
	raw() any
}

type database interface {
	querier
	begin(ctx context.Context) (dbTx, error)
	// wrap adopts a caller's transaction (EnqueueTx).
	wrap(tx any) (dbTx, error)
	dialect() dialect
	// withSessionLock runs f holding a database-wide lock: Postgres's
	// advisory lock key, SQLite's lock file (sqlite_start.go).
	withSessionLock(ctx context.Context, key int64, f func() error) error
}

// errNoRows is returned by a rowScanner when the query found nothing, for
// either driver.
func isNoRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows)
}

// ---- database/sql (SQLite)

type sqlDatabase struct{ db *sql.DB }

func (s sqlDatabase) dialect() dialect { return dialectSQLite }

func (s sqlDatabase) exec(ctx context.Context, q string, args ...any) (int64, error) {
	return sqlExec(ctx, s.db, q, args...)
}
func (s sqlDatabase) query(ctx context.Context, q string, args ...any) (rowsIter, error) {
	r, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}
func (s sqlDatabase) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	return s.db.QueryRowContext(ctx, q, args...)
}
func (s sqlDatabase) begin(ctx context.Context) (dbTx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{tx, map[string]chainHead{}}, nil
}
func (s sqlDatabase) wrap(tx any) (dbTx, error) {
	t, ok := tx.(*sql.Tx)
	if !ok || t == nil {
		return nil, errors.New("worker: EnqueueTx on SQLite needs a *sql.Tx of the worker's database")
	}
	return sqlTx{t, map[string]chainHead{}}, nil
}

type sqlExecer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func sqlExec(ctx context.Context, e sqlExecer, q string, args ...any) (int64, error) {
	res, err := e.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// sqlTx is a transaction on SQLite; heads are the chain heads it holds
// (chain.go).
type sqlTx struct {
	tx    *sql.Tx
	heads map[string]chainHead
}

func (t sqlTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	return sqlExec(ctx, t.tx, q, args...)
}
func (t sqlTx) query(ctx context.Context, q string, args ...any) (rowsIter, error) {
	r, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}
func (t sqlTx) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	return t.tx.QueryRowContext(ctx, q, args...)
}
func (t sqlTx) commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) rollback(context.Context) error { return t.tx.Rollback() }
func (t sqlTx) raw() any                       { return t.tx }

type sqlRows struct{ r *sql.Rows }

func (r sqlRows) Next() bool             { return r.r.Next() }
func (r sqlRows) Scan(dest ...any) error { return r.r.Scan(dest...) }
func (r sqlRows) Err() error             { return r.r.Err() }
func (r sqlRows) Close()                 { _ = r.r.Close() }

// ---- pgx (Postgres)

type pgxDatabase struct{ pool *pgxpool.Pool }

func (p pgxDatabase) dialect() dialect { return dialectPostgres }

func (p pgxDatabase) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := p.pool.Exec(ctx, workerdb.Rebind(q), args...)
	return tag.RowsAffected(), err
}
func (p pgxDatabase) query(ctx context.Context, q string, args ...any) (rowsIter, error) {
	r, err := p.pool.Query(ctx, workerdb.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	return pgxRows{r}, nil
}
func (p pgxDatabase) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	return p.pool.QueryRow(ctx, workerdb.Rebind(q), args...)
}
func (p pgxDatabase) begin(ctx context.Context) (dbTx, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return pgxTx{tx, map[string]chainHead{}}, nil
}
func (p pgxDatabase) wrap(tx any) (dbTx, error) {
	t, ok := tx.(pgx.Tx)
	if !ok || t == nil {
		return nil, errors.New("worker: EnqueueTx on Postgres needs a pgx.Tx of the worker's database")
	}
	return pgxTx{t, map[string]chainHead{}}, nil
}

func (p pgxDatabase) withSessionLock(ctx context.Context, key int64, f func() error) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key) }()
	return f()
}

// pgxTx is a transaction on Postgres; heads are the chain heads it holds
// (chain.go).
type pgxTx struct {
	tx    pgx.Tx
	heads map[string]chainHead
}

func (t pgxTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, workerdb.Rebind(q), args...)
	return tag.RowsAffected(), err
}
func (t pgxTx) query(ctx context.Context, q string, args ...any) (rowsIter, error) {
	r, err := t.tx.Query(ctx, workerdb.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	return pgxRows{r}, nil
}
func (t pgxTx) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	return t.tx.QueryRow(ctx, workerdb.Rebind(q), args...)
}
func (t pgxTx) commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t pgxTx) rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }
func (t pgxTx) raw() any                           { return t.tx }

type pgxRows struct{ r pgx.Rows }

func (r pgxRows) Next() bool             { return r.r.Next() }
func (r pgxRows) Scan(dest ...any) error { return r.r.Scan(dest...) }
func (r pgxRows) Err() error             { return r.r.Err() }
func (r pgxRows) Close()                 { r.r.Close() }

// inTx runs f in a transaction, committing on success.
func inTx(ctx context.Context, db database, f func(tx dbTx) error) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.commit(ctx)
}
