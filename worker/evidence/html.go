package evidence

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// HTMLOptions configure the HTML report.
type HTMLOptions struct {
	// Title heads the page (default "Data-subject requests: evidence").
	Title string
	// Hasher, if set, shows distinct IDs as their keyed hashes.
	Hasher *IDHasher
	// Now is the time the report is made as of (default time.Now()).
	Now time.Time
	// ChartRows is ignored: the charts are distributions of every request,
	// readable whatever their number.
	//
	// Deprecated: the charts no longer draw one bar per request.
	ChartRows int
	// Verification, if set, is shown at the top (the chains' state).
	Verification *Verification
}

// The outcomes the HTML page shows besides the deadline states: a request
// not completed whose worker (or job) gave up, or whose create's outcome
// is unknown. Either needs someone to act, whatever its deadline says, so
// the page never counts it on time or at risk.
const (
	OutcomeFailed  = "failed"
	OutcomeUnknown = "unknown"
	// OutcomeCancelled: cancelled before it was carried out; ended, not
	// done, and nothing to act on.
	OutcomeCancelled = "cancelled"
)

// Outcome is how the HTML page counts an evaluated record: OutcomeFailed
// or OutcomeUnknown for a request not completed that the source reports
// failed or unknown, otherwise its deadline state.
func Outcome(r *Record) string {
	if r.Cancelled() {
		return OutcomeCancelled
	}
	if !r.Completed() {
		switch r.SourceState {
		case OutcomeFailed:
			return OutcomeFailed
		case OutcomeUnknown:
			return OutcomeUnknown
		}
	}
	return string(r.Deadline.State)
}

// outcomes are the summary's columns, in order: those needing action first.
var outcomes = []string{OutcomeFailed, OutcomeUnknown, string(Overdue), string(AtRisk), string(OnTime), string(Met), string(MetLate), OutcomeCancelled}

// needsAction reports an outcome someone must act on.
func needsAction(o string) bool {
	return o == OutcomeFailed || o == OutcomeUnknown || o == string(Overdue)
}

// htmlRow is one request as the page holds it (in its embedded JSON).
type htmlRow struct {
	Ref       string  `json:"ref"`
	Project   string  `json:"project"`
	Kind      string  `json:"kind"`
	Reg       string  `json:"reg"`
	IDs       string  `json:"ids"`
	Received  string  `json:"received"`
	Filed     string  `json:"filed"`
	Tasks     string  `json:"tasks"`
	Status    string  `json:"status"`
	Completed string  `json:"completed"`
	Days      float64 `json:"days"` // -1 while open
	Due       string  `json:"due"`
	State     string  `json:"state"`  // the outcome (Outcome)
	DState    string  `json:"dstate"` // the deadline state
	Extended  string  `json:"extended"`
	Notes     int     `json:"notes"`

	by  time.Time
	dur time.Duration // receipt to completion (-1: open)
}

// maxAdvice caps the requests the page gives advice for one by one; the
// table (filtered by state) has every one.
const maxAdvice = 200

// advice is what the page says to do about one failed or unknown request.
type advice struct {
	Outcome, Ref, Project, Kind, Reg string
	Due, DState                      string
	// When is the create's time (unknown), or when it failed.
	When, WhenLabel string
	Detail          string
	// IDs are the distinct IDs to give Mixpanel support, when the report
	// does not hash them; Hashed says it does.
	IDs    []string
	Hashed bool
	// Purged: the worker keeps only the IDs' keyed hashes.
	Purged bool
}

type htmlWriter struct {
	w       io.Writer
	opt     HTMLOptions
	rows    []htmlRow
	advice  []advice
	actions int // failed and unknown requests, advice or not
}

// NewHTMLWriter writes the HTML report to w when closed: one self-contained
// page (inline CSS, SVG and script; nothing fetched, so it works offline
// and as an e-mail attachment) with a summary per project (failed and
// unknown requests apart, marked as needing action), what to do about
// each failed or unknown request, two charts (completed requests by time
// to complete, open ones by days left), and the table of requests,
// filterable and paged in the page itself. It keeps a small row per
// request in memory until Close (unlike the CSV and JSON Lines writers).
func NewHTMLWriter(w io.Writer, opt HTMLOptions) Writer {
	if opt.Title == "" {
		opt.Title = "Data-subject requests: evidence"
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	return &htmlWriter{w: w, opt: opt}
}

func (h *htmlWriter) Write(r *Record) error {
	ids := h.opt.Hasher.shown(r)
	shown := strings.Join(ids, ", ")
	if len(ids) > 3 {
		shown = strings.Join(ids[:3], ", ") + fmt.Sprintf(" and %d more", len(ids)-3)
	}
	if len(ids) == 0 && r.IDs > 0 {
		shown = fmt.Sprintf("%d IDs", r.IDs)
	}
	var tasks []string
	for _, t := range r.Tasks {
		s := t.TaskID
		if t.Origin == "conflict" {
			s += " (409)"
		}
		tasks = append(tasks, s)
	}
	st, _ := r.LastStatus()
	row := htmlRow{
		Ref: r.Reference, Project: r.Project, Kind: r.Kind, Reg: r.ComplianceType, IDs: shown,
		Received: fmtTime(r.ReceivedAt), Filed: fmtTime(r.FirstFiledAt()), Tasks: strings.Join(tasks, " "), Status: st,
		Completed: fmtTime(r.CompletedAt), Days: -1, State: Outcome(r), DState: string(r.Deadline.State), Notes: len(r.Notes),
		by: r.Deadline.By, dur: -1,
	}
	if r.Completed() {
		row.dur = r.TimeToComplete()
		row.Days = float64(int(row.dur.Hours()/24*100+0.5)) / 100
	}
	if !r.Deadline.Due.IsZero() {
		row.Due = r.Deadline.Due.Format("2006-01-02")
	}
	if r.Deadline.Extended && r.Extension != nil {
		row.Extended = r.Extension.Reason
	}
	h.rows = append(h.rows, row)
	if row.State == OutcomeFailed || row.State == OutcomeUnknown {
		h.actions++
		if len(h.advice) < maxAdvice {
			h.advice = append(h.advice, h.adviceFor(r, row))
		}
	}
	return nil
}

// adviceFor says what can be done about a failed or unknown request. The
// API has no call to list tasks: for an unknown create, only Mixpanel
// support can say whether the task exists, given the project, the
// create's time and the compliance type. The IDs are given only when the
// report does not hash them.
func (h *htmlWriter) adviceFor(r *Record, row htmlRow) advice {
	a := advice{Outcome: row.State, Ref: r.Reference, Project: r.Project, Kind: r.Kind, Reg: r.ComplianceType,
		Due: row.Due, DState: strings.ReplaceAll(row.DState, "_", " "), Hashed: h.opt.Hasher != nil, Purged: r.IDsKeyed}
	if !a.Hashed && !a.Purged {
		a.IDs = r.DistinctIDs
	}
	// The latest note of the outcome's kind says when and why.
	want := map[string]bool{workerdb.EventUnknown: true, "unsent": true}
	if a.Outcome == OutcomeFailed {
		want = map[string]bool{workerdb.EventFailed: true, workerdb.EventRefused: true, workerdb.EventExportError: true}
	}
	for _, n := range slices.Backward(r.Notes) {
		if !want[n.Event] {
			continue
		}
		a.Detail = hashIDsIn(h.opt.Hasher, r.DistinctIDs, n.Detail)
		a.When, a.WhenLabel = adviceTime(n.At), "failed at"
		if a.Outcome == OutcomeUnknown {
			a.WhenLabel = "outcome found unknown at"
			if sent, ok := workerdb.CreateSentAt(n.Detail); ok {
				a.When, a.WhenLabel = adviceTime(sent), "create sent at"
			}
		}
		break
	}
	return a
}

// adviceTime writes a time for a person to read out: "2026-03-12 12:02:00 UTC".
func adviceTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// ProjectSummary is one project's line of the HTML report's summary.
type ProjectSummary struct {
	Project string
	Total   int
	// Failed and Unknown count the requests not completed that failed or
	// whose outcome is unknown (Outcome), whatever their deadline; ByState
	// counts the others by deadline state, so that every request is
	// counted once. PastDeadline counts the failed and unknown ones whose
	// deadline has passed.
	Failed, Unknown, PastDeadline int
	ByState                       map[State]int
	// MedianDays and WorstDays are times to completion of the completed
	// requests, in days (-1: none completed).
	MedianDays, WorstDays float64
}

// count is the summary's figure for an outcome (a column of the page).
func (s ProjectSummary) count(outcome string) int {
	switch outcome {
	case OutcomeFailed:
		return s.Failed
	case OutcomeUnknown:
		return s.Unknown
	}
	return s.ByState[State(outcome)]
}

// Summarize computes the per-project summary of evaluated records (what
// the HTML report shows), sorted by project, with an "all projects" line
// last when there are several.
func Summarize(recs []*Record) []ProjectSummary {
	rows := make([]htmlRow, len(recs))
	for i, r := range recs {
		rows[i] = htmlRow{Project: r.Project, State: Outcome(r), DState: string(r.Deadline.State), dur: -1}
		if r.Completed() {
			rows[i].dur = r.TimeToComplete()
		}
	}
	return summarize(rows)
}

func summarize(rows []htmlRow) []ProjectSummary {
	by := map[string][]htmlRow{}
	for _, r := range rows {
		by[r.Project] = append(by[r.Project], r)
	}
	var names []string
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	one := func(name string, rs []htmlRow) ProjectSummary {
		s := ProjectSummary{Project: name, Total: len(rs), ByState: map[State]int{}, MedianDays: -1, WorstDays: -1}
		var ds []float64
		for _, r := range rs {
			switch r.State {
			case OutcomeFailed, OutcomeUnknown:
				if r.State == OutcomeFailed {
					s.Failed++
				} else {
					s.Unknown++
				}
				if r.DState == string(Overdue) {
					s.PastDeadline++
				}
			default:
				s.ByState[State(r.State)]++
			}
			if r.dur >= 0 {
				ds = append(ds, r.dur.Hours()/24)
			}
		}
		if len(ds) > 0 {
			slices.Sort(ds)
			if len(ds)%2 == 1 {
				s.MedianDays = ds[len(ds)/2]
			} else {
				s.MedianDays = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
			}
			s.WorstDays = ds[len(ds)-1]
		}
		return s
	}
	var out []ProjectSummary
	for _, n := range names {
		out = append(out, one(n, by[n]))
	}
	if len(names) > 1 {
		out = append(out, one("all projects", rows))
	}
	return out
}

func (h *htmlWriter) Close() error {
	sort.SliceStable(h.rows, func(i, j int) bool { return h.rows[i].Received < h.rows[j].Received })
	data, err := json.Marshal(h.rows) // escapes <, > and &: safe inside <script>
	if err != nil {
		return err
	}
	view := struct {
		Title, Generated string
		Outcomes         []string
		Summary          []ProjectSummary
		Advice           []advice
		MoreAdvice       int
		PastDeadline     int
		DoneChart        template.HTML
		OpenChart        template.HTML
		Data             template.JS
		Total            int
		Verification     []string
		VerifyOK         bool
	}{
		Title: h.opt.Title, Generated: fmtTime(h.opt.Now), Outcomes: outcomes,
		Summary: summarize(h.rows), Advice: h.advice, MoreAdvice: h.actions - len(h.advice),
		DoneChart: doneChart(h.rows), OpenChart: openChart(h.rows, h.opt.Now),
		Data: template.JS(data), Total: len(h.rows),
	}
	if n := len(view.Summary); n > 0 {
		view.PastDeadline = view.Summary[n-1].PastDeadline // all projects: the last line
	}
	if v := h.opt.Verification; v != nil {
		view.VerifyOK = v.OK() && v.Complete() // unproven rows need attention too
		view.Verification = strings.Split(strings.TrimSpace(v.String()), "\n")
	}
	bw := bufio.NewWriter(h.w)
	if err := pageTemplate.Execute(bw, view); err != nil {
		return err
	}
	return bw.Flush()
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"days": func(d float64) string {
		if d < 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", d)
	},
	// within says a time under a day in minutes or hours, beside its days.
	"within": func(d float64) string {
		switch {
		case d < 0 || d >= 1:
			return ""
		case d*24 < 1:
			return fmt.Sprintf(" (%.0f min)", d*24*60)
		}
		return fmt.Sprintf(" (%.1f h)", d*24)
	},
	"count": func(s ProjectSummary, o string) int { return s.count(o) },
	"label": func(o string) string { return outcomeLabel[o] },
	"needs": func(s ProjectSummary, o string) bool { return needsAction(o) && s.count(o) > 0 },
	"color": func(o string) string { return outcomeColor[o] },
}).Parse(pageHTML))
