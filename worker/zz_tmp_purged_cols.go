package worker

// TEMPORARY, never committed: i23-chain's migration adds these columns.
func init() {
	migrations = append(migrations, `
ALTER TABLE mpgdpr_request ADD COLUMN ids_purged_at TEXT;
ALTER TABLE mpgdpr_create ADD COLUMN ids_purged_at TEXT;
`)
}
