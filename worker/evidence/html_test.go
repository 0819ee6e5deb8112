package evidence

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// sampleRecords is a varied set: two projects, GDPR and CCPA, every state.
func sampleRecords(now time.Time) []*Record {
	var recs []*Record
	for i := range 120 {
		project := "web"
		if i%3 == 0 {
			project = "app-eu"
		}
		ct := "GDPR"
		if i%4 == 0 {
			ct = "CCPA"
		}
		received := now.AddDate(0, 0, -(i%60)-1).Add(-time.Duration(i) * time.Hour)
		r := &Record{Reference: fmt.Sprintf("DSR-%03d", i), Project: project, Kind: "deletion", ComplianceType: ct,
			DistinctIDs: []string{fmt.Sprintf("user-%d@example.com", i)}, IDs: 1, ReceivedAt: received, SourceState: "open",
			Tasks: []Task{{TaskID: fmt.Sprintf("task-%d", i), Origin: "filed", FiledAt: received.Add(time.Minute),
				Statuses: []StatusSeen{{"PENDING", received.Add(2 * time.Minute)}}}}}
		switch i % 5 {
		case 0, 1, 2: // completed after i%40 days
			r.CompletedAt = received.Add(time.Duration(i%40)*24*time.Hour + time.Hour)
			if !r.CompletedAt.Before(now) {
				r.CompletedAt = now.Add(-time.Duration(i) * time.Minute)
			}
			r.SourceState = "done"
			r.Tasks[0].Statuses = append(r.Tasks[0].Statuses, StatusSeen{"SUCCESS", r.CompletedAt})
		}
		if i == 7 {
			r.Extension = &Extension{Reference: r.Reference, Reason: "complex request", NoticeAt: received.Add(time.Hour)}
		}
		recs = append(recs, r)
	}
	return recs
}

func renderHTML(t *testing.T, recs []*Record, now time.Time) (string, []*Record) {
	t.Helper()
	var buf bytes.Buffer
	pol := NewPolicy()
	if _, err := Generate(context.Background(), SliceSource(recs), pol, Filter{}, now, NewHTMLWriter(&buf, HTMLOptions{Now: now})); err != nil {
		t.Fatal(err)
	}
	return buf.String(), recs
}

func TestHTMLSelfContained(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	page, _ := renderHTML(t, sampleRecords(now), now)
	for _, bad := range []string{"<link", "src=", "@import", "url(", "https://", "http://"} {
		if bad == "http://" {
			// The SVG namespace is a name, not a fetch.
			page = strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
		}
		if strings.Contains(page, bad) {
			t.Errorf("page has %q: it must not fetch anything", bad)
		}
	}
	// A reference that tries to close the script is inert.
	recs := []*Record{{Reference: "</script><script>alert(1)</script>", Project: "p", ComplianceType: "GDPR", ReceivedAt: now}}
	page, _ = renderHTML(t, recs, now)
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a reference broke out of the data script")
	}
}

// chromium finds the browser; without one the test is skipped, except in
// CI, where it must run.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium in PATH: `make deps` installs Debian's package (as root)")
	}
	t.Skip("no chromium in PATH (make deps installs it)")
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // only stops a hung browser
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// artifactDir is where browser screenshots go: $MPGDPR_TEST_ARTIFACTS, or
// a directory under the system's temporary directory.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("MPGDPR_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mpgdpr-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantOutcome is the test's own reading of how the page counts a record.
func wantOutcome(r *Record) string {
	switch {
	case !r.Completed() && r.SourceState == "failed":
		return "failed"
	case !r.Completed() && r.SourceState == "unknown":
		return "unknown"
	}
	return string(r.Deadline.State)
}

// The bins the charts are documented to have (docs/REPORTS.md).
func wantDoneBin(d time.Duration) string {
	h := time.Hour
	for _, b := range []struct {
		upTo  time.Duration
		label string
	}{{time.Minute, "under 1 minute"}, {10 * time.Minute, "1–10 minutes"}, {h, "10–60 minutes"}, {6 * h, "1–6 hours"}, {24 * h, "6–24 hours"},
		{72 * h, "1–3 days"}, {7 * 24 * h, "3–7 days"}, {14 * 24 * h, "7–14 days"}, {21 * 24 * h, "14–21 days"}, {28 * 24 * h, "21–28 days"},
		{31 * 24 * h, "28–31 days"}, {45 * 24 * h, "31–45 days"}, {90 * 24 * h, "45–90 days"}} {
		if d < b.upTo {
			return b.label
		}
	}
	return "90 days or more"
}

func wantOpenBin(r *Record, now time.Time) string {
	if r.Deadline.By.IsZero() {
		return "no deadline"
	}
	left := r.Deadline.By.Sub(now)
	days := int(left / (24 * time.Hour))
	if left < 0 && left%(24*time.Hour) != 0 {
		days-- // whole days, rounded down
	}
	switch {
	case days < -7:
		return "overdue by more than 7 days"
	case days < 0:
		return "overdue by 1–7 days"
	case days <= 7:
		return "0–7 days left"
	case days <= 14:
		return "8–14 days left"
	case days <= 21:
		return "15–21 days left"
	case days <= 31:
		return "22–31 days left"
	case days <= 45:
		return "32–45 days left"
	}
	return "more than 45 days left"
}

// unknownRetrieval is a retrieval whose create's outcome is unknown, as
// the worker records it.
func unknownRetrieval(ref, project, id string, received, sent time.Time) *Record {
	return &Record{Reference: ref, Project: project, Kind: "retrieval", ComplianceType: "GDPR", DistinctIDs: []string{id}, IDs: 1,
		ReceivedAt: received, SourceState: "unknown",
		Notes: []Note{{At: sent.Add(30 * time.Second), Event: "unknown", Detail: workerdb.UnknownCreateDetail(sent, "the create's outcome is unknown")}}}
}

// purgedHash stands for a keyed hash the worker's purge left in place of
// an ID.
const purgedHash = "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592"

// purgedUnknown is an unknown retrieval ended long ago whose IDs the
// worker purged (replaced by their keyed hashes).
func purgedUnknown(received time.Time) *Record {
	r := unknownRetrieval("M-purged", "web", purgedHash, received, received.Add(time.Minute))
	r.IDsKeyed = true
	return r
}

func failedDeletion(ref, project, id string, received time.Time) *Record {
	return &Record{Reference: ref, Project: project, Kind: "deletion", ComplianceType: "CCPA", DistinctIDs: []string{id}, IDs: 1,
		ReceivedAt: received, SourceState: "failed",
		Tasks: []Task{{TaskID: "task-" + ref, Origin: "filed", FiledAt: received.Add(time.Minute), Statuses: []StatusSeen{{"FAILURE", received.Add(time.Hour)}}}},
		Notes: []Note{{At: received.Add(time.Hour), Event: "failed", TaskID: "task-" + ref, Detail: "task ended FAILURE for " + id}}}
}

// sameDayRecords: every request received today, completed within minutes
// or hours, a few open, one unknown retrieval and one failed deletion.
func sameDayRecords(now time.Time) []*Record {
	var recs []*Record
	for i, d := range []time.Duration{30 * time.Second, 4 * time.Minute, 4 * time.Minute, 9 * time.Minute, 25 * time.Minute, 45 * time.Minute, 2 * time.Hour, 3 * time.Hour, 7 * time.Hour} {
		received := now.Add(-d - time.Duration(10+i)*time.Minute)
		recs = append(recs, &Record{Reference: fmt.Sprintf("SD-%02d", i), Project: "web", Kind: "deletion", ComplianceType: "GDPR",
			DistinctIDs: []string{fmt.Sprintf("same-day-%d@example.com", i)}, IDs: 1, ReceivedAt: received, SourceState: "done", CompletedAt: received.Add(d),
			Tasks: []Task{{TaskID: fmt.Sprintf("t-%d", i), Origin: "filed", FiledAt: received, Statuses: []StatusSeen{{"SUCCESS", received.Add(d)}}}}})
	}
	for i, ct := range []string{"GDPR", "GDPR", "GDPR", "CCPA"} {
		recs = append(recs, &Record{Reference: fmt.Sprintf("SD-open-%d", i), Project: "web", Kind: "deletion", ComplianceType: ct,
			DistinctIDs: []string{fmt.Sprintf("open-%d@example.com", i)}, IDs: 1, ReceivedAt: now.Add(-time.Duration(i+1) * time.Hour), SourceState: "open"})
	}
	recs = append(recs, unknownRetrieval("SD-unknown", "web", "lost-answer@example.com", now.Add(-5*time.Hour), now.Add(-4*time.Hour)),
		failedDeletion("SD-failed", "web", "failed-person@example.com", now.Add(-6*time.Hour)))
	return recs
}

// thirtyDayRecords: requests received over 30 days (and a few older, now
// overdue), completed within hours to weeks, some met late, two unknown
// retrievals and two failed deletions (one past its deadline).
func thirtyDayRecords(now time.Time) []*Record {
	recs := sampleRecords(now)[:90]
	for _, r := range recs {
		if r.SourceState == "open" && r.ReceivedAt.Before(now.AddDate(0, 0, -50)) {
			r.ReceivedAt = now.AddDate(0, 0, -40)
		}
	}
	return append(recs,
		unknownRetrieval("M-unknown-1", "web", "lost-1@example.com", now.AddDate(0, 0, -3), now.AddDate(0, 0, -3).Add(2*time.Minute)),
		unknownRetrieval("M-unknown-2", "app-eu", "lost-2@example.com", now.AddDate(0, 0, -40), now.AddDate(0, 0, -40).Add(time.Minute)),
		purgedUnknown(now.AddDate(0, 0, -70)),
		failedDeletion("M-failed-1", "web", "failed-1@example.com", now.AddDate(0, 0, -10)),
		failedDeletion("M-failed-2", "app-eu", "failed-2@example.com", now.AddDate(0, 0, -60)))
}

// dumpDOM renders page in headless Chromium and returns the DOM after its
// script ran, and the page's file.
func dumpDOM(t *testing.T, bin, page, hash string) (string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	return string(runChromium(t, bin, "--dump-dom", "file://"+file+hash)), file
}

// checkSummary compares the rendered summary with the records' figures,
// computed here independently of the writer, and returns them.
func checkSummary(t *testing.T, dom string, recs []*Record) map[string]map[string]int {
	t.Helper()
	want := map[string]map[string]int{}
	days := map[string][]float64{}
	for _, r := range recs {
		for _, p := range []string{r.Project, "all projects"} {
			if want[p] == nil {
				want[p] = map[string]int{}
			}
			want[p]["total"]++
			want[p][wantOutcome(r)]++
			if r.Completed() {
				days[p] = append(days[p], r.TimeToComplete().Hours()/24)
			}
		}
	}
	if len(want) == 2 { // one project: no "all projects" line
		for p := range want {
			if p != "all projects" {
				delete(want, "all projects")
				break
			}
		}
	}
	cell := func(project, key string) (string, string, bool) {
		m := regexp.MustCompile(`<tr data-project="` + regexp.QuoteMeta(project) + `">.*?<td class="([^"]*)" data-k="` + key + `">([^<]*)(?:<span class="note">[^<]*</span>)?</td>`).FindStringSubmatch(dom)
		if m == nil {
			return "", "", false
		}
		return m[1], m[2], true
	}
	for project, counts := range want {
		for _, key := range []string{"total", "failed", "unknown", "overdue", "at_risk", "on_time", "met", "met_late"} {
			class, text, ok := cell(project, key)
			if !ok {
				t.Errorf("%s: no %s cell in the rendered page", project, key)
				continue
			}
			if text != strconv.Itoa(counts[key]) {
				t.Errorf("%s %s: rendered %q, want %d", project, key, text, counts[key])
			}
			// Failed, unknown and overdue requests are marked as needing action.
			needs := (key == "failed" || key == "unknown" || key == "overdue") && counts[key] > 0
			if strings.Contains(class, "needs") != needs {
				t.Errorf("%s %s: class %q, needing action %v", project, key, class, needs)
			}
		}
		ds := append([]float64(nil), days[project]...)
		sort.Float64s(ds)
		med, worst := "–", "–"
		if n := len(ds); n > 0 {
			m := ds[n/2]
			if n%2 == 0 {
				m = (ds[n/2-1] + ds[n/2]) / 2
			}
			med, worst = fmt.Sprintf("%.2f", m), fmt.Sprintf("%.2f", ds[n-1])
		}
		for key, w := range map[string]string{"median": med, "worst": worst} {
			if _, text, _ := cell(project, key); text != w {
				t.Errorf("%s %s: rendered %q, want %q", project, key, text, w)
			}
		}
		// Under a day, the time is also said in minutes or hours.
		if len(ds) > 0 && ds[len(ds)-1] < 1 {
			want := fmt.Sprintf(`data-k="worst">%s<span class="note"> (`, worst)
			if !strings.Contains(dom, want) {
				t.Errorf("%s: the worst time, under a day, is not said in minutes or hours", project)
			}
		}
	}
	return want
}

// checkCharts compares the rendered charts' bars with the records' bins,
// and wants every bar drawn with a visible width.
func checkCharts(t *testing.T, dom string, recs []*Record, now time.Time) (done, open map[string]int) {
	t.Helper()
	done, open = map[string]int{}, map[string]int{}
	for _, r := range recs {
		if r.Completed() {
			done[wantDoneBin(r.TimeToComplete())]++
		} else {
			open[wantOpenBin(r, now)]++
		}
	}
	for id, want := range map[string]map[string]int{"chart-done": done, "chart-open": open} {
		m := regexp.MustCompile(`(?s)<svg id="` + id + `".*?</svg>`).FindString(dom)
		if m == "" {
			t.Errorf("no %s in the rendered page", id)
			continue
		}
		got := map[string]int{}
		for _, b := range regexp.MustCompile(`<g class="bin" data-bin="([^"]*)" data-count="(\d+)">`).FindAllStringSubmatch(m, -1) {
			n, _ := strconv.Atoi(b[2])
			got[b[1]] = n
		}
		for bin, n := range want {
			if got[bin] != n {
				t.Errorf("%s: bin %q has %d requests, want %d", id, bin, got[bin], n)
			}
		}
		for bin, n := range got {
			if n != want[bin] {
				t.Errorf("%s: bin %q has %d requests, want %d", id, bin, n, want[bin])
			}
		}
		for _, w := range regexp.MustCompile(`<rect class="seg"[^>]* width="([0-9.]+)"`).FindAllStringSubmatch(m, -1) {
			if f, _ := strconv.ParseFloat(w[1], 64); f < 3 {
				t.Errorf("%s: a bar %s wide: not readable", id, w[1])
			}
		}
	}
	return done, open
}

func TestHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	h, _ := NewIDHasher([]byte("a key of at least sixteen bytes"))
	for _, run := range []struct {
		name string
		now  time.Time
		recs func(time.Time) []*Record
	}{
		{"same-day", time.Date(2026, 3, 15, 18, 0, 0, 0, time.UTC), sameDayRecords},
		{"30-day", time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC), thirtyDayRecords},
	} {
		t.Run(run.name, func(t *testing.T) {
			recs := run.recs(run.now)
			page, _ := renderHTML(t, recs, run.now)
			dom, file := dumpDOM(t, bin, page, "")
			counts := checkSummary(t, dom, recs)
			all := counts["all projects"]
			if all == nil {
				all = counts["web"]
			}
			if all["failed"] == 0 || all["unknown"] == 0 {
				t.Fatalf("the %s sample has no failed or unknown request: %v", run.name, all)
			}
			done, open := checkCharts(t, dom, recs, run.now)
			if len(done) < 3 || len(open) < 2 {
				t.Errorf("the %s run's charts: %d bins of completed requests, %d of open ones, want at least 3 and 2 (a readable spread)", run.name, len(done), len(open))
			}
			// The table: 50 rows on the first page, and the state filter.
			rows := regexp.MustCompile(`<tr data-ref="`).FindAllString(dom, -1)
			if len(rows) != min(50, len(recs)) || !strings.Contains(dom, fmt.Sprintf(`data-matching="%d"`, len(recs))) {
				t.Errorf("%d table rows rendered of %d", len(rows), len(recs))
			}
			fdom, _ := dumpDOM(t, bin, page, "#state=unknown")
			if got := len(regexp.MustCompile(`<tr data-ref="[^"]*" data-state="unknown"><td>`).FindAllString(fdom, -1)); got != all["unknown"] ||
				strings.Count(fdom, `<tr data-ref="`) != all["unknown"] {
				t.Errorf("filtered to unknown: %d rows, want %d", got, all["unknown"])
			}

			// What to do: one entry per failed or unknown request; for an
			// unknown retrieval, the create's time and the question for
			// Mixpanel support, with the IDs only when they are not hashed.
			checkAdvice(t, dom, recs, nil)
			hpage, _ := renderHTMLWith(t, recs, run.now, HTMLOptions{Now: run.now, Hasher: h})
			hdom, _ := dumpDOM(t, bin, hpage, "")
			checkAdvice(t, hdom, recs, h)

			shot := filepath.Join(artifactDir(t), "report-"+run.name+".png")
			runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars", "file://"+file)
			st, err := os.Stat(shot)
			if err != nil || st.Size() < 10000 {
				t.Fatalf("screenshot %s: %v", shot, err)
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

func renderHTMLWith(t *testing.T, recs []*Record, now time.Time, opt HTMLOptions) (string, []*Record) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Generate(context.Background(), SliceSource(recs), NewPolicy(), Filter{}, now, NewHTMLWriter(&buf, opt)); err != nil {
		t.Fatal(err)
	}
	return buf.String(), recs
}

// checkAdvice wants an entry in "What to do" for every failed or unknown
// request, saying what can be done.
func checkAdvice(t *testing.T, dom string, recs []*Record, h *IDHasher) {
	t.Helper()
	items := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)<li class="advice [a-z]+" data-ref="([^"]*)" data-outcome="([a-z]+)">(.*?)</li>`).FindAllStringSubmatch(dom, -1) {
		items[m[1]] = m[2] + " " + m[3]
	}
	n := 0
	for _, r := range recs {
		o := wantOutcome(r)
		if o != "failed" && o != "unknown" {
			if _, ok := items[r.Reference]; ok {
				t.Errorf("advice for %s, which is %s", r.Reference, o)
			}
			continue
		}
		n++
		text, ok := items[r.Reference]
		if !ok {
			t.Errorf("no advice for the %s request %s", o, r.Reference)
			continue
		}
		if !strings.HasPrefix(text, o+" ") || !strings.Contains(text, "project "+r.Project) {
			t.Errorf("advice for %s: %s", r.Reference, text)
		}
		if o == "unknown" {
			sent, _ := workerdb.CreateSentAt(r.Notes[0].Detail)
			ask := fmt.Sprintf("In project %s, is there a %s retrieval task created at about %s?", r.Project, r.ComplianceType, sent.Format("2006-01-02 15:04:05 UTC"))
			if !strings.Contains(text, "create sent at "+sent.Format("2006-01-02 15:04:05 UTC")) || !strings.Contains(text, ask) {
				t.Errorf("advice for the unknown %s does not give the create's time and the question for support (%q): %s", r.Reference, ask, text)
			}
		}
		id := r.DistinctIDs[0]
		if r.IDsKeyed {
			// Shown as it is in the table, hashed report or not, and never
			// offered as an ID to give support.
			if strings.Contains(text, id) || !strings.Contains(text, "were purged") || !strings.Contains(dom, id) || h != nil && strings.Contains(dom, h.Hash(id)) {
				t.Errorf("purged IDs of %s: advice %s", r.Reference, text)
			}
			continue
		}
		if h != nil && (strings.Contains(text, id) || o == "unknown" && !strings.Contains(text, "not shown")) {
			t.Errorf("hashed report: the advice for %s names the person, or does not say the IDs are hidden: %s", r.Reference, text)
		}
		if h == nil && o == "unknown" && !strings.Contains(text, id) {
			t.Errorf("advice for %s: no distinct ID to give support: %s", r.Reference, text)
		}
	}
	if len(items) != n {
		t.Errorf("%d advice entries, want %d", len(items), n)
	}
	if h != nil {
		for _, r := range recs {
			if !r.IDsKeyed && strings.Contains(dom, r.DistinctIDs[0]) {
				t.Errorf("hashed report names %s", r.Reference)
			}
		}
	}
}
