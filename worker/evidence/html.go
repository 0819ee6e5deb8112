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
)

// HTMLOptions configure the HTML report.
type HTMLOptions struct {
	// Title heads the page (default "Data-subject requests: evidence").
	Title string
	// Hasher, if set, shows distinct IDs as their keyed hashes.
	Hasher *IDHasher
	// Now is the time the report is made as of (default time.Now()).
	Now time.Time
	// ChartRows caps the requests drawn in the chart (default 200); the
	// table always has every one.
	ChartRows int
	// Verification, if set, is shown at the top (the chains' state).
	Verification *Verification
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
	State     string  `json:"state"`
	Extended  string  `json:"extended"`
	Notes     int     `json:"notes"`

	received, completed, by time.Time
	dur                     float64 // days to complete, unrounded (-1: open)
}

type htmlWriter struct {
	w    io.Writer
	opt  HTMLOptions
	rows []htmlRow
}

// NewHTMLWriter writes the HTML report to w when closed: one self-contained
// page (inline CSS, SVG and script; nothing fetched, so it works offline
// and as an e-mail attachment) with a summary per project, a chart of the
// requests over time against their deadlines, and the table of requests,
// filterable and paged in the page itself. It keeps a small row per
// request in memory until Close (unlike the CSV and JSON Lines writers).
func NewHTMLWriter(w io.Writer, opt HTMLOptions) Writer {
	if opt.Title == "" {
		opt.Title = "Data-subject requests: evidence"
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.ChartRows <= 0 {
		opt.ChartRows = 200
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
		Completed: fmtTime(r.CompletedAt), Days: -1, State: string(r.Deadline.State), Notes: len(r.Notes),
		received: r.ReceivedAt, completed: r.CompletedAt, by: r.Deadline.By, dur: -1,
	}
	if r.Completed() {
		row.dur = r.TimeToComplete().Hours() / 24
		row.Days = float64(int(row.dur*100+0.5)) / 100
	}
	if !r.Deadline.Due.IsZero() {
		row.Due = r.Deadline.Due.Format("2006-01-02")
	}
	if r.Deadline.Extended && r.Extension != nil {
		row.Extended = r.Extension.Reason
	}
	h.rows = append(h.rows, row)
	return nil
}

// ProjectSummary is one project's line of the HTML report's summary.
type ProjectSummary struct {
	Project string
	Total   int
	ByState map[State]int
	// MedianDays and WorstDays are times to completion of the completed
	// requests, in days (-1: none completed).
	MedianDays, WorstDays float64
}

// Summarize computes the per-project summary of evaluated records (what
// the HTML report shows), sorted by project, with an "all projects" line
// last when there are several.
func Summarize(recs []*Record) []ProjectSummary {
	rows := make([]htmlRow, len(recs))
	for i, r := range recs {
		rows[i] = htmlRow{Project: r.Project, State: string(r.Deadline.State), dur: -1}
		if r.Completed() {
			rows[i].dur = r.TimeToComplete().Hours() / 24
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
			s.ByState[State(r.State)]++
			if r.dur >= 0 {
				ds = append(ds, r.dur)
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
	sort.SliceStable(h.rows, func(i, j int) bool { return h.rows[i].received.Before(h.rows[j].received) })
	data, err := json.Marshal(h.rows) // escapes <, > and &: safe inside <script>
	if err != nil {
		return err
	}
	view := struct {
		Title, Generated string
		States           []State
		Summary          []ProjectSummary
		Chart            template.HTML
		Data             template.JS
		Total            int
		Verification     []string
		VerifyOK         bool
	}{
		Title: h.opt.Title, Generated: fmtTime(h.opt.Now), States: States,
		Summary: summarize(h.rows), Chart: h.chart(), Data: template.JS(data), Total: len(h.rows),
	}
	if v := h.opt.Verification; v != nil {
		view.VerifyOK = v.OK()
		view.Verification = strings.Split(strings.TrimSpace(v.String()), "\n")
	}
	bw := bufio.NewWriter(h.w)
	if err := pageTemplate.Execute(bw, view); err != nil {
		return err
	}
	return bw.Flush()
}

var stateColor = map[string]string{
	string(OnTime): "#2b7bb9", string(AtRisk): "#e69f00", string(Overdue): "#c0392b",
	string(Met): "#2e8b57", string(MetLate): "#8e44ad", "": "#888888",
}

// chart draws up to ChartRows requests as bars from receipt to completion
// (or now), each with a tick at its deadline, as inline SVG.
func (h *htmlWriter) chart() template.HTML {
	rows := h.rows
	if len(rows) == 0 {
		return template.HTML(`<p>No requests.</p>`)
	}
	if len(rows) > h.opt.ChartRows {
		rows = rows[:h.opt.ChartRows]
	}
	lo, hi := rows[0].received, h.opt.Now
	for _, r := range rows {
		if r.received.Before(lo) {
			lo = r.received
		}
		for _, t := range []time.Time{r.completed, r.by} {
			if t.After(hi) {
				hi = t
			}
		}
	}
	if !hi.After(lo) {
		hi = lo.Add(24 * time.Hour)
	}
	const left, width, top, rowH = 40.0, 900.0, 20.0, 4.0
	x := func(t time.Time) float64 { return left + width*float64(t.Sub(lo))/float64(hi.Sub(lo)) }
	height := top + rowH*float64(len(rows)) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="100%%" role="img" aria-label="Requests over time against their deadlines">`, left*2+width, height)
	// Axis: ticks at up to 8 dates.
	span := hi.Sub(lo)
	for i := 0; i <= 6; i++ {
		t := lo.Add(span * time.Duration(i) / 6)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x(t), top-5, x(t), height-25)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#555">%s</text>`, x(t), height-12, t.UTC().Format("2006-01-02"))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.1f" stroke="#333" stroke-dasharray="3,2"/><text x="%.1f" y="12" font-size="10" fill="#333" text-anchor="middle">now</text>`,
		x(h.opt.Now), top-5, x(h.opt.Now), height-25, x(h.opt.Now))
	for i, r := range rows {
		y := top + rowH*float64(i) + rowH/2
		end := r.completed
		if end.IsZero() {
			end = h.opt.Now
		}
		fmt.Fprintf(&b, `<line class="bar" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"><title>%s</title></line>`,
			x(r.received), y, max(x(end), x(r.received)+1), y, stateColor[r.State], template.HTMLEscapeString(r.Project+" "+r.Ref+": "+r.State))
		if !r.by.IsZero() {
			fmt.Fprintf(&b, `<line class="deadline" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-width="1.5"/>`, x(r.by), y-2, x(r.by), y+2)
		}
	}
	b.WriteString(`</svg>`)
	if len(rows) < len(h.rows) {
		fmt.Fprintf(&b, `<p class="note">The chart shows the first %d of %d requests (by time of receipt); the table has all.</p>`, len(rows), len(h.rows))
	}
	return template.HTML(b.String())
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"days": func(d float64) string {
		if d < 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", d)
	},
	"count": func(m map[State]int, s State) int { return m[s] },
	"label": func(s State) string { return strings.ReplaceAll(string(s), "_", " ") },
}).Parse(pageHTML))
