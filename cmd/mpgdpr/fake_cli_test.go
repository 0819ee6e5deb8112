//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIAgainstFakeProcess: the command's own delete, retrieve, wait,
// cancel and download run against `mpgdpr fake` in another process, and
// the fake saw no contract violation.
func TestCLIAgainstFakeProcess(t *testing.T) {
	t.Parallel()
	f := startFake(t, fakeEnv, "--json")
	c := httpc()
	dir := t.TempDir()
	env := []string{
		"MIXPANEL_GDPR_TOKEN=" + fakeOAuth, "MIXPANEL_PROJECT_TOKEN=" + fakeProject,
		"MIXPANEL_API_SECRET=" + fakeSecret, "MIXPANEL_BASE_URL=" + f.ready.APIURL,
	}
	fast := []string{"--rate", "200", "--poll-interval", "10ms", "--poll-max", "20ms"}
	cli := func(want int, args ...string) fakeResult {
		t.Helper()
		r := runBin(t, dir, env, args...)
		if r.code != want {
			t.Fatalf("mpgdpr %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
		}
		return r
	}
	// lastTask is the id of the newest task, from the control API.
	lastTask := func(kind string) string {
		t.Helper()
		var tasks controlTasks
		do(t, c, "GET", f.ready.ControlURL+"/tasks", "", "").decode(t, &tasks)
		for i := len(tasks.Tasks) - 1; i >= 0; i-- {
			if tasks.Tasks[i].Kind == kind {
				return tasks.Tasks[i].ID
			}
		}
		t.Fatalf("no %s task: %+v", kind, tasks)
		return ""
	}
	taskStatus := func(id string) string {
		t.Helper()
		var task struct{ Status string }
		do(t, c, "GET", f.ready.ControlURL+"/tasks/"+id, "", "").decode(t, &task)
		return task.Status
	}

	// retrieve, waited on, downloaded and extracted in one go.
	exports := filepath.Join(dir, "exports")
	cli(0, append([]string{"retrieve", "--compliance", "GDPR", "--download", exports, "--extract", "--journal", "r1.jsonl", "alice", "bob"}, fast...)...)
	rid := lastTask("retrieval")
	for _, p := range []string{rid + ".zip", filepath.Join(rid, "events", "alice.json"), filepath.Join(rid, "profiles", "bob.json")} {
		if _, err := os.Stat(filepath.Join(exports, p)); err != nil {
			t.Errorf("retrieve --download --extract: %v", err)
		}
	}
	// delete, waited on.
	cli(0, append([]string{"delete", "--compliance", "GDPR", "--wait", "--journal", "d1.jsonl", "carol"}, fast...)...)
	if id := lastTask("deletion"); taskStatus(id) != "SUCCESS" {
		t.Errorf("deletion %s: %s", id, taskStatus(id))
	}
	// delete, then cancel while it is PENDING.
	cli(0, append([]string{"delete", "--compliance", "CCPA", "--journal", "d2.jsonl", "dave"}, fast...)...)
	did := lastTask("deletion")
	cli(0, "cancel", "--rate", "200", did)
	if s := taskStatus(did); s != "REVOKED" {
		t.Errorf("cancelled deletion: %s", s)
	}
	// retrieve, then status, wait and download as separate steps.
	cli(0, append([]string{"retrieve", "--compliance", "CCPA", "--disclosure", "Data", "--journal", "r2.jsonl", "erin"}, fast...)...)
	rid = lastTask("retrieval")
	cli(0, "status", "--rate", "200", "retrieval", rid)
	cli(0, append([]string{"wait", "retrieval", rid}, fast...)...)
	saved := filepath.Join(dir, "saved")
	cli(0, "download", "--rate", "200", "--dir", saved, rid)
	unzipExport(t, filepath.Join(saved, rid+".zip"), fakeSecret, "erin")

	var vs controlViolations
	if r := do(t, c, "GET", f.ready.ControlURL+"/violations", "", "").decode(t, &vs); r.code != 200 || vs.Count != 0 {
		t.Errorf("the CLI's traffic broke the contract: %d %s", r.code, r.body)
	}
	var reqs struct {
		Requests []struct {
			Op     string `json:"op"`
			Bearer string `json:"bearer"`
		} `json:"requests"`
	}
	do(t, c, "GET", f.ready.ControlURL+"/requests", "", "").decode(t, &reqs)
	downloads := 0
	for _, q := range reqs.Requests {
		if q.Op == "download" {
			downloads++
			if q.Bearer != "absent" {
				t.Errorf("the CLI sent a credential to the download host: %+v", q)
			}
		}
	}
	if len(reqs.Requests) < 12 || downloads < 2 {
		t.Errorf("%d requests reached the fake, %d downloads", len(reqs.Requests), downloads)
	}
	for _, p := range []string{"r1.jsonl", "r2.jsonl", "d1.jsonl", "d2.jsonl"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil {
			t.Errorf("journal %s: %v", p, err)
		} else {
			noLeak(t, "journal "+p, string(b))
		}
	}
}
