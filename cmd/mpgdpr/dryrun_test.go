package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --dry-run checks the whole input, prints the requests it would send
// (counts and sizes, IDs only with --show-ids), and sends nothing: the fake
// receives no request and no journal is written.
func TestDryRun(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	_, path := genIDs(t, dir, "person", 4500)
	jp := filepath.Join(dir, "j.jsonl")
	args := append([]string{"delete", "--compliance", "GDPR", "--file", path, "--journal", jp, "--dry-run"}, fast(srv)...)
	r := runCmd(t, credEnv(), "", args...)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	for _, want := range []string{"dry run: delete GDPR: 4500 IDs from " + path, "nothing sent", "REQUEST  IDS   BODY BYTES",
		"1        1999  ", "3        502   ", "3 requests (", "a real run creates it"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q\n%v", want, r)
		}
	}
	if strings.Contains(r.stdout, "person-") {
		t.Errorf("IDs printed without --show-ids: %v", r)
	}
	r = runCmd(t, credEnv(), "", append(args, "--show-ids", "--json")...)
	var reqs, ids int
	var sum planSummary
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var pl planLine
		if err := json.Unmarshal([]byte(line), &pl); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch pl.Type {
		case "request":
			reqs++
			ids += len(pl.DistinctIDs)
			if pl.Bytes < 14*pl.IDs {
				t.Errorf("request %d: %d bytes for %d IDs", pl.Request, pl.Bytes, pl.IDs)
			}
		case "dry-run":
			_ = json.Unmarshal([]byte(line), &sum)
		}
	}
	if r.code != 0 || reqs != 3 || ids != 4500 || sum.Requests != 3 || sum.IDs != 4500 || sum.JournalExists {
		t.Errorf("--json --show-ids: %d requests, %d IDs, %+v\n%v", reqs, ids, sum, r)
	}
	// Bad input is refused as in a real run.
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("a\n\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, credEnv(), "", "retrieve", "--compliance", "GDPR", "--file", bad, "--dry-run", "--base-url", srv.URL()); r.code != exitUsage || !strings.Contains(r.stderr, "line 2: blank") {
		t.Errorf("bad input: %v", r)
	}
	if r := runCmd(t, credEnv(), "", "delete", "--compliance", "GDPR", "--show-ids", "a", "--base-url", srv.URL()); r.code != exitUsage {
		t.Errorf("--show-ids without --dry-run: %v", r)
	}
	// A dry run needs no token: it says so, and plans for the same API
	// host and journal as a real run with tokens would.
	r = runCmd(t, nil, "", args...)
	if r.code != 0 || !strings.Contains(r.stdout, "3 requests (") || !strings.Contains(r.stdout, "journal: "+jp) ||
		!strings.Contains(r.stderr, "no GDPR OAuth token ("+envToken+"): not needed for a dry run") || !strings.Contains(r.stderr, envProjectToken) {
		t.Errorf("dry run without tokens: %v", r)
	}
	if r := runCmd(t, nil, "", "delete", "--compliance", "GDPR", "a", "--base-url", srv.URL()); r.code != exitUsage || !strings.Contains(r.stderr, "missing the GDPR OAuth token") {
		t.Errorf("a real run without tokens: %v", r)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the fake received %d requests; a dry run sends none", n)
	}
	if _, err := os.Stat(jp); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote the journal: %v", err)
	}
}
