package worker

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
	RequestStatus(ctx context.Context, reference string) (*RequestStatus, error)
	Config() *Config
}

var (
	_ Service = (*Worker[*sql.Tx])(nil)
	_ Service = (*Worker[pgx.Tx])(nil)
)

// Open makes a worker on the database named by url: "sqlite:PATH" (the
// file is created if missing) or "postgres://…" / "postgresql://…"; empty
// means cfg.DatabaseURL(). A Postgres pool gets 8 + 2 per project
// connections unless the URL says pool_max_conns. The returned close
// function releases the database after Stop.
func Open(ctx context.Context, cfg *Config, url string, opts ...Option) (Service, func(), error) {
	if url == "" {
		url = cfg.DatabaseURL()
	}
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		path := cfg.path(strings.TrimPrefix(url, "sqlite:"))
		if path == "" {
			return nil, nil, fmt.Errorf("worker: database %q: no path", url)
		}
		db, err := OpenSQLiteFile(filepath.Clean(path))
		if err != nil {
			return nil, nil, err
		}
		w, err := NewSQLite(ctx, db, cfg, opts...)
		if err != nil {
			_ = db.Close()
			return nil, nil, err
		}
		return w, func() { _ = db.Close() }, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
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
	return nil, nil, fmt.Errorf("worker: database must be sqlite:PATH or a postgres:// URL")
}
