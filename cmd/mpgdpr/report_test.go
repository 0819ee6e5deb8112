package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// A journal's report agrees with what the fake was sent.
func TestReportFromJournal(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "rep", 250)
	jp := filepath.Join(dir, "job.jsonl")
	r := runCmd(t, credEnv(), "", append(append([]string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "100", "--journal", jp}, fast(srv)...), waitFast...)...)
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	r = runCmd(t, nil, "", "report", "--journal", jp, "--format", "json", "--ref", "DSR-77", "--project", "web", "--received", "2026-01-31T08:00:00Z", "--now", "2026-02-10T00:00:00Z")
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	var rec evidence.JSONRecord
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	var fakeTasks []string
	for _, ft := range srv.Tasks() {
		fakeTasks = append(fakeTasks, ft.ID)
	}
	var got []string
	for _, tk := range rec.Tasks {
		got = append(got, tk.TaskID)
		if len(tk.Statuses) != 1 || tk.Statuses[0].Status != "SUCCESS" || tk.Origin != "filed" {
			t.Errorf("task %+v", tk)
		}
	}
	slices.Sort(fakeTasks)
	slices.Sort(got)
	if !slices.Equal(got, fakeTasks) || len(got) != 3 {
		t.Errorf("tasks in the report %v, the fake's %v", got, fakeTasks)
	}
	slices.Sort(ids)
	if rec.V != 1 || rec.Reference != "DSR-77" || rec.Project != "web" || rec.Kind != "deletion" || rec.ComplianceType != "GDPR" ||
		rec.IDs != 250 || !slices.Equal(rec.DistinctIDs, ids) || rec.ReceivedAt != "2026-01-31T08:00:00Z" || rec.CompletedAt == nil ||
		rec.Deadline.Due != "2026-02-28" || rec.SourceState != "done" || len(rec.ChainHash) != 64 {
		t.Errorf("record %+v", rec)
	}
	// Completed now, long after the fake's deadline: met late.
	r = runCmd(t, nil, "", "report", "--journal", jp, "--format", "csv", "--received", "2025-01-01")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][slices.Index(evidence.CSVColumns, "deadline_state")] != "met_late" {
		t.Fatalf("csv %v %v", rows, err)
	}
	// Without --received the job's start is the time of receipt.
	r = runCmd(t, nil, "", "report", "--journal", jp, "--format", "json")
	_ = json.Unmarshal([]byte(r.stdout), &rec)
	if rec.Deadline.State != "met" || rec.Reference == "DSR-77" || !strings.HasPrefix(rec.Reference, "job-") {
		t.Errorf("default record: %+v", rec)
	}

	// Hashed IDs: no ID in the report, and hash-id finds a person's hash.
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	out := filepath.Join(dir, "report.html")
	r = runCmd(t, nil, "", "report", "--journal", jp, "--format", "html", "--hash-ids", key, "--out", out)
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	page, _ := os.ReadFile(out)
	if bytes.Contains(page, []byte(ids[0])) {
		t.Error("hashed report names a person")
	}
	r = runCmd(t, nil, "", "report", "hash-id", "--hash-ids", key, ids[0])
	h := strings.Fields(r.stdout)[0]
	if !bytes.Contains(page, []byte(h)) {
		t.Errorf("the report has no %s (hash of %s)", h, ids[0])
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("report mode %v", st.Mode())
	}
	workertest.NoSecretsInFiles(t, dir, sentinels...)

	// verify: intact, then an edited line is named.
	r = runCmd(t, nil, "", "report", "verify", "--journal", jp)
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "ok "+jp) {
		t.Fatalf("intact journal: %v", r)
	}
	// A chain head kept apart catches the last line removed, which the
	// chain alone cannot.
	heads := filepath.Join(dir, "heads.json")
	if r := runCmd(t, nil, "", "report", "head", "--journal", jp, "--out", heads); r.code != exitOK {
		t.Fatalf("head: %v", r)
	}
	b, _ := os.ReadFile(jp)
	cut := b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1]
	os.WriteFile(jp, cut, 0o600)
	if r := runCmd(t, nil, "", "report", "verify", "--journal", jp); r.code != exitOK {
		t.Errorf("without a kept head, a cut tail is not detectable: %v", r)
	}
	if r := runCmd(t, nil, "", "report", "verify", "--journal", jp, "--heads", heads); r.code != exitIncomplete || !strings.Contains(r.stdout, "TAMPERED") {
		t.Errorf("cut tail against the kept head: %v", r)
	}
	os.WriteFile(jp, b, 0o600)
	if r := runCmd(t, nil, "", "report", "verify", "--journal", jp, "--heads", heads); r.code != exitOK {
		t.Errorf("restored journal against the kept head: %v", r)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	n := 0
	for i, l := range lines {
		if bytes.Contains(l, []byte(`"state":"finished"`)) {
			n = i + 1
			lines[i] = bytes.Replace(l, []byte(`"SUCCESS"`), []byte(`"FAILURE"`), 1)
			break
		}
	}
	os.WriteFile(jp, bytes.Join(lines, nil), 0o600)
	r = runCmd(t, nil, "", "report", "verify", "--journal", jp)
	if r.code != exitIncomplete || !strings.Contains(r.stdout, fmt.Sprintf("TAMPERED %s: altered at entry %d", jp, n)) {
		t.Fatalf("edited line %d: %v", n, r)
	}
	// An old journal, without hashes: unverifiable, not tampered.
	old := filepath.Join(dir, "old.jsonl")
	os.WriteFile(old, regexpHash.ReplaceAll(b, nil), 0o600)
	r = runCmd(t, nil, "", "report", "verify", "--journal", old)
	if r.code != exitOK || !strings.Contains(r.stdout, "UNVERIFIABLE") {
		t.Fatalf("old journal: %v", r)
	}
}

func TestReportUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"report", "--journal", "x"},                    // no format
		{"report", "--journal", "x", "--format", "pdf"}, // bad format
		{"report", "--format", "csv"},                   // no source
		{"report", "--journal", "x", "--format", "csv", "--state", "late"},
		{"report", "--journal", "x", "--format", "csv", "--since", "yesterday"},
		{"report", "--journal", "x", "--config", "y", "--format", "csv"},
		{"report", "--database", "sqlite:x", "--ref", "r", "--format", "csv"},
		{"report", "--journal", "x", "--format", "csv", "--hash-ids", "env:MPGDPR_NO_SUCH_VARIABLE"},
	} {
		if r := runCmd(t, nil, "", args...); r.code != exitUsage {
			t.Errorf("%v: %v", args, r)
		}
	}
}

// The worker's database: report, verify, signed heads, tampering caught.
func TestReportFromWorkerDatabase(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "worker.db")
	cfgPath := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase("sqlite:"+dbPath),
		workertest.With("batch_window", `"100ms"`), workertest.With("poll_max", `"20ms"`))
	ctx := context.Background()
	cfg, err := worker.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := worker.OpenSQLiteFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := worker.NewSQLite(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	received := time.Now().Add(-40 * 24 * time.Hour).UTC().Truncate(time.Second)
	for i, id := range []string{"ann", "ben", "cat"} {
		if _, err := w.Enqueue(ctx, worker.Request{Reference: fmt.Sprintf("T-%d", i), Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR,
			DistinctIDs: []string{id}, Projects: []string{"web"}, ReceivedAt: received}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := w.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Projects[0].Items[worker.StateDone] == 3 {
			break
		}
		if time.Now().After(deadline) { // only stops a hung test
			t.Fatalf("not done: %+v", st.Projects)
		}
	}
	_ = w.Stop(ctx)

	r := runCmd(t, nil, "", "report", "--config", cfgPath, "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if r.code != exitOK || err != nil || len(rows) != 4 {
		t.Fatalf("%v %v", r, err)
	}
	col := func(name string) int { return slices.Index(evidence.CSVColumns, name) }
	fakeTasks := map[string][]string{}
	for _, ft := range srv.Tasks() {
		fakeTasks[ft.ID] = ft.DistinctIDs
	}
	for _, row := range rows[1:] {
		var ids []string
		_ = json.Unmarshal([]byte(row[col("distinct_ids")]), &ids)
		covered := fakeTasks[row[col("task_ids")]]
		if len(ids) != 1 || !slices.Contains(covered, ids[0]) || row[col("deadline_state")] != "met_late" || row[col("received_at")] != received.Format(time.RFC3339) {
			t.Errorf("row %v (fake task covers %v)", row, covered)
		}
	}
	workertest.NoSecrets(t, "report", r.stdout, sentinels...)
	if r := runCmd(t, nil, "", "report", "--database", "sqlite:"+dbPath, "--format", "csv", "--state", "open"); strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("--state open: %v", r)
	}

	// The HTML page shows the history's state.
	// With --config it checks the rows with the worker's ID key, as
	// report verify does: none is left unproven.
	if r := runCmd(t, nil, "", "report", "--config", cfgPath, "--format", "html"); !strings.Contains(r.stdout, `<ul id="verification" class="good"><li>ok (requests): 6 entries`) || !strings.Contains(r.stdout, `<li>ok web: `) || strings.Contains(r.stdout, "UNVERIFIABLE") {
		t.Errorf("html: no verification block, or rows left unproven")
	}

	// Signed heads, then a verify against them.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyPath := filepath.Join(dir, "sign.pem")
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pder, _ := x509.MarshalPKIXPublicKey(pub)
	pubPath := filepath.Join(dir, "sign.pub")
	os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o600)
	heads := filepath.Join(dir, "heads.json")
	if r := runCmd(t, nil, "", "report", "head", "--config", cfgPath, "--sign-key", keyPath, "--out", heads); r.code != exitOK {
		t.Fatalf("head: %v", r)
	}
	if r := runCmd(t, nil, "", "report", "verify", "--config", cfgPath, "--heads", heads, "--public-key", pubPath); r.code != exitOK || !strings.Contains(r.stdout, "ok signature") {
		t.Fatalf("verify with heads: %v", r)
	}
	// A heads file edited after signing is refused.
	hb, _ := os.ReadFile(heads)
	forged := filepath.Join(dir, "forged.json")
	os.WriteFile(forged, bytes.Replace(hb, []byte(`"seq": `), []byte(`"seq": 1`), 1), 0o600)
	if r := runCmd(t, nil, "", "report", "verify", "--config", cfgPath, "--heads", forged, "--public-key", pubPath); r.code != exitIncomplete {
		t.Errorf("forged heads: %v", r)
	}

	// A deliberately edited row (as someone able to drop the trigger).
	raw, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// The rows a report reads are checked with the ID key from --config;
	// without it (a bare --database) those naming people are unproven.
	if r := runCmd(t, nil, "", "report", "verify", "--config", cfgPath); r.code != exitOK || !strings.Contains(r.stdout, "ok mpgdpr_request: 3 rows") {
		t.Fatalf("verify with the config's ID key: %v", r)
	}
	if r := runCmd(t, nil, "", "report", "verify", "--database", "sqlite:"+dbPath); r.code != exitIncomplete || !strings.Contains(r.stdout, "UNVERIFIABLE mpgdpr_request: 3 rows: no ID key") {
		t.Errorf("verify without an ID key: %v", r)
	}
	if r := runCmd(t, nil, "", "report", "verify", "--database", "sqlite:"+dbPath, "--hash-ids", filepath.Join(dir, worker.DefaultIDKeyFile)); r.code != exitOK {
		t.Errorf("verify --hash-ids: %v", r)
	}
	// Issue 23: each of these edits changed the report while verify said ok.
	taskID := ""
	if err := raw.QueryRow(`SELECT MIN(task_id) FROM mpgdpr_task`).Scan(&taskID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ table, column, where, value, want string }{
		{"mpgdpr_request", "received_at", "reference = 'T-0'", "2026-01-01T00:00:00.000000Z", `TAMPERED mpgdpr_request reference "T-0"`},
		{"mpgdpr_request", "distinct_ids", "reference = 'T-0'", `["someone-else"]`, `TAMPERED mpgdpr_request reference "T-0"`},
		{"mpgdpr_task", "export_sha256", "task_id = '" + taskID + "'", strings.Repeat("ab", 32), fmt.Sprintf("TAMPERED mpgdpr_task project %q, task %q", "web", taskID)},
	} {
		var was string
		if err := raw.QueryRow(`SELECT ` + c.column + ` FROM ` + c.table + ` WHERE ` + c.where).Scan(&was); err != nil {
			t.Fatal(err)
		}
		set := `UPDATE ` + c.table + ` SET ` + c.column + ` = ? WHERE ` + c.where
		if _, err := raw.Exec(set, c.value); err != nil {
			t.Fatal(err)
		}
		if r := runCmd(t, nil, "", "report", "verify", "--config", cfgPath); r.code != exitIncomplete || !strings.Contains(r.stdout, c.want) {
			t.Errorf("%s.%s edited: %v", c.table, c.column, r)
		}
		if _, err := raw.Exec(set, was); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	if err := raw.QueryRow(`SELECT MIN(id) FROM mpgdpr_event WHERE event = 'done'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER mpgdpr_event_no_update`, fmt.Sprintf(`UPDATE mpgdpr_event SET at = '2026-01-01T00:00:00.000000Z' WHERE id = %d`, id)} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	r = runCmd(t, nil, "", "report", "verify", "--config", cfgPath)
	if r.code != exitIncomplete || !strings.Contains(r.stdout, fmt.Sprintf("TAMPERED web: altered at entry %d", id)) {
		t.Fatalf("edited row %d: %v", id, r)
	}
	if r := runCmd(t, nil, "", "report", "head", "--config", cfgPath); r.code != exitIncomplete {
		t.Errorf("head of a tampered log: %v", r)
	}
	workertest.NoSecretsInFiles(t, dir, sentinels...)
}

// A configuration naming its database by a relative path means the file
// beside the configuration, for the report as for the worker, wherever the
// report is run from: not a worker.db of the current directory (here an
// empty one, which once gave an empty report and exit 0).
func TestReportConfigRelativeDatabase(t *testing.T) {
	srv := newFake(t)
	enqueue := func(dir string, refs ...string) string {
		cfgPath := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase("sqlite:worker.db"))
		enqueueIn(t, cfgPath, "", refs...)
		return cfgPath
	}
	etc, elsewhere := t.TempDir(), t.TempDir()
	cfgPath := enqueue(etc, "R-1", "R-2")
	if _, err := os.Stat(filepath.Join(etc, "worker.db")); err != nil {
		t.Fatalf("the worker did not open the database beside its configuration: %v", err)
	}
	t.Chdir(elsewhere)
	if r := runCmd(t, nil, "", "report", "--config", cfgPath, "--format", "csv"); r.code != exitOK || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("report from another directory: %v", r)
	}
	enqueue(elsewhere) // an empty worker database in the current directory
	r := runCmd(t, nil, "", "report", "--config", cfgPath, "--format", "csv")
	if r.code != exitOK || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "R-2") {
		t.Errorf("report beside another database: %v", r)
	}
	// --database with --config: the same rule.
	if r := runCmd(t, nil, "", "report", "--config", cfgPath, "--database", "sqlite:worker.db", "--format", "csv"); strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("--database sqlite:worker.db --config: %v", r)
	}
	// --database alone: the current directory's (the empty one), which
	// is refused as empty, and named.
	if r := runCmd(t, nil, "", "report", "--database", "sqlite:worker.db", "--format", "csv"); r.code != exitLocal || r.stdout != "" ||
		!strings.Contains(r.stderr, filepath.Join(elsewhere, "worker.db")+" holds no request") {
		t.Errorf("--database sqlite:worker.db: %v", r)
	}
}

// regexpHash matches a journal line's chained hash field.
var regexpHash = regexp.MustCompile(`,"h":"[0-9a-f]{64}"`)

// A 409 in a job: the report links the covering task as a conflict.
func TestReportJournalConflict(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	j1, j2 := filepath.Join(dir, "j1"), filepath.Join(dir, "j2")
	if r := runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--journal", j1, "a", "b"}, fast(srv)...)...); r.code != exitOK {
		t.Fatalf("%v", r)
	}
	first := srv.Tasks()[0].ID
	r := runCmd(t, credEnv(), "", append(append([]string{"delete", "--compliance", "GDPR", "--journal", j2, "b", "c"}, fast(srv)...), waitFast...)...)
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	r = runCmd(t, nil, "", "report", "--journal", j2, "--format", "json")
	var rec evidence.JSONRecord
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		t.Fatalf("%v: %v", err, r)
	}
	origins := map[string]string{}
	for _, tk := range rec.Tasks {
		origins[tk.TaskID] = tk.Origin
	}
	if origins[first] != "conflict" || len(origins) != 2 {
		t.Errorf("tasks %+v: want %s as the conflict and one filed", rec.Tasks, first)
	}
	for id, o := range origins {
		if id != first && o != "filed" {
			t.Errorf("task %s origin %s", id, o)
		}
	}
	if !slices.Equal(rec.DistinctIDs, []string{"b", "c"}) {
		t.Errorf("ids %v", rec.DistinctIDs)
	}
	// Job 1 never waited: its record is filed, not completed, and open.
	r = runCmd(t, nil, "", "report", "--journal", j1, "--format", "json", "--state", "open")
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || rec.CompletedAt != nil || rec.SourceState != "filed" {
		t.Errorf("job 1: %+v %v", rec, err)
	}
}

// A retrieval job's report has each export's size and the SHA-256 of the
// file the job saved.
func TestReportJournalRetrievalExport(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	jp := filepath.Join(dir, "j.jsonl")
	exports := filepath.Join(dir, "exports")
	r := runCmd(t, credEnv(), "", append([]string{"retrieve", "--compliance", "GDPR", "--download", exports, "--journal", jp,
		"--poll-interval", "2ms", "--poll-max", "5ms", "u-1", "u-2"}, fast(srv)...)...)
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	r = runCmd(t, nil, "", "report", "--journal", jp, "--format", "json")
	var rec evidence.JSONRecord
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || len(rec.Tasks) != 1 {
		t.Fatalf("%v: %v", err, r)
	}
	tk := rec.Tasks[0]
	var saved []string
	filepath.WalkDir(exports, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			saved = append(saved, p)
		}
		return nil
	})
	if len(saved) != 1 {
		t.Fatalf("exports %v", saved)
	}
	b, _ := os.ReadFile(saved[0])
	sum := sha256.Sum256(b)
	if rec.Kind != "retrieval" || rec.CompletedAt == nil || tk.ExportBytes != int64(len(b)) || tk.ExportSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("record %+v; file %d bytes sha %x", rec, len(b), sum)
	}
	workertest.NoSecretsInFiles(t, dir, sentinels...)
}
