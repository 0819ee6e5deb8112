package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/bulk"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// summary prints the job's tasks and what became of every ID, and returns
// the exit code: res.Code (how the run went) or worse, as the outcome
// calls for. (The evidence command is "report"; this is a job's summary.)
func (cl *cli) summary(j *job, res *bulk.Result) int {
	code, c := res.Code, res.Counts
	statuses := map[string]int{}
	var rows [][]string
	for _, t := range res.Tasks {
		status := t.Status
		if status == "" {
			status = "filed"
			if !j.Wait {
				status = "filed (not followed)"
			}
		} else if status != string(mpgdpr.StatusSuccess) {
			code = worse(code, exitIncomplete)
		}
		statuses[status]++
		req, ids := strconv.Itoa(t.Chunk), strconv.Itoa(t.IDs)
		if t.Chunk == 0 {
			req, ids = "409", fmt.Sprintf("covers %d", t.Covering)
		}
		export := ""
		if t.Download != nil {
			export = t.Download.Path
			if t.Download.Files > 0 {
				export += " (" + words.Count(t.Download.Files, "file") + ")"
			}
		}
		if j.json {
			cl.jsonLine(taskLine{Type: "task", Command: j.Command, Kind: string(j.Kind), Request: t.Chunk, TaskID: t.ID,
				IDs: t.IDs, Covering: t.Covering, Status: t.Status, Export: pathOf(t.Download), ExportBytes: bytesOf(t.Download), ExportFiles: filesOf(t.Download)})
			continue
		}
		row := []string{req, t.ID, ids, status}
		if j.Kind == mpgdpr.Retrieval {
			row = append(row, orDash(export))
		}
		rows = append(rows, row)
	}
	if c.Unknown > 0 || c.Unsent > 0 || c.Refused > 0 {
		code = worse(code, exitIncomplete)
	}
	if j.Wait && len(res.Tasks) > 0 && statuses["filed"] > 0 {
		code = worse(code, exitIncomplete)
	}
	if j.json {
		cl.jsonLine(summaryLine{Type: "summary", Command: j.Command, Compliance: string(j.Compliance), Disclosure: string(j.Disclosure),
			IDs: c.Total, Duplicates: j.ids.duplicates, Filed: c.Filed, Covered: c.Covered, Refused: c.Refused,
			Unknown: c.Unknown, UnknownRequests: c.UnknownChunks, Unsent: c.Unsent, Tasks: len(res.Tasks),
			Statuses: statuses, Journal: res.Journal, Exit: code})
		return code
	}
	if len(rows) > 0 {
		header := []string{"REQUEST", "TASK ID", "IDS", "STATUS"}
		if j.Kind == mpgdpr.Retrieval {
			header = append(header, "EXPORT")
		}
		cl.table(header, rows)
	}
	var parts []string
	for s, n := range statuses {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(parts)
	fmt.Fprintf(cl.stdout, "%s %s: %s: %d filed in %s", j.Command, j.Compliance, words.Count(c.Total, "ID"), c.Filed, words.Count(len(res.Tasks), "task"))
	if c.Covered > 0 {
		fmt.Fprintf(cl.stdout, ", %d already covered by running deletions (409)", c.Covered)
	}
	if len(parts) > 0 {
		fmt.Fprintf(cl.stdout, "; tasks: %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(cl.stdout)
	if c.Refused > 0 {
		fmt.Fprintf(cl.stdout, "%s refused with 409 (a deletion is running for them): not retrieved\n", words.Count(c.Refused, "ID"))
	}
	if c.Unknown > 0 {
		again := "Re-run with --resubmit-unknown to file them again (a second export may result)"
		if j.Kind.Resubmittable() {
			again = "Run the same command again to file them again (where Mixpanel had filed them, its 409 names the task)"
		}
		fmt.Fprintf(cl.stdout, "%s in %s %s: outcome unknown, Mixpanel may or may not have filed them; they are in the journal. %s\n",
			words.Count(c.Unknown, "ID"), words.Noun(len(c.UnknownChunks), "request"), words.Ints(c.UnknownChunks), again)
	}
	if c.Unsent > 0 {
		fmt.Fprintf(cl.stdout, "%s not sent yet: run the same command again to send them\n", words.Count(c.Unsent, "ID"))
	}
	fmt.Fprintf(cl.stdout, "journal: %s\n", res.Journal)
	return code
}

type taskLine struct {
	Type        string `json:"type"`
	Command     string `json:"command,omitempty"`
	Kind        string `json:"kind"`
	Request     int    `json:"request,omitempty"`
	TaskID      string `json:"task_id"`
	IDs         int    `json:"ids,omitempty"`
	Covering    int    `json:"covering,omitempty"`
	Status      string `json:"status,omitempty"`
	Export      string `json:"export,omitempty"`
	ExportBytes int64  `json:"export_bytes,omitempty"`
	ExportFiles int    `json:"export_files,omitempty"`
	ExportReady bool   `json:"export_ready,omitempty"`
	Requested   string `json:"requested,omitempty"`
	Cancelled   *bool  `json:"cancelled,omitempty"`
	Result      string `json:"result,omitempty"` // cancel: cancelled, already cancelled, not cancellable (…)
	Error       string `json:"error,omitempty"`
}

type summaryLine struct {
	Type            string         `json:"type"`
	Command         string         `json:"command"`
	Compliance      string         `json:"compliance"`
	Disclosure      string         `json:"disclosure,omitempty"`
	IDs             int            `json:"ids"`
	Duplicates      int            `json:"duplicates"`
	Filed           int            `json:"filed"`
	Covered         int            `json:"covered"`
	Refused         int            `json:"refused"`
	Unknown         int            `json:"unknown"`
	UnknownRequests []int          `json:"unknown_requests,omitempty"`
	Unsent          int            `json:"unsent"`
	Tasks           int            `json:"tasks"`
	Statuses        map[string]int `json:"statuses"`
	Journal         string         `json:"journal"`
	Exit            int            `json:"exit"`
}

func pathOf(r *journal.Record) string {
	if r == nil {
		return ""
	}
	return r.Path
}

func bytesOf(r *journal.Record) int64 {
	if r == nil {
		return 0
	}
	return r.Bytes
}

func filesOf(r *journal.Record) int {
	if r == nil {
		return 0
	}
	return r.Files
}
