package worker

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Service is what a Worker offers whichever its database, for code that
// chooses the database at run time (the CLI). Worker[TTx] implements it;
// EnqueueTx needs the typed Worker.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Run(ctx context.Context, grace time.Duration) error
	Enqueue(ctx context.Context, r Request) (*EnqueueResult, error)
	Status(ctx context.Context) (*Status, error)
	RequestStatus(ctx context.Context, reference string, opts ...StatusOption) (*RequestStatus, error)
	Purge(ctx context.Context, opts ...PurgeOption) (*PurgeResult, error)
	ListRequests(ctx context.Context, opts ListOptions) (*RequestPage, error)
	Cancel(ctx context.Context, reference string) (*CancelResult, error)
	OpenExport(ctx context.Context, reference, project, taskID string) (*ExportFile, error)
	Ready(ctx context.Context) error
	Config() *Config
}

var (
	_ Service = (*Worker[*sql.Tx])(nil)
	_ Service = (*Worker[pgx.Tx])(nil)
)

// Open makes a worker on the database named by url: "sqlite:PATH" (the
// file is created if missing; a relative PATH is taken from the
// configuration file's directory) or "postgres://…" / "postgresql://…";
// empty means cfg.DatabaseURL(). A Postgres pool gets 8 + 2 per project
// connections unless the URL says pool_max_conns. The returned close
// function releases the database after Stop.
func Open(ctx context.Context, cfg *Config, url string, opts ...Option) (Service, func(), error) {
	loc, err := cfg.ResolveDatabase(url)
	if err != nil {
		return nil, nil, err
	}
	switch loc.Driver {
	case workerdb.SQLite:
		db, err := OpenSQLiteFile(loc.Path)
		if err != nil {
			return nil, nil, err
		}
		w, err := NewSQLite(ctx, db, cfg, opts...)
		if err != nil {
			_ = db.Close()
			return nil, nil, err
		}
		return w, func() { _ = db.Close() }, nil
	case workerdb.Postgres:
		url := loc.URL()
		pcfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			// pgx's error may quote the URL, password included.
			return nil, nil, fmt.Errorf("worker: postgres: cannot parse the database URL")
		}
		if !strings.Contains(url, "pool_max_conns") {
			// pgx's default (4 on a 2-core machine) starves River's
			// leader election while every job slot holds a connection.
			pcfg.MaxConns = int32(min(64, 8+2*len(cfg.Projects)))
		}
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, nil, fmt.Errorf("worker: postgres: cannot connect")
		}
		w, err := NewPostgres(ctx, pool, cfg, opts...)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return w, pool.Close, nil
	}
	return nil, nil, fmt.Errorf("worker: %s: unknown driver", loc)
}
