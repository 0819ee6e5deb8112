package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// Sentinel credentials: the fake accepts only these, and no output,
// journal or file may ever contain them.
const (
	sentinelOAuth   = "SENTINEL-oauth-6b1f0c9e2d7a"
	sentinelProject = "SENTINEL-project-4a7e3d8c1b5f"
	sentinelSecret  = "SENTINEL-secret-9c2e5f1a7d3b"
)

var sentinels = []string{sentinelOAuth, sentinelProject, sentinelSecret}

// newFake starts a fake that knows the sentinel credentials, and fails the
// test if anything the command sent broke Mixpanel's contract.
func newFake(t *testing.T, opts ...mpgdprtest.Option) *mpgdprtest.Server {
	t.Helper()
	srv := mpgdprtest.NewServer(append([]mpgdprtest.Option{
		mpgdprtest.WithTokens(sentinelOAuth, sentinelProject),
		mpgdprtest.WithAPISecret(sentinelSecret),
	}, opts...)...)
	t.Cleanup(func() {
		srv.AssertNoViolations(t)
		srv.Close()
	})
	return srv
}

// credEnv is an environment holding the sentinel credentials, plus extra
// KEY=VALUE pairs.
func credEnv(extra ...string) []string {
	return append([]string{
		envToken + "=" + sentinelOAuth,
		envProjectToken + "=" + sentinelProject,
		envAPISecret + "=" + sentinelSecret,
	}, extra...)
}

// fast are the flags that point a command at the fake at full speed.
func fast(srv *mpgdprtest.Server) []string {
	return []string{"--base-url", srv.URL(), "--rate", "1000", "--progress", "never"}
}

// waitFast are --wait and the poll intervals for a fake that moves a task
// one step per check.
var waitFast = []string{"--wait", "--poll-interval", "2ms", "--poll-max", "5ms"}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCmd runs the command in-process and checks that no sentinel
// credential appears in what it printed.
func runCmd(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	return runCtx(context.Background(), t, env, stdin, args...)
}

func runCtx(ctx context.Context, t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, env)
	r := result{code, out.String(), errb.String()}
	noSecrets(t, "output of "+strings.Join(args[:min(len(args), 2)], " "), r.stdout+r.stderr)
	return r
}

func noSecrets(t *testing.T, where, s string) {
	t.Helper()
	for _, x := range sentinels {
		if strings.Contains(s, x) {
			t.Errorf("%s contains a credential (%.12s…)", where, x)
		}
	}
}

// noSecretsInFiles checks every file under dir.
func noSecretsInFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			noSecrets(t, p, string(b))
		}
		return nil
	})
}

// genIDs returns n IDs with a prefix, and writes them one per line to a
// file in dir.
func genIDs(t *testing.T, dir, prefix string, n int) ([]string, string) {
	t.Helper()
	ids := make([]string, n)
	var b strings.Builder
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i+1)
		b.WriteString(ids[i] + "\n")
	}
	path := filepath.Join(dir, prefix+".txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return ids, path
}

// jsonOut is the --json output parsed back, strictly.
type jsonOut struct {
	tasks     []taskLine
	other     []taskLine // error, cancel and download lines
	summary   *summaryLine
	summaries []summaryLine // the demo prints one per job
}

func parseJSON(t *testing.T, stdout string) jsonOut {
	t.Helper()
	var o jsonOut
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v", line, err)
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		switch head.Type {
		case "summary":
			var s summaryLine
			if err := dec.Decode(&s); err != nil {
				t.Fatalf("summary %q: %v", line, err)
			}
			o.summaries = append(o.summaries, s)
			o.summary = &o.summaries[len(o.summaries)-1]
		case "task", "error", "cancel", "download":
			var tl taskLine
			if err := dec.Decode(&tl); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if head.Type == "task" {
				o.tasks = append(o.tasks, tl)
			} else {
				o.other = append(o.other, tl)
			}
		default:
			t.Fatalf("line of unknown type: %q", line)
		}
	}
	return o
}

// filedOnce checks that the fake received every ID exactly once in tasks
// of this kind, and no other ID.
func filedOnce(t *testing.T, srv *mpgdprtest.Server, kind mpgdprtest.Kind, ids []string) {
	t.Helper()
	n := map[string]int{}
	for _, task := range srv.Tasks() {
		if task.Kind == kind {
			for _, id := range task.DistinctIDs {
				n[id]++
			}
		}
	}
	bad := 0
	for _, id := range ids {
		if n[id] != 1 {
			if bad++; bad <= 5 {
				t.Errorf("%s filed %d times in %s tasks, want once", id, n[id], kind)
			}
		}
		delete(n, id)
	}
	if bad > 5 {
		t.Errorf("… and %d more IDs not filed exactly once", bad-5)
	}
	if len(n) > 0 {
		t.Errorf("%d IDs filed that were not asked for", len(n))
	}
}

// journalRecords reads a journal's records (the header excluded).
func journalRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	noSecrets(t, path, string(data))
	var out []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("journal line %d: %v", i+1, err)
		}
		if i > 0 {
			out = append(out, m)
		}
	}
	return out
}

func countState(recs []map[string]any, state string) int {
	n := 0
	for _, r := range recs {
		if r["state"] == state {
			n++
		}
	}
	return n
}
