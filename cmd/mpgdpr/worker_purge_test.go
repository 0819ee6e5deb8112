package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// mpgdpr worker purge on a finished run, on both databases: a dry run
// changes nothing, the purge says what it changed in counts (never an ID),
// a second one changes nothing, and the record still verifies.
func TestWorkerPurgeCommand(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		dir := t.TempDir()
		fakes := map[string]*mpgdprtest.Server{"web": mpgdprtest.NewServer(mpgdprtest.WithAPISecret("secret-web"))}
		defer fakes["web"].Close()
		db := workertest.DatabaseURL(t, d, dir)
		config := workertest.Config(t, dir, fakes, workertest.WithDatabase(db), workertest.With("batch_window", `"50ms"`))
		for _, ref := range []string{"P-1", "P-2"} {
			if r := runCmd(t, nil, "", "request", "delete", "--config", config, "--ref", ref, "--compliance", "GDPR", "--project", "web", "person-"+ref, "other-"+ref); r.code != exitOK {
				t.Fatal(r)
			}
		}
		if w := workerUntil(t, func(status string) bool { return strings.Contains(status, `"done":2`) }, "--config", config, "--status-every", "0"); w.code != exitOK {
			t.Fatal(w)
		}

		check := func(r result, code int, want string) {
			t.Helper()
			if r.code != code || !strings.Contains(r.stdout, want) || strings.Contains(r.stdout+r.stderr, "person-") {
				t.Errorf("want exit %d and %q: %s", code, want, r)
			}
		}
		if d == workertest.SQLite && !rawHolds(t, db, "person-P-1") {
			t.Fatal("the IDs are not in the SQLite file before the purge: the scan after it proves nothing")
		}
		check(runCmd(t, nil, "", "worker", "purge", "--config", config), exitOK, "purged 0 ended requests")
		check(runCmd(t, nil, "", "worker", "purge", "--config", config, "--older-than", "0s", "--dry-run"), exitOK,
			"dry run, nothing changed; would purge 2 ended requests (4 distinct IDs replaced")
		check(runCmd(t, nil, "", "worker", "purge", "--config", config, "--older-than", "0s"), exitOK, "purged 2 ended requests (4 distinct IDs replaced")
		check(runCmd(t, nil, "", "worker", "purge", "--config", config, "--older-than", "0s", "--json"), exitOK, `"requests":0`)
		if d == workertest.SQLite && rawHolds(t, db, "person-P-", "other-P-") {
			// The worker package's purge test scans a pg_dump too.
			t.Error("the SQLite file or its WAL still holds a purged ID")
		}
		check(runCmd(t, nil, "", "worker", "purge", "--config", config, "--older-than", "-1s"), exitUsage, "")
		check(runCmd(t, nil, "", "report", "verify", "--config", config), exitOK, "ok")
		// Purged IDs are keyed hashes already: every report shows them as
		// they are, with --hash-ids too (not hashed twice).
		key := filepath.Join(dir, worker.DefaultIDKeyFile)
		h, err := evidence.LoadIDHasher(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"--format", "csv"}, {"--format", "json"}, {"--format", "json", "--hash-ids", key}, {"--format", "html", "--hash-ids", key}} {
			r := runCmd(t, nil, "", append([]string{"report", "--config", config}, args...)...)
			if r.code != exitOK || strings.Contains(r.stdout, "person-") || !strings.Contains(r.stdout, h.Hash("person-P-1")) {
				t.Errorf("report %v after the purge does not show the keyed hash: %s", args, r)
			}
		}
	})
}

// rawHolds reports whether the SQLite file of db, or its WAL, holds any of
// the texts, byte for byte.
func rawHolds(t *testing.T, db string, texts ...string) bool {
	t.Helper()
	path := strings.TrimPrefix(db, "sqlite:")
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, s := range texts {
			if bytes.Contains(b, []byte(s)) {
				return true
			}
		}
	}
	return false
}

// The purge's summary counts in the singular for one (words.Count).
func TestPurgeSummaryPlurals(t *testing.T) {
	one := purgeSummary(&worker.PurgeResult{Requests: 1, IDs: 1, CreateRows: 1, RiverJobs: 1, Exports: 1, Waiting: 1})
	if want := "purged 1 ended request (1 distinct ID replaced by their keyed hash, 1 create row rewritten), the args of 1 River job cleaned, 1 export deleted; 1 ended request waits for a batch still being filed"; one != want {
		t.Errorf("one of each:\n got %s\nwant %s", one, want)
	}
	two := purgeSummary(&worker.PurgeResult{Requests: 2, IDs: 4, CreateRows: 2, RiverJobs: 2, Exports: 2, Waiting: 2, DryRun: true})
	if want := "dry run, nothing changed; would purge 2 ended requests (4 distinct IDs replaced by their keyed hash, 2 create rows rewritten), the args of 2 River jobs cleaned, 2 exports deleted; 2 ended requests wait for a batch still being filed"; two != want {
		t.Errorf("two of each:\n got %s\nwant %s", two, want)
	}
}
