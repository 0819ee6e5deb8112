package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/gen"
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
	ids := j.ids.ids
	if j.ids.bomDropped {
		fmt.Fprintf(cl.stderr, "note: %s starts with a UTF-8 byte order mark: removed (it marks the encoding, it is no part of the first ID)\n", j.ids.source)
	}
	var plan []planLine
	total := 0
	for start, n := 0, 1; start < len(ids); start, n = start+j.chunk, n+1 {
		chunk := ids[start:min(start+j.chunk, len(ids))]
		size, err := bodySize(j, chunk)
		if err != nil {
			return cl.fail(j.cmd, exitLocal, err)
		}
		total += size
		pl := planLine{Type: "request", Request: n, IDs: len(chunk), Bytes: size}
		if showIDs {
			pl.DistinctIDs = chunk
		}
		plan = append(plan, pl)
	}
	_, statErr := os.Stat(j.jpath)
	exists := statErr == nil
	// The first request goes at once, each later one a turn of the limiter
	// later: the least time the filing takes.
	least := time.Duration(float64(len(plan)-1) / j.rate * float64(time.Second))
	if j.json {
		for _, pl := range plan {
			cl.jsonLine(pl)
		}
		cl.jsonLine(planSummary{Type: "dry-run", Command: j.cmd, Compliance: string(j.ct), Disclosure: string(j.dt),
			IDs: len(ids), Duplicates: j.ids.duplicates, Requests: len(plan), Bytes: total, API: apiHost(j.c),
			Rate: j.rate, MinSeconds: least.Seconds(), Journal: j.jpath, JournalExists: exists})
		return exitOK
	}
	dups := ""
	if j.ids.duplicates > 0 {
		dups = fmt.Sprintf(" (%d repeated, dropped)", j.ids.duplicates)
	}
	fmt.Fprintf(cl.stdout, "dry run: %s %s: %s from %s%s, every one checked; nothing sent\n", j.cmd, j.ct, plural(len(ids), "ID"), j.ids.source, dups)
	if showIDs {
		rows := make([][]string, 0, len(ids))
		for _, pl := range plan {
			for _, id := range pl.DistinctIDs {
				rows = append(rows, []string{strconv.Itoa(pl.Request), id})
			}
		}
		cl.table([]string{"REQUEST", "DISTINCT ID"}, rows)
	} else {
		rows := make([][]string, 0, len(plan))
		for _, pl := range plan {
			rows = append(rows, []string{strconv.Itoa(pl.Request), strconv.Itoa(pl.IDs), strconv.Itoa(pl.Bytes)})
		}
		cl.table([]string{"REQUEST", "IDS", "BODY BYTES"}, rows)
	}
	takes := "the filing takes at least " + roundDuration(least)
	if least == 0 {
		takes = "sent at once"
	}
	fmt.Fprintf(cl.stdout, "%s (%d bytes of JSON) to %s at --rate %g: %s; then Mixpanel takes minutes to days\n",
		plural(len(plan), "request"), total, apiHost(j.c), j.rate, takes)
	if exists {
		fmt.Fprintf(cl.stdout, "journal: %s exists: a real run resumes that job and files only what it has not filed\n", j.jpath)
	} else {
		fmt.Fprintf(cl.stdout, "journal: %s (a real run creates it)\n", j.jpath)
	}
	return exitOK
}

// bodySize is the length of the JSON body the library sends for chunk.
func bodySize(j *job, chunk []string) (int, error) {
	var body any
	if j.deletion {
		body = gen.CreateDeletionRequest{ComplianceType: gen.ComplianceType(j.ct), DistinctIds: chunk}
	} else {
		r := gen.CreateRetrievalRequest{ComplianceType: gen.ComplianceType(j.ct), DistinctIds: chunk}
		if j.dt != "" && j.ct == mpgdpr.CCPA {
			dt := gen.DisclosureType(j.dt)
			r.DisclosureType = &dt
		}
		body = r
	}
	b, err := json.Marshal(body)
	return len(b), err
}
