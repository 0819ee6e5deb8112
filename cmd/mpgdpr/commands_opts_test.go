package main

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// Each command's line is parsed into its options struct, tested here
// without running it: the command is built with a run function that
// records what it was given (gh's model: the run is injectable).

// execute runs c on args and fails the test if c did not run.
func execute(t *testing.T, c *cobra.Command, ran *bool, args ...string) {
	t.Helper()
	c.SetArgs(args)
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	if err := c.Execute(); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if !*ran {
		t.Fatalf("%q: the run function was not called", args)
	}
}

func testCLI() *cli { return newCLI(nil, io.Discard, io.Discard, nil) }

func TestDeleteAndRetrieveOptions(t *testing.T) {
	var got *jobOpts
	ran := false
	record := func(_ context.Context, o *jobOpts) int { got, ran = o, true; return exitOK }

	execute(t, newDeleteCmd(testCLI(), record), &ran, "--compliance", "GDPR", "a", "--chunk-size", "5", "--wait",
		"--poll-interval", "2s", "--poll-max", "9s", "--journal", "j.jsonl", "--dry-run", "--show-ids", "--trim-space", "--", "-b")
	if got.compliance != "GDPR" || got.chunkSize != 5 || !got.wait || got.pollStart != 2*time.Second || got.pollMax != 9*time.Second ||
		got.journal != "j.jsonl" || !got.dryRun || !got.showIDs || !got.in.trimSpace || !got.in.stripBOM || !slices.Equal(got.in.args, []string{"a", "-b"}) {
		t.Errorf("delete: %+v", got)
	}
	if got.api.rate != 1 || got.api.progress != "auto" {
		t.Errorf("delete's API defaults: %+v", got.api)
	}

	ran = false
	execute(t, newRetrieveCmd(testCLI(), record), &ran, "--compliance", "CCPA", "--disclosure", "Categories", "--file", "ids.csv",
		"--csv-column", "distinct_id", "--download", "out", "--extract", "--resubmit-unknown", "--strip-bom=false", "--json", "--rate", "0.5")
	if got.compliance != "CCPA" || got.disclosure != "Categories" || got.in.file != "ids.csv" || got.in.csvColumn != "distinct_id" ||
		got.download != "out" || !got.extract || !got.resubmitUnknown || got.in.stripBOM || !got.api.json || got.api.rate != 0.5 || len(got.in.args) != 0 {
		t.Errorf("retrieve: %+v", got)
	}
	// delete has no retrieval-only flag.
	c := newDeleteCmd(testCLI(), record)
	c.SetArgs([]string{"--compliance", "GDPR", "--download", "out", "a"})
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	if err := c.Execute(); err == nil {
		t.Error("delete accepted --download")
	}
}

func TestCancelDownloadAndCheckOptions(t *testing.T) {
	ran := false
	var ids []string
	var co *cancelOpts
	execute(t, newCancelCmd(testCLI(), func(_ context.Context, o *cancelOpts, a []string) int {
		co, ids, ran = o, a, true
		return exitOK
	}), &ran, "t1", "--json", "t2", "--base-url", "https://proxy.example/api/app")
	if !co.api.json || co.api.baseURL != "https://proxy.example/api/app" || !slices.Equal(ids, []string{"t1", "t2"}) {
		t.Errorf("cancel: %+v %q", co, ids)
	}

	ran = false
	var do *downloadOpts
	execute(t, newDownloadCmd(testCLI(), func(_ context.Context, o *downloadOpts, a []string) int {
		do, ids, ran = o, a, true
		return exitOK
	}), &ran, "--dir", "exports", "--extract", "--wait", "--poll-max", "1m", "r1")
	if do.dir != "exports" || !do.extract || !do.wait || do.pollMax != time.Minute || !slices.Equal(ids, []string{"r1"}) {
		t.Errorf("download: %+v %q", do, ids)
	}

	for _, cmd := range []string{"status", "wait"} {
		ran = false
		var gotCmd string
		var ko *checkOpts
		newCmd := newStatusCmd
		if cmd == "wait" {
			newCmd = newWaitCmd
		}
		args := []string{"deletion", "t1", "--region", "eu"}
		if cmd == "wait" {
			args = append(args, "--poll-interval", "3s")
		}
		execute(t, newCmd(testCLI(), func(_ context.Context, c string, o *checkOpts, a []string) int {
			gotCmd, ko, ids, ran = c, o, a, true
			return exitOK
		}), &ran, args...)
		if gotCmd != cmd || ko.api.region != "eu" || !slices.Equal(ids, []string{"deletion", "t1"}) || (cmd == "wait") != (ko.pollStart == 3*time.Second) {
			t.Errorf("%s: %q %+v %q", cmd, gotCmd, ko, ids)
		}
	}
}
