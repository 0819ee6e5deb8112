package evidence

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// CSVColumns are the columns of the CSV report, in order. The set is
// stable: a later version only adds columns at the end. docs/REPORTS.md
// describes each.
var CSVColumns = []string{
	"reference", "project", "kind", "compliance_type", "ids", "distinct_ids", "ids_hashed",
	"received_at", "first_filed_at", "task_ids", "conflict_task_ids", "last_status", "last_status_at",
	"completed_at", "days_to_complete", "regulation", "deadline", "deadline_state",
	"extended", "extension_reason", "extension_notice_at", "deadline_note",
	"export_bytes", "export_sha256", "resubmissions", "notes", "source_state", "chain_hash",
}

type csvWriter struct {
	bw   *bufio.Writer
	cw   *csv.Writer
	h    *IDHasher
	head bool
}

// NewCSVWriter writes the CSV report to w: a header row of CSVColumns, then
// one row per record. With h, distinct IDs are shown as their keyed hashes.
func NewCSVWriter(w io.Writer, h *IDHasher) Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &csvWriter{bw: bw, cw: csv.NewWriter(bw), h: h}
}

func (c *csvWriter) Write(r *Record) error {
	if !c.head {
		c.head = true
		if err := c.cw.Write(CSVColumns); err != nil {
			return err
		}
	}
	ids, _ := json.Marshal(c.h.shown(r))
	if r.DistinctIDs == nil {
		ids = nil
	}
	var tasks, conflicts, shas []string
	var bytes int64
	for _, t := range r.Tasks {
		tasks = append(tasks, t.TaskID)
		if t.Origin == "conflict" {
			conflicts = append(conflicts, t.TaskID)
		}
		if t.ExportSHA256 != "" {
			shas = append(shas, t.ExportSHA256)
			bytes += t.ExportBytes
		}
	}
	var notes []string
	for _, n := range r.Notes {
		s := fmtTime(n.At) + " " + n.Event
		if n.TaskID != "" {
			s += " " + n.TaskID
		}
		if n.Detail != "" {
			s += ": " + hashIDsIn(c.h, r.plainIDs(), n.Detail)
		}
		notes = append(notes, s)
	}
	last, lastAt := r.LastStatus()
	var ttc, extReason, extAt, due, exp string
	if r.Completed() {
		ttc = days(r.TimeToComplete())
	}
	if r.Extension != nil {
		extReason, extAt = r.Extension.Reason, fmtTime(r.Extension.NoticeAt)
	}
	if !r.Deadline.Due.IsZero() {
		due = r.Deadline.Due.Format("2006-01-02")
	}
	if len(shas) > 0 {
		exp = strconv.FormatInt(bytes, 10)
	}
	row := []string{
		r.Reference, r.Project, r.Kind, r.ComplianceType, strconv.Itoa(r.IDs), string(ids), strconv.FormatBool(c.h != nil),
		fmtTime(r.ReceivedAt), fmtTime(r.FirstFiledAt()), strings.Join(tasks, " "), strings.Join(conflicts, " "), last, fmtTime(lastAt),
		fmtTime(r.CompletedAt), ttc, r.Deadline.Regulation, due, string(r.Deadline.State),
		strconv.FormatBool(r.Deadline.Extended), extReason, extAt, r.Deadline.Note,
		exp, strings.Join(shas, " "), strconv.Itoa(r.Resubmissions), strings.Join(notes, " | "), r.SourceState, r.ChainHash,
	}
	if len(row) != len(CSVColumns) {
		return fmt.Errorf("evidence: internal error: %d CSV cells for %d columns", len(row), len(CSVColumns))
	}
	return c.cw.Write(row)
}

func (c *csvWriter) Close() error {
	if !c.head {
		c.head = true
		if err := c.cw.Write(CSVColumns); err != nil {
			return err
		}
	}
	c.cw.Flush()
	if err := c.cw.Error(); err != nil {
		return err
	}
	return c.bw.Flush()
}
