package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
)

func TestHelp(t *testing.T) {
	r := runCmd(t, nil, "", "help")
	if r.code != 0 {
		t.Fatalf("help: %v", r)
	}
	for _, want := range []string{"delete", "retrieve", "status", "wait", "cancel", "download", "demo",
		envToken, envProjectToken, envAPISecret, envRegion, "visible to other users", "Exit status", "130"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	// Every "go run" the help suggests works where it says: from the
	// directory it cds to (else the repository root), the package must be
	// in the module of that directory (the CLI is a module of its own).
	for _, line := range strings.Split(r.stdout, "\n") {
		_, cmd, ok := strings.Cut(line, "go run ")
		if !ok {
			continue
		}
		wd := "../.." // the repository root
		if before, _, _ := strings.Cut(line, "go run "); strings.Contains(before, "cd ") {
			_, dir, _ := strings.Cut(before, "cd ")
			dir, _, _ = strings.Cut(dir, " ")
			wd = filepath.Join(wd, dir)
		}
		pkg, _, _ := strings.Cut(cmd, " ")
		if got, want := moduleRoot(t, filepath.Join(wd, pkg)), moduleRoot(t, wd); got != want {
			t.Errorf("help says %q: run from %s, the package is in the module at %s, not %s", strings.TrimSpace(line), wd, got, want)
		}
	}
	if !strings.Contains(r.stdout, "make demo") {
		t.Errorf("help does not name make demo: %v", r)
	}
	r = runCmd(t, nil, "", "delete", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--chunk-size") || !strings.Contains(r.stdout, "Journal") || !strings.Contains(r.stdout, "409") {
		t.Errorf("delete --help: %v", r)
	}
	r = runCmd(t, nil, "", "help", "retrieve")
	if r.code != 0 || !strings.Contains(r.stdout, "--resubmit-unknown") || !strings.Contains(r.stdout, "--disclosure") {
		t.Errorf("help retrieve: %v", r)
	}
	for _, args := range [][]string{{}, {"nope"}, {"help", "nope"}} {
		if r := runCmd(t, nil, "", args...); r.code != exitUsage {
			t.Errorf("%q: %v, want exit 2", args, r)
		}
	}
}

// Every bad input is refused with exit 2 and a message saying what is
// wrong (and where), before anything is sent.
func TestBadInput(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	blanks := strings.Repeat("a\n\n", 12)
	cases := []struct {
		name  string
		env   []string
		stdin string
		args  []string
		want  string
	}{
		{"missing token", []string{envProjectToken + "=x"}, "", []string{"delete", "--compliance", "GDPR", "a"}, "missing the GDPR OAuth token: set MIXPANEL_GDPR_TOKEN"},
		{"missing project token", []string{envToken + "=" + sentinelOAuth}, "", []string{"delete", "--compliance", "GDPR", "a"}, "missing the project token"},
		{"unknown region", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--region", "mars", "a"}, `unknown region "mars"`},
		{"unknown region from env", credEnv(envRegion + "=moon"), "", []string{"status", "deletion", "t1"}, `unknown region "moon"`},
		{"missing compliance", credEnv(), "", []string{"delete", "a"}, "--compliance is required"},
		{"bad compliance", credEnv(), "", []string{"delete", "--compliance", "HIPAA", "a"}, `--compliance "HIPAA"`},
		{"GDPR with disclosure", credEnv(), "", []string{"retrieve", "--compliance", "GDPR", "--disclosure", "Data", "a"}, "--disclosure is for CCPA retrievals only"},
		{"bad disclosure", credEnv(), "", []string{"retrieve", "--compliance", "CCPA", "--disclosure", "Everything", "a"}, `--disclosure "Everything"`},
		{"no IDs", credEnv(), "", []string{"delete", "--compliance", "GDPR"}, "no IDs: give them as arguments"},
		{"empty file", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("empty.txt", "")}, "no IDs (the input is empty)"},
		{"empty stdin", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", "-"}, "stdin: no IDs"},
		{"unreadable file", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", filepath.Join(dir, "missing.txt")}, "cannot read the ID file"},
		{"directory", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", dir}, "is a directory"},
		{"blank line", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("blank.txt", "a\nb\n\nc\n")}, "line 3: blank"},
		{"many blank lines", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("blanks.txt", blanks)}, "and 2 more"},
		{"whitespace", credEnv(), "a\n b\n", []string{"delete", "--compliance", "GDPR", "--file", "-"}, "line 2: leading or trailing whitespace"},
		{"tab", credEnv(), "a\tx\n", []string{"delete", "--compliance", "GDPR", "--file", "-"}, "line 1: contains a tab"},
		{"invisible character", credEnv(), "a\nb\u200b\n", []string{"delete", "--compliance", "GDPR", "--file", "-"}, "line 2: contains U+200B ZERO WIDTH SPACE"},
		{"BOM refused", credEnv(), "\ufeffa\n", []string{"retrieve", "--compliance", "GDPR", "--file", "-", "--strip-bom=false"}, "line 1: starts with U+FEFF"},
		{"blank argument", credEnv(), "", []string{"delete", "--compliance", "GDPR", "a", " "}, "argument 2: blank"},
		{"malformed CSV", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("bad.csv", "id,name\nu1,\"Ann\nu2,Bob\n"), "--csv-column", "id"}, "malformed CSV at line"},
		{"CSV field count", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("count.csv", "id,name\nu1,Ann\nu2\n"), "--csv-column", "id"}, "malformed CSV at line 3"},
		{"missing CSV column", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("col.csv", "user,name\nu1,Ann\n"), "--csv-column", "distinct_id"}, `no column "distinct_id" in the header row (columns: "user", "name")`},
		{"blank CSV cell", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("cell.csv", "id,name\nu1,Ann\n,Bob\n"), "--csv-column", "id"}, `line 3, column "id": blank`},
		{"CSV header only", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("head.csv", "id,name\n"), "--csv-column", "id"}, "only a header row"},
		{"csv column without file", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--csv-column", "id", "a"}, "--csv-column needs --file"},
		{"args and file", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--file", file("ok.txt", "a\n"), "b"}, "not both"},
		{"chunk size", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--chunk-size", "2000", "a"}, "want 1 to 1999"},
		{"extract without download", credEnv(), "", []string{"retrieve", "--compliance", "GDPR", "--extract", "a"}, "--extract needs --download"},
		{"unknown flag", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--frobnicate", "a"}, "unknown flag: --frobnicate"},
		{"rate", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--rate", "0", "a"}, "--rate"},
		{"progress", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--progress", "sometimes", "a"}, "--progress"},
		{"base URL scheme", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--base-url", "ftp://example.com", "a"}, "--base-url"},
		{"plain http off loopback", credEnv(), "", []string{"delete", "--compliance", "GDPR", "--base-url", "http://example.com/api/app", "a"}, "https"},
		{"status without kind", credEnv(), "", []string{"status", "t1"}, "want retrieval|deletion"},
		{"status bad kind", credEnv(), "", []string{"status", "exports", "t1"}, "retrieval or deletion"},
		{"cancel nothing", credEnv(), "", []string{"cancel"}, "at least one deletion task id"},
		{"download nothing", credEnv(), "", []string{"download"}, "at least one retrieval task id"},
		{"demo argument", nil, "", []string{"demo", "now"}, "no arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := slices.Clone(c.args)
			if args[0] != "demo" {
				if !slices.Contains(args, "--base-url") {
					args = append(args, "--base-url", srv.URL())
				}
				if args[0] == "delete" || args[0] == "retrieve" {
					args = append(args, "--journal", filepath.Join(dir, c.name+".jsonl"))
				}
			}
			r := runCmd(t, c.env, c.stdin, args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want 2\n%v", r.code, r)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr lacks %q\n%v", c.want, r)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
		})
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the fake received %d requests; bad input must send nothing", n)
	}
	// Messages name lines, never IDs: they are personal data.
	r := runCmd(t, credEnv(), "alice@example.com\n bob@example.com\n", "delete", "--compliance", "GDPR", "--file", "-", "--base-url", srv.URL())
	if r.code != exitUsage || strings.Contains(r.stderr, "bob") {
		t.Errorf("an ID appears in the error: %v", r)
	}
	r = runCmd(t, credEnv(), "alice@example.com\ncarol\u200b@example.com\n", "delete", "--compliance", "GDPR", "--file", "-", "--base-url", srv.URL())
	if r.code != exitUsage || strings.Contains(r.stderr, "carol") || !strings.Contains(r.stderr, "U+200B") {
		t.Errorf("an ID appears in the error: %v", r)
	}
}

func TestDeleteWaitJSON(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "del", 5000)
	journalPath := filepath.Join(dir, "job.jsonl")
	args := append([]string{"delete", "--compliance", "gdpr", "--file", path, "--chunk-size", "1000", "--journal", journalPath, "--json"}, fast(srv)...)
	r := runCmd(t, credEnv(), "", append(args, waitFast...)...)
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	out := parseJSON(t, r.stdout)
	if len(out.tasks) != 5 || out.summary == nil {
		t.Fatalf("want 5 task lines and a summary: %v", r)
	}
	for i, tl := range out.tasks {
		if tl.Kind != "deletion" || tl.Status != "SUCCESS" || tl.IDs != 1000 || tl.Request != i+1 || tl.TaskID == "" {
			t.Errorf("task line %+v", tl)
		}
	}
	s := out.summary
	if s.IDs != 5000 || s.Filed != 5000 || s.Unknown+s.Unsent+s.Covered+s.Refused != 0 || s.Tasks != 5 ||
		s.Statuses["SUCCESS"] != 5 || s.Exit != 0 || s.Compliance != "GDPR" || s.Journal != journalPath {
		t.Errorf("summary %+v", s)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, ids)
	recs := journalRecords(t, journalPath)
	if countState(recs, "sending") != 5 || countState(recs, "accepted") != 5 || countState(recs, "finished") != 5 {
		t.Errorf("journal: %d sending, %d accepted, %d finished", countState(recs, "sending"), countState(recs, "accepted"), countState(recs, "finished"))
	}

	// The same command again: the journal says all is done; nothing is sent.
	before := len(srv.Requests())
	r = runCmd(t, credEnv(), "", append(args, waitFast...)...)
	if r.code != exitOK || len(srv.Requests()) != before {
		t.Fatalf("re-run sent %d requests: %v", len(srv.Requests())-before, r)
	}
	if again := parseJSON(t, r.stdout); len(again.tasks) != 5 || again.summary.Filed != 5000 {
		t.Errorf("re-run output: %v", r)
	}
	if !strings.Contains(r.stderr, "resuming: 5000 of 5000 IDs filed in 5 tasks") {
		t.Errorf("re-run stderr: %q", r.stderr)
	}
}

func TestRetrieveCSVDownloadExtract(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	// What a spreadsheet writes: a byte order mark, CRLF, quoted cells,
	// a repeated ID.
	csvText := "\ufeffname,distinct_id,email\r\n\"Doe, Ann\",u-1,a@example.com\r\nBob,\"u-2\",b@example.com\r\nAnn again,u-1,a@example.com\r\nCy,u-3,c@example.com\r\n"
	csvPath := filepath.Join(dir, "people.csv")
	if err := os.WriteFile(csvPath, []byte(csvText), 0o600); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	args := append([]string{"retrieve", "--compliance", "CCPA", "--disclosure", "categories", "--file", csvPath, "--csv-column", "distinct_id",
		"--chunk-size", "2", "--download", exports, "--extract", "--journal", filepath.Join(dir, "j.jsonl"), "--poll-interval", "2ms", "--poll-max", "5ms"}, fast(srv)...)
	r := runCmd(t, credEnv(), "", args...)
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	if !strings.Contains(r.stderr, "dropped 1 repeated ID in") {
		t.Errorf("no note about the repeated ID: %q", r.stderr)
	}
	for _, want := range []string{"REQUEST", "EXPORT", "SUCCESS", "(4 files)", "(2 files)", "retrieve CCPA: 3 IDs: 3 filed in 2 tasks; tasks: 2 SUCCESS"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q\n%v", want, r)
		}
	}
	filedOnce(t, srv, mpgdprtest.Retrieval, []string{"u-1", "u-2", "u-3"})
	for _, task := range srv.Tasks() {
		if task.DisclosureType != "Categories" || task.ComplianceType != "CCPA" {
			t.Errorf("task %s: %s %s", task.ID, task.ComplianceType, task.DisclosureType)
		}
		zip := filepath.Join(exports, task.ID+".zip")
		fi, err := os.Stat(zip)
		if err != nil {
			t.Fatalf("export of %s: %v", task.ID, err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", zip, fi.Mode().Perm())
		}
		for name, want := range mpgdprtest.ExportFiles(task.DistinctIDs...) {
			got, err := os.ReadFile(filepath.Join(exports, task.ID, filepath.FromSlash(name)))
			if err != nil || string(got) != string(want) {
				t.Errorf("extracted %s/%s: %v", task.ID, name, err)
			}
		}
	}
	noSecretsInFiles(t, dir)
}

// status, cancel, wait and download on single tasks, with their exit codes.
func TestSingleTaskCommands(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	env := credEnv()
	f := fast(srv)
	file := func(kind string, ids ...string) string {
		t.Helper()
		r := runCmd(t, env, "", append(append([]string{kind, "--compliance", "GDPR", "--json", "--journal", filepath.Join(dir, strings.Join(ids, "+"))}, ids...), f...)...)
		out := parseJSON(t, r.stdout)
		if r.code != 0 || len(out.tasks) != 1 || out.tasks[0].Status != "" {
			t.Fatalf("%s %v: %v", kind, ids, r)
		}
		return out.tasks[0].TaskID
	}

	d1 := file("delete", "a", "b")
	r := runCmd(t, env, "", append([]string{"status", "deletion", d1, "--json"}, f...)...)
	if out := parseJSON(t, r.stdout); r.code != 0 || len(out.tasks) != 1 || out.tasks[0].Status != "PENDING" || out.tasks[0].IDs != 2 {
		t.Fatalf("status: %v", r)
	}
	// (The fake moves a task a step at each check, and cancel checks
	// first: a fresh task is still cancellable.)
	dc := file("delete", "to-cancel")
	r = runCmd(t, env, "", append([]string{"cancel", dc}, f...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "cancelled") || !strings.Contains(r.stdout, "REVOKED") {
		t.Fatalf("cancel: %v", r)
	}
	// A second cancel says the task already was, and sends no cancel.
	cancels := func() (n int) {
		for _, q := range srv.Requests() {
			if q.Op == mpgdprtest.OpCancelDeletion {
				n++
			}
		}
		return n
	}
	before := cancels()
	r = runCmd(t, env, "", append([]string{"cancel", dc}, f...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "already cancelled") || !strings.Contains(r.stdout, "REVOKED") || cancels() != before {
		t.Fatalf("second cancel: %v (%d cancels sent)", r, cancels()-before)
	}
	r = runCmd(t, env, "", append([]string{"cancel", "--json", dc}, f...)...)
	if out := parseJSON(t, r.stdout); r.code != 0 || len(out.other) != 1 || out.other[0].Result != "already cancelled" || !*out.other[0].Cancelled {
		t.Fatalf("second cancel --json: %v", r)
	}
	d2 := file("delete", "c")
	r = runCmd(t, env, "", append([]string{"wait", "deletion", d2}, append(f, "--poll-interval", "2ms", "--poll-max", "5ms")...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "SUCCESS") {
		t.Fatalf("wait: %v", r)
	}
	// Too late to cancel: 405, exit 4. An unknown task: 404, exit 3.
	r = runCmd(t, env, "", append([]string{"cancel", "--json", d2, d1 + "x"}, f...)...)
	out := parseJSON(t, r.stdout)
	if r.code != exitAPI || len(out.other) != 2 || *out.other[0].Cancelled || out.other[0].Status != "SUCCESS" || out.other[1].Type != "error" {
		t.Fatalf("cancel too late: %v", r)
	}
	r = runCmd(t, env, "", append([]string{"cancel", d2}, f...)...)
	if r.code != exitIncomplete || !strings.Contains(r.stdout, "not cancellable") {
		t.Fatalf("cancel a finished task: %v", r)
	}
	r = runCmd(t, env, "", append([]string{"status", "deletion", "no-such-task"}, f...)...)
	if r.code != exitAPI || !strings.Contains(r.stderr, "404") {
		t.Fatalf("status of an unknown task: %v", r)
	}

	rt := file("retrieve", "u1")
	r = runCmd(t, env, "", append([]string{"download", rt, "--dir", dir}, f...)...)
	if r.code != exitIncomplete || !strings.Contains(r.stderr, "not ready: the task is") {
		t.Fatalf("download before the end: %v", r)
	}
	r = runCmd(t, env, "", append([]string{"download", "--json", "--wait", "--poll-interval", "2ms", "--poll-max", "5ms", "--dir", filepath.Join(dir, "x"), rt}, f...)...)
	out = parseJSON(t, r.stdout)
	if r.code != 0 || len(out.other) != 1 || out.other[0].ExportFiles != 2 || out.other[0].ExportBytes == 0 {
		t.Fatalf("download --wait: %v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "x", rt+".zip")); err != nil {
		t.Error(err)
	}
	r = runCmd(t, env, "", append([]string{"status", "retrieval", rt}, f...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "ready (mpgdpr download)") || strings.Contains(r.stdout, "http") {
		t.Fatalf("status of a finished retrieval (the link must not show): %v", r)
	}
	// A wrong API secret: the export is saved but does not verify.
	r = runCmd(t, credEnv(envAPISecret+"=wrong-secret-123"), "", append([]string{"download", "--dir", filepath.Join(dir, "y"), rt}, f...)...)
	if r.code != exitIncomplete || !strings.Contains(r.stderr, "does not decrypt with the API secret") {
		t.Fatalf("wrong secret: %v", r)
	}
	// wait on a task that fails: exit 4.
	if err := srv.SetStatus(d2, "FAILURE"); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, env, "", append([]string{"wait", "deletion", d2, "--poll-interval", "2ms"}, f...)...)
	if r.code != exitIncomplete || !strings.Contains(r.stdout, "FAILURE") {
		t.Fatalf("wait on a failed task: %v", r)
	}
}

// A refused request (here 401) is an API error, exit 3; it is journaled as
// unsent, so the same command with the right token files it.
func TestAPIErrorThenResume(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "u", 30)
	args := append([]string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "10", "--journal", filepath.Join(dir, "j.jsonl"), "--json"}, fast(srv)...)
	r := runCmd(t, []string{envToken + "=wrong-token-0000", envProjectToken + "=" + sentinelProject}, "", args...)
	if r.code != exitAPI || !strings.Contains(r.stderr, "401") {
		t.Fatalf("wrong token: %v", r)
	}
	if s := parseJSON(t, r.stdout).summary; s == nil || s.Unsent != 30 || s.Exit != exitAPI {
		t.Fatalf("summary: %v", r)
	}
	if recs := journalRecords(t, filepath.Join(dir, "j.jsonl")); countState(recs, "unsent") != 1 {
		t.Errorf("journal: want one unsent request, got %v", recs)
	}
	r = runCmd(t, credEnv(), "", args...)
	if r.code != 0 {
		t.Fatalf("resume: %v", r)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, ids)
}

// A task that ends in FAILURE makes the job exit 4.
func TestFailedTaskExit4(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	args := append([]string{"delete", "--compliance", "GDPR", "--chunk-size", "1", "--journal", filepath.Join(dir, "j.jsonl"), "--json", "a", "b", "c"}, fast(srv)...)
	if r := runCmd(t, credEnv(), "", args...); r.code != 0 {
		t.Fatalf("%v", r)
	}
	tasks := srv.Tasks()
	if err := srv.SetStatus(tasks[1].ID, "FAILURE"); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, credEnv(), "", append(args, waitFast...)...)
	s := parseJSON(t, r.stdout).summary
	if r.code != exitIncomplete || s.Statuses["FAILURE"] != 1 || s.Statuses["SUCCESS"] != 2 || s.Exit != exitIncomplete {
		t.Fatalf("%v", r)
	}
}

// A deletion whose outcome is unknown (the connection dropped after
// Mixpanel filed it) is filed again at once: the 409 names the task that
// covers its IDs, and that task is followed. Every ID is filed once.
func TestDeletionUnknownOutcomeResolvedBy409(t *testing.T) {
	srv := newFake(t)
	var n atomic.Int32
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Reset: mpgdprtest.ResetAfterHandling,
		Match: func(*http.Request) bool { return n.Add(1) == 2 }})
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "u", 50)
	jp := filepath.Join(dir, "j.jsonl")
	r := runCmd(t, credEnv(), "", append(append([]string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "10", "--journal", jp, "--json"}, fast(srv)...), waitFast...)...)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	if !strings.Contains(r.stderr, "outcome is unknown") || !strings.Contains(r.stderr, "409") {
		t.Errorf("stderr: %q", r.stderr)
	}
	s := parseJSON(t, r.stdout).summary
	if s.Filed != 40 || s.Covered != 10 || s.Tasks != 5 || s.Statuses["SUCCESS"] != 5 {
		t.Errorf("summary %+v", s)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, ids)
	recs := journalRecords(t, jp)
	if countState(recs, "unknown") != 1 || countState(recs, "conflict") != 1 {
		t.Errorf("journal: %d unknown, %d conflict", countState(recs, "unknown"), countState(recs, "conflict"))
	}
	if srv.FaultsLeft() != 0 {
		t.Error("the fault was not used")
	}
}

// A retrieval whose outcome is unknown cannot be checked: its IDs are
// reported (exit 4) and not filed again, unless --resubmit-unknown.
func TestRetrievalUnknownOutcome(t *testing.T) {
	srv := newFake(t)
	var n atomic.Int32
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Reset: mpgdprtest.ResetAfterHandling,
		Match: func(*http.Request) bool { return n.Add(1) == 2 }})
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "u", 30)
	args := append([]string{"retrieve", "--compliance", "GDPR", "--file", path, "--chunk-size", "10", "--journal", filepath.Join(dir, "j.jsonl")}, fast(srv)...)
	r := runCmd(t, credEnv(), "", append(args, "--json")...)
	s := parseJSON(t, r.stdout).summary
	if r.code != exitIncomplete || s.Unknown != 10 || !slices.Equal(s.UnknownRequests, []int{2}) || s.Filed != 20 {
		t.Fatalf("%v", r)
	}
	// Mixpanel did file it: the fake holds three tasks, every ID once.
	filedOnce(t, srv, mpgdprtest.Retrieval, ids)
	r = runCmd(t, credEnv(), "", args...)
	if r.code != exitIncomplete || len(srv.Tasks()) != 3 || !strings.Contains(r.stdout, "outcome unknown") || !strings.Contains(r.stdout, "--resubmit-unknown") {
		t.Fatalf("re-run without --resubmit-unknown: %v", r)
	}
	r = runCmd(t, credEnv(), "", append(args, "--resubmit-unknown")...)
	if r.code != 0 || len(srv.Tasks()) != 4 {
		t.Fatalf("--resubmit-unknown: %v", r)
	}
}

// Ctrl-C during a job: exit 130, the journal is consistent, and the same
// command finishes the job.
func TestInterruptThenResume(t *testing.T) {
	srv := newFake(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "u", 40)
	args := append(append([]string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "10", "--journal", filepath.Join(dir, "j.jsonl"), "--json"}, fast(srv)...), waitFast...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result)
	go func() { done <- runCtx(ctx, t, credEnv(), "", args...) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(srv.Tasks()) < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // into the wait
	cancel()
	r := <-done
	if r.code != exitInterrupted || !strings.Contains(r.stderr, "interrupted") {
		t.Fatalf("%v", r)
	}
	for range 3 {
		srv.AdvanceAll()
	}
	r = runCmd(t, credEnv(), "", args...)
	if r.code != 0 || parseJSON(t, r.stdout).summary.Statuses["SUCCESS"] != 4 {
		t.Fatalf("resume: %v", r)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, ids)
}

func TestJournalOfAnotherJob(t *testing.T) {
	srv := newFake(t)
	jp := filepath.Join(t.TempDir(), "j.jsonl")
	if r := runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--journal", jp, "a", "b"}, fast(srv)...)...); r.code != 0 {
		t.Fatal(r)
	}
	r := runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--journal", jp, "a", "c"}, fast(srv)...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "belongs to another job") || !strings.Contains(r.stderr, "ID list differs") {
		t.Fatalf("%v", r)
	}
	r = runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "CCPA", "--journal", jp, "b", "a"}, fast(srv)...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "compliance type") {
		t.Fatalf("%v", r)
	}
	// A journal that cannot be written or read is a local failure, exit 1.
	r = runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--journal", filepath.Join(jp, "nodir", "j"), "a"}, fast(srv)...)...)
	if r.code != exitLocal {
		t.Fatalf("unwritable journal: %v", r)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("not a journal\n{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--journal", bad, "a"}, fast(srv)...)...)
	if r.code != exitLocal || !strings.Contains(r.stderr, "corrupt") {
		t.Fatalf("corrupt journal: %v", r)
	}
	// The same people in another order is the same job.
	r = runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--journal", jp, "b", "a"}, fast(srv)...)...)
	if r.code != 0 || len(srv.Tasks()) != 1 {
		t.Fatalf("%v", r)
	}
}

// Without --journal, the journal goes in the current directory under a
// name that follows the job, so re-running the same command resumes it.
func TestDefaultJournal(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	t.Chdir(dir)
	args := append([]string{"delete", "--compliance", "GDPR", "a", "b"}, fast(srv)...)
	r := runCmd(t, credEnv(), "", args...)
	if r.code != 0 || !strings.Contains(r.stderr, "journal: mpgdpr-delete-") {
		t.Fatalf("%v", r)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "mpgdpr-delete-*.journal.jsonl"))
	if len(matches) != 1 {
		t.Fatalf("journals: %v", matches)
	}
	if r := runCmd(t, credEnv(), "", args...); r.code != 0 || len(srv.Tasks()) != 1 || !strings.Contains(r.stderr, "resuming") {
		t.Fatalf("re-run: %v", r)
	}
	if r := runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "c"}, fast(srv)...)...); r.code != 0 || len(srv.Tasks()) != 2 {
		t.Fatalf("another job: %v", r)
	}
	noSecretsInFiles(t, dir)
}

// Credentials given as flags work, draw a warning, and are never printed,
// even when the server echoes them back.
func TestTokensNeverPrinted(t *testing.T) {
	srv := newFake(t)
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckDeletion, Status: 400,
		Body: fmt.Sprintf(`{"status":"error","error":"bad request for token %s with bearer %s"}`, sentinelProject, sentinelOAuth)})
	args := append([]string{"status", "deletion", "t1", "--token", sentinelOAuth, "--project-token", sentinelProject, "--api-secret", sentinelSecret}, fast(srv)...)
	r := runCmd(t, nil, "", args...)
	if r.code != exitAPI || !strings.Contains(r.stderr, "visible to other users") || !strings.Contains(r.stderr, "REDACTED") {
		t.Fatalf("%v", r)
	}
	// The redactor is the last line of defence for anything printed.
	var buf strings.Builder
	cl := newCLI(nil, &buf, &buf, credEnv())
	fmt.Fprintf(cl.stdout, "x %s y %s\n", sentinelOAuth, strings.ReplaceAll(sentinelSecret, "-", "%2D"))
	if strings.Contains(buf.String(), sentinelOAuth) || !strings.Contains(buf.String(), "x REDACTED y") {
		t.Errorf("redacted: %q", buf.String())
	}
}

func TestProgressLine(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	for _, mode := range []string{"always", "never", "auto"} {
		args := []string{"delete", "--compliance", "GDPR", "--chunk-size", "1", "--journal", filepath.Join(dir, mode), "a", "b",
			"--base-url", srv.URL(), "--rate", "1000", "--progress", mode}
		r := runCmd(t, credEnv(), "", append(args, waitFast...)...)
		drawn := strings.Contains(r.stderr, "\rdelete: requests filed 2/2 · tasks ended 2/2 (2 SUCCESS) · ")
		if r.code != 0 || drawn != (mode == "always") {
			t.Errorf("--progress %s: drawn %v\n%v", mode, drawn, r)
		}
	}
}

func TestDemo(t *testing.T) {
	t.Parallel() // the longest test: let it overlap the binary tests
	// The main job as a user runs it: the built binary (under make test
	// built with -race, see binary), on 4001 IDs rather than the default
	// 10000: the same steps, with a last short request in each job, and
	// 8002 export entries to decrypt.
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary(t), "demo", "--progress", "never", "--ids", "4001")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
	noSecrets(t, "output of the demo binary", r.stdout+r.stderr)
	if err != nil || r.code != 0 {
		t.Fatalf("%v: %v", err, r)
	}
	for _, want := range []string{
		"embedded in this binary",
		"retrieve GDPR: 4001 IDs: 4001 filed in 3 tasks; tasks: 3 SUCCESS",
		"hold 8002 files for 4001 IDs",
		"delete GDPR: 4001 IDs: 4001 filed in 3 tasks; tasks: 3 SUCCESS",
		"cancelled  REVOKED",
		"web-us: 300 items done, 0 failed, 0 unknown",
		"web-eu: 330 items done, 0 failed, 0 unknown",
		"Demo done",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q\n%v", want, r)
		}
	}
	// --json: results on stdout as JSON lines, the story on stderr.
	stdout.Reset()
	stderr.Reset()
	cmd = exec.Command(binary(t), "demo", "--ids", "300", "--json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r = result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
	noSecrets(t, "output of the demo binary", r.stdout+r.stderr)
	out := parseJSON(t, r.stdout)
	if err != nil || r.code != 0 || len(out.tasks) != 1+1+1 || len(out.summaries) != 3 || len(out.other) != 1 || !strings.Contains(r.stderr, "Demo done") {
		t.Fatalf("demo --json: %v: %v", err, r)
	}
	// The worker part is a tenth of the IDs: 30 people, 3 of them asking
	// for a copy too (the first run had the cap, 300).
	for _, want := range []string{"Enqueued 30 single-person deletions (every project) and 3 retrievals", "web-eu: 33 items done, 0 failed, 0 unknown"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("demo --ids 300 story lacks %q\n%v", want, r)
		}
	}
}

// moduleRoot is the directory of the go.mod that holds dir.
func moduleRoot(t *testing.T, dir string) string {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod holds %s", dir)
		}
	}
}
