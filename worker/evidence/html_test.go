package evidence

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	page, recs := renderHTML(t, sampleRecords(now), now)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	dom := string(runChromium(t, bin, "--dump-dom", "file://"+file))

	// The summary's figures, computed here independently of the writer.
	type agg struct {
		total  int
		states map[State]int
		days   []float64
	}
	want := map[string]*agg{}
	for _, r := range recs {
		for _, p := range []string{r.Project, "all projects"} {
			a := want[p]
			if a == nil {
				a = &agg{states: map[State]int{}}
				want[p] = a
			}
			a.total++
			a.states[r.Deadline.State]++
			if r.Completed() {
				a.days = append(a.days, r.TimeToComplete().Hours()/24)
			}
		}
	}
	if len(want) != 3 {
		t.Fatalf("projects %v", want)
	}
	cellRe := func(project, key string) *regexp.Regexp {
		return regexp.MustCompile(`<tr data-project="` + regexp.QuoteMeta(project) + `">.*?data-k="` + key + `">([^<]*)</td>`)
	}
	seen := map[State]bool{}
	for project, a := range want {
		check := func(key, wantText string) {
			m := cellRe(project, key).FindStringSubmatch(dom)
			if m == nil {
				t.Errorf("%s: no %s cell in the rendered page", project, key)
				return
			}
			if m[1] != wantText {
				t.Errorf("%s %s: rendered %q, want %q", project, key, m[1], wantText)
			}
		}
		check("total", strconv.Itoa(a.total))
		for _, s := range States {
			check(string(s), strconv.Itoa(a.states[s]))
			seen[s] = seen[s] || a.states[s] > 0
		}
		worst, med := 0.0, 0.0
		for _, d := range a.days {
			worst = max(worst, d)
		}
		sorted := append([]float64(nil), a.days...)
		for i := range sorted {
			for j := i + 1; j < len(sorted); j++ {
				if sorted[j] < sorted[i] {
					sorted[i], sorted[j] = sorted[j], sorted[i]
				}
			}
		}
		if n := len(sorted); n%2 == 1 {
			med = sorted[n/2]
		} else {
			med = (sorted[n/2-1] + sorted[n/2]) / 2
		}
		check("median", fmt.Sprintf("%.2f", med))
		check("worst", fmt.Sprintf("%.2f", worst))
	}
	for _, s := range States {
		if !seen[s] {
			t.Errorf("the sample has no %s request: the test would not notice it miscounted", s)
		}
	}
	// The table is drawn by the page's script: 50 rows on the first page.
	rows := regexp.MustCompile(`<tr data-ref="`).FindAllString(dom, -1)
	if len(rows) != 50 {
		t.Errorf("%d table rows rendered, want 50 (the first page)", len(rows))
	}
	if !strings.Contains(dom, `data-matching="120"`) || !strings.Contains(dom, "1–50 of 120") {
		t.Errorf("the pager does not say 1–50 of 120")
	}
	// The chart: one bar per request and a deadline tick for each.
	if n := strings.Count(dom, `class="bar"`); n != 120 {
		t.Errorf("%d bars in the chart", n)
	}
	if n := strings.Count(dom, `class="deadline"`); n != 120 {
		t.Errorf("%d deadline ticks in the chart", n)
	}

	// The filter works in the browser: #state=overdue preselects it.
	overdue := want["all projects"].states[Overdue]
	dom = string(runChromium(t, bin, "--dump-dom", "file://"+file+"#state=overdue"))
	if got := len(regexp.MustCompile(`<tr data-ref="[^"]*" data-state="overdue"`).FindAllString(dom, -1)); got != min(overdue, 50) {
		t.Errorf("filtered to overdue: %d rows, want %d", got, min(overdue, 50))
	}
	if strings.Contains(dom, `data-state="met"`) {
		t.Error("filtered to overdue, a met request is still shown")
	}

	shot := filepath.Join(artifactDir(t), "report-screenshot.png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,1400", "--hide-scrollbars", "file://"+file)
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
