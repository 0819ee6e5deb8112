package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// The worker's own tables, in migrations numbered from 1. A migration is
// never edited once released: add a new one. Each is written once with
// {{id}} (an auto-increment primary key) and {{big}} (a 64-bit integer)
// spelled per database.
var migrations = []string{
	// 1: requests, their per-project items, batches, the creates sent,
	// the tasks followed and the append-only event log.
	`
CREATE TABLE mpgdpr_request (
	reference       TEXT PRIMARY KEY,
	kind            TEXT NOT NULL,
	compliance_type TEXT NOT NULL,
	disclosure_type TEXT NOT NULL DEFAULT '',
	distinct_ids    TEXT NOT NULL,
	projects        TEXT NOT NULL,
	digest          TEXT NOT NULL,
	received_at     TEXT NOT NULL,
	enqueued_at     TEXT NOT NULL
);
CREATE TABLE mpgdpr_item (
	id              {{id}},
	reference       TEXT NOT NULL,
	project         TEXT NOT NULL,
	kind            TEXT NOT NULL,
	compliance_type TEXT NOT NULL,
	disclosure_type TEXT NOT NULL DEFAULT '',
	n_ids           INTEGER NOT NULL,
	state           TEXT NOT NULL,
	batch_id        {{big}},
	resubmits       INTEGER NOT NULL DEFAULT 0,
	queued_at       TEXT NOT NULL,
	updated_at      TEXT NOT NULL,
	detail          TEXT NOT NULL DEFAULT '',
	UNIQUE (reference, project)
);
CREATE INDEX mpgdpr_item_queue ON mpgdpr_item (project, kind, compliance_type, disclosure_type, state, queued_at);
CREATE INDEX mpgdpr_item_batch ON mpgdpr_item (batch_id);
CREATE TABLE mpgdpr_batch (
	id              {{id}},
	project         TEXT NOT NULL,
	kind            TEXT NOT NULL,
	compliance_type TEXT NOT NULL,
	disclosure_type TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL,
	created_at      TEXT NOT NULL,
	updated_at      TEXT NOT NULL
);
CREATE TABLE mpgdpr_create (
	id           {{id}},
	batch_id     {{big}} NOT NULL,
	seq          INTEGER NOT NULL,
	distinct_ids TEXT NOT NULL,
	state        TEXT NOT NULL,
	task_id      TEXT NOT NULL DEFAULT '',
	conflict_ids TEXT NOT NULL DEFAULT '[]',
	conflict_tasks TEXT NOT NULL DEFAULT '[]',
	detail       TEXT NOT NULL DEFAULT '',
	sent_at      TEXT NOT NULL,
	answered_at  TEXT NOT NULL DEFAULT '',
	UNIQUE (batch_id, seq)
);
CREATE TABLE mpgdpr_task (
	project        TEXT NOT NULL,
	task_id        TEXT NOT NULL,
	kind           TEXT NOT NULL,
	origin         TEXT NOT NULL,
	status         TEXT NOT NULL DEFAULT '',
	created_at     TEXT NOT NULL,
	last_polled_at TEXT NOT NULL DEFAULT '',
	polls          INTEGER NOT NULL DEFAULT 0,
	done_at        TEXT NOT NULL DEFAULT '',
	export_path    TEXT NOT NULL DEFAULT '',
	export_size    {{big}} NOT NULL DEFAULT 0,
	export_sha256  TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (project, task_id)
);
CREATE TABLE mpgdpr_item_task (
	item_id {{big}} NOT NULL,
	round   INTEGER NOT NULL,
	project TEXT NOT NULL,
	task_id TEXT NOT NULL,
	origin  TEXT NOT NULL,
	linked_at TEXT NOT NULL,
	PRIMARY KEY (item_id, round, task_id)
);
CREATE INDEX mpgdpr_item_task_task ON mpgdpr_item_task (project, task_id);
CREATE TABLE mpgdpr_event (
	id        {{id}},
	at        TEXT NOT NULL,
	reference TEXT NOT NULL DEFAULT '',
	project   TEXT NOT NULL DEFAULT '',
	item_id   {{big}},
	batch_id  {{big}},
	task_id   TEXT NOT NULL DEFAULT '',
	event     TEXT NOT NULL,
	detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mpgdpr_event_reference ON mpgdpr_event (reference, id);
CREATE INDEX mpgdpr_event_task ON mpgdpr_event (project, task_id);
{{append_only}}
`,
	// 2: the event log's hash chain (chain.go).
	chainMigration,
	// 3: one row per poll sent, for Status's polls of the last minute
	// (mpgdpr_task.last_polled_at counts a task polled 11 times once);
	// notePoll keeps only the last few minutes.
	`
CREATE TABLE mpgdpr_poll (
	project TEXT NOT NULL,
	at      TEXT NOT NULL
);
CREATE INDEX mpgdpr_poll_at ON mpgdpr_poll (project, at);
`,
	// 4: seals of the rows a report reads, and purged IDs (seal.go).
	sealMigration,
	// 5: a batch's events by batch, for purge (purge.go) to find the
	// requests that share a batch's creates.
	`CREATE INDEX mpgdpr_event_batch ON mpgdpr_event (batch_id);`,
	// 6: a request's own state (request_state.go) and completion time, for
	// listing by state with keyset paging; its callback URL and deadline
	// extension (HTTP intake). Requests stored before get theirs here.
	`
ALTER TABLE mpgdpr_request ADD COLUMN state TEXT NOT NULL DEFAULT 'received';
ALTER TABLE mpgdpr_request ADD COLUMN completed_at TEXT NOT NULL DEFAULT '';
ALTER TABLE mpgdpr_request ADD COLUMN callback_url TEXT NOT NULL DEFAULT '';
ALTER TABLE mpgdpr_request ADD COLUMN callback_format TEXT NOT NULL DEFAULT '';
ALTER TABLE mpgdpr_request ADD COLUMN extension_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE mpgdpr_request ADD COLUMN extension_notice_at TEXT NOT NULL DEFAULT '';
UPDATE mpgdpr_request SET state = CASE
	WHEN NOT EXISTS (SELECT 1 FROM mpgdpr_item i WHERE i.reference = mpgdpr_request.reference) THEN 'received'
	WHEN EXISTS (SELECT 1 FROM mpgdpr_item i WHERE i.reference = mpgdpr_request.reference AND i.state NOT IN ('done', 'failed', 'unknown')) THEN 'active'
	WHEN EXISTS (SELECT 1 FROM mpgdpr_item i WHERE i.reference = mpgdpr_request.reference AND i.state = 'unknown') THEN 'unknown'
	WHEN EXISTS (SELECT 1 FROM mpgdpr_item i WHERE i.reference = mpgdpr_request.reference AND i.state = 'failed') THEN 'failed'
	ELSE 'done' END;
UPDATE mpgdpr_request SET completed_at = (SELECT MAX(i.updated_at) FROM mpgdpr_item i WHERE i.reference = mpgdpr_request.reference)
	WHERE state IN ('done', 'failed', 'unknown');
CREATE INDEX mpgdpr_request_state ON mpgdpr_request (state, enqueued_at, reference);
`,
	// 7: callback notices (callback.go): one row per notice due, its
	// delivery state and last attempt; the URL stays in mpgdpr_request.
	`
CREATE TABLE mpgdpr_callback (
	id              {{id}},
	reference       TEXT NOT NULL,
	type            TEXT NOT NULL,
	state           TEXT NOT NULL,
	project         TEXT NOT NULL DEFAULT '',
	item_state      TEXT NOT NULL DEFAULT '',
	format          TEXT NOT NULL,
	delivery_id     TEXT NOT NULL,
	status          TEXT NOT NULL,
	created_at      TEXT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_attempt_at TEXT NOT NULL DEFAULT '',
	last_status     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	delivered_at    TEXT NOT NULL DEFAULT '',
	given_up_at     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mpgdpr_callback_reference ON mpgdpr_callback (reference, id);
CREATE INDEX mpgdpr_callback_status ON mpgdpr_callback (status);
`,
	// 8: requests in order for ListRequests without a state (a dashboard's
	// first page), which migration 6's index, led by the state, cannot serve.
	`CREATE INDEX mpgdpr_request_enqueued ON mpgdpr_request (enqueued_at, reference);`,
}

// appendOnly refuses UPDATE and DELETE on the event log, in the database
// itself, so that no code path (ours or a careless script) rewrites evidence.
var appendOnly = map[dialect]string{
	dialectSQLite: `
CREATE TRIGGER mpgdpr_event_no_update BEFORE UPDATE ON mpgdpr_event BEGIN SELECT RAISE(ABORT, 'mpgdpr_event is append-only'); END;
CREATE TRIGGER mpgdpr_event_no_delete BEFORE DELETE ON mpgdpr_event BEGIN SELECT RAISE(ABORT, 'mpgdpr_event is append-only'); END;
`,
	dialectPostgres: `
CREATE FUNCTION mpgdpr_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'mpgdpr_event is append-only'; END $$;
CREATE TRIGGER mpgdpr_event_no_change BEFORE UPDATE OR DELETE ON mpgdpr_event
	FOR EACH ROW EXECUTE FUNCTION mpgdpr_event_append_only();
`,
}

func migrationSQL(d dialect, m string) string {
	id, big := "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"
	if d == dialectPostgres {
		id, big = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT"
	}
	r := strings.NewReplacer("{{id}}", id, "{{big}}", big, "{{append_only}}", appendOnly[d])
	return r.Replace(m)
}

// advisoryLockKey serialises migrations of concurrent worker starts on
// Postgres ("mpgdpr" in ASCII).
const advisoryLockKey = 0x6d70676470720000

// migrate brings River's tables and ours up to date, idempotently. River's
// migrations run a transaction each (on Postgres one adds an enum value a
// later one uses), then ours in one transaction. The whole run is
// serialised, so that any number of processes may start at once on a new
// database: on Postgres by a session advisory lock, on SQLite by the lock
// file beside the database (sqlite_start.go). Without it, two processes
// each saw a migration missing and one failed applying it again.
func migrate[TTx any](ctx context.Context, db database, driver riverdriver.Driver[TTx]) (applied []string, err error) {
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return nil, fmt.Errorf("worker: river migrator: %w", err)
	}
	run := func() error {
		res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("river migrations: %w", err)
		}
		for _, v := range res.Versions {
			applied = append(applied, fmt.Sprintf("river %d", v.Version))
		}
		return inTx(ctx, db, func(tx dbTx) error { return migrateOwn(ctx, tx, db.dialect(), &applied) })
	}
	if err := db.withSessionLock(ctx, advisoryLockKey, run); err != nil {
		return nil, fmt.Errorf("worker: migrate: %w", err)
	}
	return applied, nil
}

func migrateOwn(ctx context.Context, tx dbTx, d dialect, applied *[]string) error {
	if _, err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS mpgdpr_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := tx.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM mpgdpr_schema`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this worker knows (%d): upgrade the worker", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if err := execScript(ctx, tx, d, migrationSQL(d, migrations[v-1])); err != nil {
			return fmt.Errorf("mpgdpr migration %d: %w", v, err)
		}
		if _, err := tx.exec(ctx, `INSERT INTO mpgdpr_schema (version, applied_at) VALUES (?, ?)`, v, workerdb.FormatTime(time.Now())); err != nil {
			return err
		}
		*applied = append(*applied, fmt.Sprintf("mpgdpr %d", v))
	}
	return nil
}

// execScript runs a script statement by statement (SQLite's driver takes one
// at a time). Statements end with ";" at a line's end; a Postgres function
// body between $$ markers is kept whole.
func execScript(ctx context.Context, tx dbTx, d dialect, script string) error {
	if d == dialectPostgres {
		_, err := tx.exec(ctx, script)
		return err
	}
	var stmt strings.Builder
	for _, line := range strings.Split(script, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		stmt.WriteString(line)
		stmt.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if _, err := tx.exec(ctx, stmt.String()); err != nil {
				return err
			}
			stmt.Reset()
		}
	}
	if strings.TrimSpace(stmt.String()) != "" {
		_, err := tx.exec(ctx, stmt.String())
		return err
	}
	return nil
}
