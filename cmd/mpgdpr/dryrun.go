package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/bulk"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// planLine is one request a dry run would send (--json).
type planLine struct {
	Type        string   `json:"type"` // "request"
	Request     int      `json:"request"`
	IDs         int      `json:"ids"`
	Bytes       int      `json:"bytes"`
	DistinctIDs []string `json:"distinct_ids,omitempty"` // with --show-ids only
}

// planSummary is a dry run's summary (--json).
type planSummary struct {
	Type          string  `json:"type"` // "dry-run"
	Command       string  `json:"command"`
	Compliance    string  `json:"compliance"`
	Disclosure    string  `json:"disclosure,omitempty"`
	IDs           int     `json:"ids"`
	Duplicates    int     `json:"duplicates"`
	Requests      int     `json:"requests"`
	Bytes         int     `json:"bytes"`
	API           string  `json:"api"`
	Rate          float64 `json:"rate"`
	MinSeconds    float64 `json:"min_seconds"`
	Journal       string  `json:"journal"`
	JournalExists bool    `json:"journal_exists"`
}

// dryRun prints the requests the job would send, after every check a real
// run makes before sending, and sends nothing: no request, no journal.
// IDs are personal data: they are printed only with --show-ids.
func (cl *cli) dryRun(j *job, showIDs bool) int {
	for _, n := range j.ids.notes() {
		fmt.Fprintln(cl.stderr, n)
	}
	plan, err := j.Plan()
	if err != nil {
		return cl.fail(j.Command, exitLocal, err)
	}
	total := 0
	lines := make([]planLine, len(plan))
	for i, r := range plan {
		total += r.Bytes
		lines[i] = planLine{Type: "request", Request: r.N, IDs: len(r.IDs), Bytes: r.Bytes}
		if showIDs {
			lines[i].DistinctIDs = r.IDs
		}
	}
	_, statErr := os.Stat(j.Journal)
	exists := statErr == nil
	least := j.LeastTime(len(plan))
	api := bulk.APIHost(j.Client)
	if j.json {
		for _, pl := range lines {
			cl.jsonLine(pl)
		}
		cl.jsonLine(planSummary{Type: "dry-run", Command: j.Command, Compliance: string(j.Compliance), Disclosure: string(j.Disclosure),
			IDs: len(j.IDs), Duplicates: j.ids.duplicates, Requests: len(plan), Bytes: total, API: api,
			Rate: j.Rate, MinSeconds: least.Seconds(), Journal: j.Journal, JournalExists: exists})
		return exitOK
	}
	dups := ""
	if j.ids.duplicates > 0 {
		dups = fmt.Sprintf(" (%d repeated, dropped)", j.ids.duplicates)
	}
	fmt.Fprintf(cl.stdout, "dry run: %s %s: %s from %s%s, every one checked; nothing sent\n", j.Command, j.Compliance, words.Count(len(j.IDs), "ID"), j.ids.source, dups)
	if showIDs {
		rows := make([][]string, 0, len(j.IDs))
		for _, r := range plan {
			for _, id := range r.IDs {
				rows = append(rows, []string{strconv.Itoa(r.N), id})
			}
		}
		cl.table([]string{"REQUEST", "DISTINCT ID"}, rows)
	} else {
		rows := make([][]string, 0, len(plan))
		for _, r := range plan {
			rows = append(rows, []string{strconv.Itoa(r.N), strconv.Itoa(len(r.IDs)), strconv.Itoa(r.Bytes)})
		}
		cl.table([]string{"REQUEST", "IDS", "BODY BYTES"}, rows)
	}
	takes := "the filing takes at least " + words.Duration(least)
	if least == 0 {
		takes = "sent at once"
	}
	fmt.Fprintf(cl.stdout, "%s (%d bytes of JSON) to %s at --rate %g: %s; then Mixpanel takes minutes to days\n",
		words.Count(len(plan), "request"), total, api, j.Rate, takes)
	if exists {
		fmt.Fprintf(cl.stdout, "journal: %s exists: a real run resumes that job and files only what it has not filed\n", j.Journal)
	} else {
		fmt.Fprintf(cl.stdout, "journal: %s (a real run creates it)\n", j.Journal)
	}
	return exitOK
}
