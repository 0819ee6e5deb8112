package budget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a Budget shared by every process using one database: each
// project's state is a row of mpgdpr_budget, read and written under a row
// lock, on the database's clock. Run Migrate first.
type Postgres struct {
	*core
}

// NewPostgres makes a budget kept in pool's database, in the tables
// Migrate makes (found through the connection's search_path).
func NewPostgres(pool *pgxpool.Pool, opts ...Option) (*Postgres, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalid)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Postgres{core: newCore(cfg, &pgStore{pool: pool, waiter: newHolder()})}, nil
}

// Execer runs SQL: *pgxpool.Pool, *pgx.Conn and pgx.Tx are ones.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// migrateLock serialises concurrent Migrate calls (CREATE TABLE IF NOT
// EXISTS alone can collide): an advisory lock key of this package's own.
const migrateLock = 0x6d70_6764_7072_6231 // "mpgdprb1"

// Migrate creates the Postgres budget's tables if they are missing. It is
// idempotent and safe to run from several processes at once. Its
// statements run as one transaction (unless db is already in one).
//
// mpgdpr_budget has one row per project: when its next request may go
// (next_at), the grant in flight (holder, held_until) and the polls'
// tokens, plus counts of grants by kind. mpgdpr_budget_waiter has a row
// per process with creates waiting for a project, which expires if not
// renewed. The SQLite worker needs no tables: it uses the Memory budget.
func Migrate(ctx context.Context, db Execer) error {
	// Without arguments, pgx sends the statements as one simple-protocol
	// query: one implicit transaction.
	_, err := db.Exec(ctx, fmt.Sprintf(`
SELECT pg_advisory_xact_lock(%d);
CREATE TABLE IF NOT EXISTS mpgdpr_budget (
	project     text PRIMARY KEY,
	next_at     timestamptz NOT NULL,
	holder      bigint,
	held_until  timestamptz,
	poll_tokens double precision NOT NULL DEFAULT 0,
	creates     bigint NOT NULL DEFAULT 0,
	polls       bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mpgdpr_budget_waiter (
	project    text NOT NULL,
	waiter     bigint NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (project, waiter)
);`, migrateLock))
	if err != nil {
		return fmt.Errorf("budget: migrate: %w", err)
	}
	return nil
}

type pgStore struct {
	pool   *pgxpool.Pool
	waiter int64 // this process's id in mpgdpr_budget_waiter
}

// waiterTTL is how long a waiting-creates registration lives unrenewed.
// A waiting create tries again at least once an interval, renewing it; a
// process that dies leaves polls restricted for at most this long.
func waiterTTL(p params) time.Duration { return 3*p.gap + 10*time.Second }

func (s *pgStore) attempt(ctx context.Context, project string, kind Kind, p params, holder int64, _ int, last bool) (verdict, error) {
	var v verdict
	err := s.retry(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO mpgdpr_budget (project, next_at) VALUES ($1, clock_timestamp()) ON CONFLICT (project) DO NOTHING`, project)
			if kind == Create {
				b.Queue(`INSERT INTO mpgdpr_budget_waiter (project, waiter, expires_at)
					VALUES ($1, $2, clock_timestamp() + $3::float8 * interval '1 microsecond')
					ON CONFLICT (project, waiter) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
					project, s.waiter, waiterTTL(p).Microseconds())
			}
			// The row lock first, then the clock: now is read after
			// every earlier change of the row was committed.
			b.Queue(`SELECT next_at, coalesce(holder, 0), coalesce(held_until, next_at), poll_tokens FROM mpgdpr_budget WHERE project = $1 FOR UPDATE`, project)
			b.Queue(`SELECT clock_timestamp(), EXISTS (SELECT 1 FROM mpgdpr_budget_waiter WHERE project = $1 AND expires_at > clock_timestamp())`, project)
			br := tx.SendBatch(ctx, b)
			var st state
			var now time.Time
			var waiting bool
			_, err := br.Exec()
			if err == nil && kind == Create {
				_, err = br.Exec()
			}
			if err == nil {
				err = br.QueryRow().Scan(&st.NextAt, &st.Holder, &st.HeldUntil, &st.Tokens)
			}
			if err == nil {
				err = br.QueryRow().Scan(&now, &waiting)
			}
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			before := st
			v = st.take(now, kind, waiting, p, holder)
			b = &pgx.Batch{}
			if st != before {
				var held *time.Time
				if st.Holder != 0 {
					held = &st.HeldUntil
				}
				creates, polls := 0, 0
				if v.granted && kind == Create {
					creates = 1
				} else if v.granted {
					polls = 1
				}
				b.Queue(`UPDATE mpgdpr_budget SET next_at = $2, holder = nullif($3::bigint, 0), held_until = $4, poll_tokens = $5,
					creates = creates + $6, polls = polls + $7 WHERE project = $1`,
					project, ceilMicro(st.NextAt), st.Holder, held, st.Tokens, creates, polls)
			}
			if v.granted && last {
				b.Queue(`DELETE FROM mpgdpr_budget_waiter WHERE project = $1 AND waiter = $2`, project, s.waiter)
			}
			if b.Len() == 0 {
				return nil
			}
			return tx.SendBatch(ctx, b).Close()
		})
	})
	if err != nil && ctx.Err() != nil {
		// The commit may have happened with its answer lost: give the
		// slot back if holder has it, rather than hold it for a lease.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = s.pool.Exec(actx, `UPDATE mpgdpr_budget SET holder = NULL, held_until = NULL,
				next_at = greatest(next_at, clock_timestamp() + $3::float8 * interval '1 microsecond')
			WHERE project = $1 AND holder = $2`, project, holder, ceilDur(p.gap).Microseconds())
	}
	return v, err
}

func (s *pgStore) release(ctx context.Context, project string, holder int64, ago time.Duration, p params) error {
	// One statement: its clock is read after the answer arrived, less
	// how long ago that was by this process's monotonic clock. The same
	// rule as state.release.
	return s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `UPDATE mpgdpr_budget SET
				next_at = greatest(next_at, clock_timestamp() + ($3::float8 - $4::float8) * interval '1 microsecond'),
				held_until = CASE WHEN holder = $2 THEN NULL ELSE held_until END,
				holder = CASE WHEN holder = $2 THEN NULL ELSE holder END
			WHERE project = $1`,
			project, holder, ceilDur(p.gap).Microseconds(), ago.Microseconds())
		return err
	})
}

func (s *pgStore) unregister(ctx context.Context, project string) {
	_, _ = s.pool.Exec(ctx, `DELETE FROM mpgdpr_budget_waiter WHERE project = $1 AND waiter = $2`, project, s.waiter)
}

func (s *pgStore) changed(string) <-chan struct{} { return nil }

// retry runs f until it succeeds, ctx ends, or it fails in a way a retry
// cannot mend (an SQL error other than a serialisation failure, deadlock
// or shutdown). A database that is away for a while makes Take wait.
func (s *pgStore) retry(ctx context.Context, f func() error) error {
	delay := 50 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			return fmt.Errorf("budget: %w", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("budget: %w (last error: %v)", ctx.Err(), err)
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01": // serialisation failure, deadlock
			return true
		case len(pe.Code) == 5 && (pe.Code[:2] == "08" || pe.Code[:2] == "57" || pe.Code[:2] == "53"): // connection, shutdown, resources
			return true
		}
		return false
	}
	// No answer from the server: connection trouble.
	var ce *pgconn.ConnectError
	var ne net.Error
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// ceilMicro rounds t up to Postgres's microsecond: rounding down would
// move the next slot earlier.
func ceilMicro(t time.Time) time.Time {
	if r := t.Truncate(time.Microsecond); !r.Equal(t) {
		return r.Add(time.Microsecond)
	}
	return t
}

func ceilDur(d time.Duration) time.Duration {
	if r := d.Truncate(time.Microsecond); r != d {
		return r + time.Microsecond
	}
	return d
}
