package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// A mistyped command gets a suggestion and a pointer to the help, not the
// whole help scrolling the error away.
func TestUnknownCommandSuggests(t *testing.T) {
	r := runCmd(t, nil, "", "delet", "--compliance", "GDPR", "a")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "delet"; did you mean "delete"?`) ||
		!strings.Contains(r.stderr, "mpgdpr help") || strings.Count(r.stderr, "\n") > 3 || r.stdout != "" {
		t.Errorf("%v", r)
	}
	r = runCmd(t, nil, "", "help", "retreive")
	if r.code != exitUsage || !strings.Contains(r.stderr, `did you mean "retrieve"?`) {
		t.Errorf("help retreive: %v", r)
	}
	r = runCmd(t, nil, "", "status", "--frobnicate")
	if r.code != exitUsage || !strings.Contains(r.stderr, "unknown flag: --frobnicate") || !strings.Contains(r.stderr, "mpgdpr help status") {
		t.Errorf("unknown flag: %v", r)
	}
}

// Help shows flags in their GNU form, and ends with the exit statuses,
// the export that does not decrypt included.
func TestHelpFlagsAndExitCodes(t *testing.T) {
	r := runCmd(t, nil, "", "help")
	for _, want := range []string{"--verbose", "MPGDPR_LOG", "MIXPANEL_BASE_URL", "does not open, decrypt or verify", "completion", "version"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if i, j := strings.Index(r.stdout, "Available Commands"), strings.Index(r.stdout, "Exit status"); i < 0 || j < i {
		t.Errorf("the exit statuses do not end the help:\n%s", r.stdout)
	}
	r = runCmd(t, nil, "", "retrieve", "-h")
	if r.code != 0 || !strings.Contains(r.stdout, "      --chunk-size int") || strings.Contains(r.stdout, "\n  -chunk-size") ||
		!strings.Contains(r.stdout, "Exit status: 0 success") {
		t.Errorf("retrieve -h: %v", r)
	}
	// The standard library's single-dash form still works.
	if r := runCmd(t, nil, "", "delete", "-help"); r.code != 0 || !strings.Contains(r.stdout, "--compliance") {
		t.Errorf("delete -help: %v", r)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runCmd(t, nil, "", args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "mpgdpr "+mpgdpr.Version+" (go1.") {
			t.Errorf("%q: %v", args, r)
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.25.3", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionLine(bi, true), "mpgdpr "+mpgdpr.Version+" (go1.25.3, revision 0123456789ab+dirty)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// -buildvcs=false, or no build info at all: said, not an error.
	if got := versionLine(&debug.BuildInfo{GoVersion: "go1.25.3"}, true); !strings.Contains(got, "revision unknown") {
		t.Errorf("no VCS info: %q", got)
	}
	if got := versionLine(nil, false); !strings.Contains(got, "revision unknown") || !strings.Contains(got, "go1.") {
		t.Errorf("no build info: %q", got)
	}
}

func TestCompletionAndMan(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_mpgdpr", "zsh": "#compdef mpgdpr", "fish": "complete -c mpgdpr", "powershell": "Register-ArgumentCompleter"} {
		r := runCmd(t, nil, "", "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: exit %d, lacks %q", shell, r.code, want)
		}
	}
	if r := runCmd(t, nil, "", "completion", "tcsh"); r.code != exitUsage {
		t.Errorf("completion tcsh: %v", r)
	}
	// Completion of flags works through cobra's hidden __complete command.
	r := runCmd(t, nil, "", "__complete", "delete", "--chunk")
	if r.code != 0 || !strings.Contains(r.stdout, "--chunk-size") {
		t.Errorf("__complete: %v", r)
	}
	dir := filepath.Join(t.TempDir(), "man")
	r = runCmd(t, nil, "", "man", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("man: %v", r)
	}
	for _, page := range []string{"mpgdpr.1", "mpgdpr-delete.1", "mpgdpr-retrieve.1", "mpgdpr-wait.1", "mpgdpr-download.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), ".TH \"MPGDPR\"") || !strings.Contains(string(b), "Exit status") {
			t.Errorf("%s: not a man page with the exit statuses", page)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "mpgdpr-delete.1")); !strings.Contains(string(b), `\fB--chunk-size\fP`) {
		t.Error("mpgdpr-delete.1 lacks --chunk-size")
	}
	if r := runCmd(t, nil, "", "man"); r.code != exitUsage {
		t.Errorf("man without --dir: %v", r)
	}
}

// A byte order mark at the start of the ID file is removed, and said: it
// is never sent as part of the first ID.
func TestBOMStrippedWithANote(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ids.txt")
	if err := os.WriteFile(path, []byte("\ufeffu1\r\nu2\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--file", path, "--journal", filepath.Join(dir, "j")}, fast(srv)...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "byte order mark: removed") {
		t.Fatalf("%v", r)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, []string{"u1", "u2"})
}

// A journal path that is not a regular file, or a file far larger than the
// job's journal could be, is refused with exit 1 before it is read.
func TestJournalPathRefused(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	args := func(jp string) []string {
		return append([]string{"delete", "--compliance", "GDPR", "--journal", jp, "a", "b"}, fast(srv)...)
	}
	if r := runCmd(t, credEnv(), "", args(dir)...); r.code != exitLocal || !strings.Contains(r.stderr, "not a regular file: it is a directory") {
		t.Errorf("a directory: %v", r)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if r := runCmd(t, credEnv(), "", args("/dev/zero")...); r.code != exitLocal || !strings.Contains(r.stderr, "it is a device") {
			t.Errorf("/dev/zero: %v", r)
		}
	}
	big := filepath.Join(dir, "disk.img")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 80 MiB that take no room, above the bound for two IDs.
	if err := f.Truncate(80 << 20); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if r := runCmd(t, credEnv(), "", args(big)...); r.code != exitLocal || !strings.Contains(r.stderr, "too large to be this job's journal") {
		t.Errorf("a large file: %v", r)
	}
	if fi, _ := os.Stat(big); fi.Size() != 80<<20 {
		t.Error("the refused file was changed")
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// MIXPANEL_BASE_URL is the environment form of --base-url; errors in the
// environment name the variable.
func TestBaseURLAndRegionFromEnv(t *testing.T) {
	srv := newFake(t)
	r := runCmd(t, credEnv(envBaseURL+"="+srv.URL()), "", "delete", "--compliance", "GDPR", "--journal", filepath.Join(t.TempDir(), "j"), "--rate", "1000", "a")
	if r.code != 0 || len(srv.Tasks()) != 1 {
		t.Fatalf("MIXPANEL_BASE_URL: %v", r)
	}
	if r := runCmd(t, credEnv(envBaseURL+"=ftp://example.com"), "", "status", "deletion", "t1"); r.code != exitUsage || !strings.Contains(r.stderr, envBaseURL+": not an absolute http(s) URL") {
		t.Errorf("bad MIXPANEL_BASE_URL: %v", r)
	}
	// The flag wins over the variable.
	if r := runCmd(t, credEnv(envBaseURL+"=ftp://example.com"), "", "status", "deletion", "nope", "--base-url", srv.URL()); r.code != exitAPI || !strings.Contains(r.stderr, "404") {
		t.Errorf("--base-url over MIXPANEL_BASE_URL: %v", r)
	}
	if r := runCmd(t, credEnv(envRegion+"=moon"), "", "status", "deletion", "t1"); r.code != exitUsage || !strings.Contains(r.stderr, `unknown region "moon" in MIXPANEL_REGION`) {
		t.Errorf("bad MIXPANEL_REGION: %v", r)
	}
	if r := runCmd(t, credEnv(envRegion+"=moon"), "", "status", "deletion", "t1", "--region", "mars"); r.code != exitUsage || strings.Contains(r.stderr, "MIXPANEL_REGION") {
		t.Errorf("bad --region: %v", r)
	}
	// A base URL replaces the region's host: a region beside one, from a
	// flag or the environment, is refused rather than silently ignored.
	before := len(srv.Requests())
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{credEnv(envBaseURL + "=" + srv.URL()), []string{"--region", "eu"}, "--region and " + envBaseURL + " are both set"},
		{credEnv(envRegion + "=eu"), []string{"--base-url", srv.URL()}, envRegion + " and --base-url are both set"},
		{credEnv(envRegion+"=us", envBaseURL+"="+srv.URL()), nil, envRegion + " and " + envBaseURL + " are both set"},
		{credEnv(), []string{"--region", "in", "--base-url", srv.URL()}, "--region and --base-url are both set"},
	} {
		r := runCmd(t, c.env, "", append([]string{"delete", "--compliance", "GDPR", "--journal", filepath.Join(t.TempDir(), "j"), "a"}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v %v: %v, want exit 2 saying %q", c.env[3:], c.args, r, c.want)
		}
	}
	if n := len(srv.Requests()) - before; n != 0 {
		t.Errorf("%d requests sent with a region and a base URL", n)
	}
}

// Any 5xx to a create is an unknown outcome now (a CDN's 520 included): a
// deletion's is settled by DeleteAll's own resubmission, journaled as a
// request of its own; a retrieval's is reported, not filed again.
func TestCreate5xxIsUnknown(t *testing.T) {
	t.Parallel() // DeleteAll resubmits after the retry policy's backoff (< 1s)
	srv := newFake(t)
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Status: 520})
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Status: 520})
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "u", 20)
	jp := filepath.Join(dir, "d.jsonl")
	r := runCmd(t, credEnv(), "", append([]string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "10", "--journal", jp, "--json"}, fast(srv)...)...)
	s := parseJSON(t, r.stdout).summary
	if r.code != 0 || s == nil || s.Filed != 20 || s.Unknown != 0 || !strings.Contains(r.stderr, "request 1's outcome is unknown") {
		t.Fatalf("delete: %v", r)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, ids)
	recs := journalRecords(t, jp)
	if countState(recs, "sending") != 3 || countState(recs, "unknown") != 1 || countState(recs, "accepted") != 2 {
		t.Errorf("journal: %v", recs)
	}
	r = runCmd(t, credEnv(), "", append([]string{"retrieve", "--compliance", "GDPR", "--file", path, "--chunk-size", "10", "--journal", filepath.Join(dir, "r.jsonl"), "--json"}, fast(srv)...)...)
	s = parseJSON(t, r.stdout).summary
	if r.code != exitIncomplete || s == nil || s.Unknown != 10 || s.Filed != 10 {
		t.Fatalf("retrieve: %v", r)
	}
}
