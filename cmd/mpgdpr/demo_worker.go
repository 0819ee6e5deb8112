package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
)

// demoWorkerPeople is how many single-person requests the worker part of
// the demo streams in for n IDs: a tenth of them, 1 to 300. A smaller demo
// is smaller in every part (under -race, SQLite makes this part the
// demo's most costly one).
func demoWorkerPeople(n int) int {
	return max(1, min(300, n/10))
}

// demoWorker is the demo's last part: the durable worker (package worker,
// on River over a SQLite file) takes a stream of single-person requests for
// two projects in two regions (two fakes), files them in batches and
// follows every task to its end.
func (cl *cli) demoWorker(ctx context.Context, say func(string, ...any), work string, n int) int {
	people := demoWorkerPeople(n)
	fakes := map[string]*mpgdprtest.Server{}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "batch_window = \"500ms\"\npoll_min = \"100ms\"\npoll_max = \"300ms\"\nrequest_lease = \"10s\"\njob_timeout = \"1m\"\nexport_dir = %q\n",
		filepath.Join(work, "worker-exports"))
	for _, name := range []string{"web-us", "web-eu"} {
		srv := mpgdprtest.NewServer(mpgdprtest.WithRateLimit(demoServerRate),
			mpgdprtest.WithSchedule(mpgdprtest.Timed(demoStep, demoStep, demoStep)),
			mpgdprtest.WithAPISecret("demo-secret-"+name))
		defer srv.Close()
		fakes[name] = srv
		// The fake's test credentials go in files, as a deployment's secrets would.
		files := map[string]string{"oauth": srv.OAuthToken(), "project": srv.ProjectToken(), "secret": srv.APISecret()}
		for k, v := range files {
			if err := os.WriteFile(filepath.Join(work, name+"."+k), []byte(v+"\n"), 0o600); err != nil {
				return cl.fail("demo", exitLocal, err)
			}
		}
		fmt.Fprintf(&cfg, "[[project]]\nname = %q\nbase_url = %q\nrate = %d\noauth_token_file = %q\nproject_token_file = %q\napi_secret_file = %q\n",
			name, srv.URL(), demoClientRate, name+".oauth", name+".project", name+".secret")
	}
	config := filepath.Join(work, "worker.toml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		return cl.fail("demo", exitLocal, err)
	}
	say("$ mpgdpr worker --config %s      # web-us on %s, web-eu on %s", config, fakes["web-us"].URL(), fakes["web-eu"].URL())
	svc, closeDB, err := cl.openWorker(ctx, &workerFlags{config: config})
	if err != nil {
		return cl.fail("demo", exitFor(err), err)
	}
	defer closeDB()
	if err := svc.Start(ctx); err != nil {
		return cl.fail("demo", exitLocal, err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = svc.Stop(sctx)
		}
	}
	defer stop()

	// The stream: one person at a time, erased everywhere; every tenth also
	// asks for a copy of their data in the EU project.
	start := time.Now()
	retrievals := 0
	for i := 1; i <= people; i++ {
		id := fmt.Sprintf("person-%04d", i)
		if _, err := svc.Enqueue(ctx, worker.Request{Reference: "DSR-" + id, Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR,
			DistinctIDs: []string{id}, AllProjects: true}); err != nil {
			return cl.fail("demo", exitLocal, err)
		}
		if i%10 == 0 {
			retrievals++
			if _, err := svc.Enqueue(ctx, worker.Request{Reference: "SAR-" + id, Kind: worker.Retrieval, ComplianceType: mpgdpr.GDPR,
				DistinctIDs: []string{id}, Projects: []string{"web-eu"}}); err != nil {
				return cl.fail("demo", exitLocal, err)
			}
		}
	}
	say("Enqueued %s (every project) and %s (web-eu) in %s.",
		words.Count(people, "single-person deletion"), words.Count(retrievals, "retrieval"), time.Since(start).Round(10*time.Millisecond))
	want := 2*people + retrievals
	var st *worker.Status
	for {
		if st, err = svc.Status(ctx); err != nil {
			return cl.fail("demo", exitLocal, err)
		}
		done, settled := 0, 0
		for _, p := range st.Projects {
			done += p.Items[worker.StateDone]
			settled += p.Items[worker.StateDone] + p.Items[worker.StateFailed] + p.Items[worker.StateUnknown]
		}
		if settled == want {
			break
		}
		select {
		case <-ctx.Done():
			return exitInterrupted
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop()
	code := exitOK
	for _, p := range st.Projects {
		f := fakes[p.Name]
		creates := 0
		for _, r := range f.Requests() {
			if r.Op == mpgdprtest.OpCreateDeletion || r.Op == mpgdprtest.OpCreateRetrieval {
				creates++
			}
		}
		say("  %s: %s done, %d failed, %d unknown; %s filed for them, %s followed to the end.",
			p.Name, words.Count(p.Items[worker.StateDone], "item"), p.Items[worker.StateFailed], p.Items[worker.StateUnknown], words.Count(creates, "create"), words.Count(len(f.Tasks()), "task"))
		if p.Items[worker.StateDone] != p.Items[worker.StateDone]+p.Items[worker.StateFailed]+p.Items[worker.StateUnknown] {
			code = exitIncomplete
		}
		if v := f.Violations(); len(v) > 0 {
			for _, x := range v {
				say("contract violation: %s", x)
			}
			code = exitIncomplete
		}
	}
	rs, err := svc.RequestStatus(ctx, "SAR-person-0010")
	if err == nil && len(rs.Items) == 1 && len(rs.Items[0].Tasks) == 1 {
		t := rs.Items[0].Tasks[0]
		say("  SAR-person-0010: export %s, %d bytes, sha256 %s…, checked with web-eu's API secret.", filepath.Base(t.ExportPath), t.ExportSize, t.ExportSHA256[:16])
	}
	say("Every change of every item is recorded with its time (mpgdpr request status --events REF shows them).")
	return code
}
