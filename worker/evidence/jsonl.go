package evidence

import (
	"bufio"
	"encoding/json"
	"io"
)

// JSONVersion is the "v" of every JSON Lines record (docs/REPORTS.md has
// the schema). It changes only when a field changes meaning or goes away;
// new fields may be added within a version.
const JSONVersion = 1

// JSONRecord is one line of the JSON Lines report.
type JSONRecord struct {
	V              int          `json:"v"`
	Reference      string       `json:"reference"`
	Project        string       `json:"project"`
	Kind           string       `json:"kind"`
	ComplianceType string       `json:"compliance_type"`
	IDs            int          `json:"ids"`
	DistinctIDs    []string     `json:"distinct_ids"`
	IDsHashed      bool         `json:"ids_hashed"`
	ReceivedAt     string       `json:"received_at"`
	Tasks          []JSONTask   `json:"tasks"`
	CompletedAt    *string      `json:"completed_at"`
	DaysToComplete *float64     `json:"days_to_complete"`
	Deadline       JSONDeadline `json:"deadline"`
	Resubmissions  int          `json:"resubmissions"`
	Notes          []JSONNote   `json:"notes"`
	SourceState    string       `json:"source_state"`
	ChainHash      string       `json:"chain_hash,omitempty"`
}

// JSONTask is a covering task in a JSONRecord.
type JSONTask struct {
	TaskID       string       `json:"task_id"`
	Origin       string       `json:"origin"`
	FiledAt      string       `json:"filed_at,omitempty"`
	Statuses     []JSONStatus `json:"statuses"`
	DoneAt       string       `json:"done_at,omitempty"`
	ExportBytes  int64        `json:"export_bytes,omitempty"`
	ExportSHA256 string       `json:"export_sha256,omitempty"`
}

// JSONStatus is a status seen.
type JSONStatus struct {
	Status string `json:"status"`
	At     string `json:"at"`
}

// JSONNote is a Note.
type JSONNote struct {
	At     string `json:"at"`
	Event  string `json:"event"`
	TaskID string `json:"task_id,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// JSONDeadline is a Deadline with its extension.
type JSONDeadline struct {
	Regulation string         `json:"regulation"`
	Due        string         `json:"due,omitempty"` // YYYY-MM-DD, the last day
	By         string         `json:"by,omitempty"`  // the instant completion must precede
	State      string         `json:"state"`
	Extended   bool           `json:"extended"`
	Extension  *JSONExtension `json:"extension"`
	Note       string         `json:"note,omitempty"`
}

// JSONExtension is a recorded extension.
type JSONExtension struct {
	Reason   string `json:"reason"`
	NoticeAt string `json:"notice_at"`
}

// ToJSON is the JSON Lines form of an evaluated record, IDs hashed with h
// (nil: as they are).
func ToJSON(r *Record, h *IDHasher) JSONRecord {
	j := JSONRecord{
		V: JSONVersion, Reference: r.Reference, Project: r.Project, Kind: r.Kind, ComplianceType: r.ComplianceType,
		IDs: r.IDs, DistinctIDs: h.shown(r), IDsHashed: h != nil || r.IDsKeyed, ReceivedAt: fmtTime(r.ReceivedAt),
		Tasks: []JSONTask{}, Notes: []JSONNote{}, Resubmissions: r.Resubmissions, SourceState: r.SourceState, ChainHash: r.ChainHash,
	}
	if j.DistinctIDs == nil {
		j.DistinctIDs = []string{}
	}
	for _, t := range r.Tasks {
		jt := JSONTask{TaskID: t.TaskID, Origin: t.Origin, FiledAt: fmtTime(t.FiledAt), DoneAt: fmtTime(t.DoneAt),
			ExportBytes: t.ExportBytes, ExportSHA256: t.ExportSHA256, Statuses: []JSONStatus{}}
		for _, s := range t.Statuses {
			jt.Statuses = append(jt.Statuses, JSONStatus{s.Status, fmtTime(s.At)})
		}
		j.Tasks = append(j.Tasks, jt)
	}
	if r.Completed() {
		c := fmtTime(r.CompletedAt)
		d := r.TimeToComplete().Hours() / 24
		j.CompletedAt, j.DaysToComplete = &c, &d
	}
	for _, n := range r.Notes {
		j.Notes = append(j.Notes, JSONNote{fmtTime(n.At), n.Event, n.TaskID, hashIDsIn(h, r.plainIDs(), n.Detail)})
	}
	dl := r.Deadline
	j.Deadline = JSONDeadline{Regulation: dl.Regulation, State: string(dl.State), Extended: dl.Extended, Note: dl.Note}
	if !dl.Due.IsZero() {
		j.Deadline.Due, j.Deadline.By = dl.Due.Format("2006-01-02"), fmtTime(dl.By)
	}
	if e := r.Extension; e != nil {
		j.Deadline.Extension = &JSONExtension{e.Reason, fmtTime(e.NoticeAt)}
	}
	return j
}

type jsonlWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
	h   *IDHasher
}

// NewJSONLWriter writes the JSON Lines report to w: one JSONRecord per
// line. With h, distinct IDs are shown as their keyed hashes.
func NewJSONLWriter(w io.Writer, h *IDHasher) Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &jsonlWriter{bw: bw, enc: json.NewEncoder(bw), h: h}
}

func (j *jsonlWriter) Write(r *Record) error { return j.enc.Encode(ToJSON(r, j.h)) }
func (j *jsonlWriter) Close() error          { return j.bw.Flush() }
