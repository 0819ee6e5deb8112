package evidence

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// The HTML page's two charts are distributions, not timelines, so that
// they read the same whether requests complete in minutes or in weeks:
// completed requests by time to complete (met or late against their
// deadline), and open requests by days left to their deadline (by
// outcome). Each is a horizontal bar per bin, drawn as inline SVG.

const day = 24 * time.Hour

// durationBins bound the completed chart's bins (each bin is up to its
// bound, the last is open): fine in minutes and hours, then days up to the
// legal periods (GDPR's month ends within 28–31 days, CCPA's 45 days).
var durationBins = []struct {
	label string
	upTo  time.Duration
}{
	{"under 1 minute", time.Minute},
	{"1–10 minutes", 10 * time.Minute},
	{"10–60 minutes", time.Hour},
	{"1–6 hours", 6 * time.Hour},
	{"6–24 hours", day},
	{"1–3 days", 3 * day},
	{"3–7 days", 7 * day},
	{"7–14 days", 14 * day},
	{"14–21 days", 21 * day},
	{"21–28 days", 28 * day},
	{"28–31 days", 31 * day},
	{"31–45 days", 45 * day},
	{"45–90 days", 90 * day},
	{"90 days or more", math.MaxInt64},
}

// daysLeftBins bound the open chart's bins by whole days left to the
// deadline (negative: past it), each up to and including its bound.
var daysLeftBins = []struct {
	label string
	upTo  int
}{
	{"overdue by more than 7 days", -8},
	{"overdue by 1–7 days", -1},
	{"0–7 days left", 7},
	{"8–14 days left", 14},
	{"15–21 days left", 21},
	{"22–31 days left", 31},
	{"32–45 days left", 45},
	{"more than 45 days left", math.MaxInt},
	{"no deadline", math.MaxInt},
}

// chartBin is one bar: its label and its count per segment.
type chartBin struct {
	label string
	by    map[string]int
}

func (b chartBin) total() int {
	n := 0
	for _, v := range b.by {
		n += v
	}
	return n
}

var outcomeLabel = map[string]string{
	OutcomeFailed: "failed", OutcomeUnknown: "unknown outcome", string(Overdue): "overdue", string(AtRisk): "at risk",
	string(OnTime): "on time", string(Met): "met", string(MetLate): "met late", OutcomeCancelled: "cancelled", "": "no deadline",
}

var outcomeColor = map[string]string{
	OutcomeFailed: "#7b241c", OutcomeUnknown: "#ad1457", string(Overdue): "#c0392b", string(AtRisk): "#e69f00",
	string(OnTime): "#2b7bb9", string(Met): "#2e8b57", string(MetLate): "#8e44ad", OutcomeCancelled: "#666666", "": "#888888",
}

// doneChart: completed requests by time from receipt to completion, each
// bar split into met and met late. Only the bins from the first to the
// last non-empty one are drawn.
func doneChart(rows []htmlRow) template.HTML {
	bins := make([]chartBin, len(durationBins))
	for i, b := range durationBins {
		bins[i] = chartBin{label: b.label, by: map[string]int{}}
	}
	for _, r := range rows {
		if r.dur < 0 {
			continue
		}
		for i, b := range durationBins {
			if r.dur < b.upTo {
				bins[i].by[r.State]++
				break
			}
		}
	}
	lo, hi := -1, -1
	for i, b := range bins {
		if b.total() > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	if lo < 0 {
		return template.HTML(`<p class="note" id="chart-done-empty">No request completed yet.</p>`)
	}
	return barChart("chart-done", "Completed requests by time to complete", bins[lo:hi+1], []string{string(Met), string(MetLate)})
}

// openChart: requests not completed by whole days left to their deadline,
// each bar split by outcome (failed and unknown apart). Every bin is drawn,
// so that the scale reads the same from one report to the next.
func openChart(rows []htmlRow, now time.Time) template.HTML {
	bins := make([]chartBin, len(daysLeftBins))
	for i, b := range daysLeftBins {
		bins[i] = chartBin{label: b.label, by: map[string]int{}}
	}
	open := 0
	for _, r := range rows {
		if r.dur >= 0 {
			continue
		}
		open++
		if r.by.IsZero() {
			bins[len(bins)-1].by[r.State]++
			continue
		}
		left := int(math.Floor(float64(r.by.Sub(now)) / float64(day)))
		for i, b := range daysLeftBins[:len(daysLeftBins)-1] {
			if left <= b.upTo {
				bins[i].by[r.State]++
				break
			}
		}
	}
	if open == 0 {
		return template.HTML(`<p class="note" id="chart-open-empty">No open request.</p>`)
	}
	if bins[len(bins)-1].total() == 0 {
		bins = bins[:len(bins)-1]
	}
	return barChart("chart-open", "Open requests by days left to their deadline", bins,
		[]string{OutcomeFailed, OutcomeUnknown, string(Overdue), string(AtRisk), string(OnTime), ""})
}

// barChart draws bins as horizontal stacked bars, one segment per key of
// order present, with the bin's count at the end of the bar. A bar of one
// request is still visible (its width has a floor).
func barChart(id, title string, bins []chartBin, order []string) template.HTML {
	const labelW, barW, countW, rowH, top = 190.0, 620.0, 60.0, 24.0, 8.0
	most := 0
	for _, b := range bins {
		most = max(most, b.total())
	}
	height := top*2 + rowH*float64(len(bins))
	var s strings.Builder
	fmt.Fprintf(&s, `<svg id="%s" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="100%%" style="max-width:%.0fpx" role="img" aria-label="%s">`,
		id, labelW+barW+countW, height, labelW+barW+countW, template.HTMLEscapeString(title))
	for i, b := range bins {
		y := top + rowH*float64(i)
		n := b.total()
		fmt.Fprintf(&s, `<g class="bin" data-bin="%s" data-count="%d">`, template.HTMLEscapeString(b.label), n)
		fmt.Fprintf(&s, `<text x="%.0f" y="%.1f" font-size="12" text-anchor="end" fill="#333">%s</text>`, labelW-8, y+rowH/2+4, template.HTMLEscapeString(b.label))
		fmt.Fprintf(&s, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, labelW, y+rowH/2, labelW+barW, y+rowH/2)
		x := labelW
		for _, k := range order {
			c := b.by[k]
			if c == 0 {
				continue
			}
			w := max(barW*float64(c)/float64(most), 3)
			fmt.Fprintf(&s, `<rect class="seg" data-outcome="%s" data-count="%d" x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s"><title>%d %s</title></rect>`,
				k, c, x, y+4, w, rowH-8, outcomeColor[k], c, outcomeLabel[k])
			x += w
		}
		if n > 0 {
			fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" font-size="12" fill="#222">%d</text>`, x+6, y+rowH/2+4, n)
		}
		s.WriteString(`</g>`)
	}
	s.WriteString(`</svg>`)
	// The legend: the segments this chart uses.
	s.WriteString(`<p class="legend note">`)
	for _, k := range order {
		used := false
		for _, b := range bins {
			used = used || b.by[k] > 0
		}
		if used {
			fmt.Fprintf(&s, `<span><i style="background:%s"></i>%s</span>`, outcomeColor[k], outcomeLabel[k])
		}
	}
	s.WriteString(`</p>`)
	return template.HTML(s.String())
}
