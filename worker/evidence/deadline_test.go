package evidence

import (
	"testing"
	"time"
)

func date(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDueDateAcrossMonthEndsAndLeapDays(t *testing.T) {
	p := NewPolicy()
	cases := []struct {
		reg      Regulation
		received string // a time of day is added: the day counts, not the hour
		extended bool
		due      string
	}{
		{GDPR, "2026-01-15", false, "2026-02-15"},
		{GDPR, "2026-01-31", false, "2026-02-28"}, // no 31 February: the month's last day
		{GDPR, "2028-01-31", false, "2028-02-29"}, // leap year
		{GDPR, "2028-01-30", false, "2028-02-29"},
		{GDPR, "2028-01-29", false, "2028-02-29"},
		{GDPR, "2028-01-28", false, "2028-02-28"},
		{GDPR, "2028-02-29", false, "2028-03-29"},
		{GDPR, "2026-03-31", false, "2026-04-30"},
		{GDPR, "2026-05-31", false, "2026-06-30"},
		{GDPR, "2026-08-31", false, "2026-09-30"},
		{GDPR, "2026-12-31", false, "2027-01-31"}, // across the year's end
		{GDPR, "2026-12-15", false, "2027-01-15"},
		{GDPR, "2026-01-31", true, "2026-04-30"}, // 3 months from receipt, not 28 Feb + 2 months
		{GDPR, "2026-11-30", true, "2027-02-28"},
		{GDPR, "2027-11-30", true, "2028-02-29"},
		{GDPR, "2026-12-31", true, "2027-03-31"},
		{CCPA, "2026-01-01", false, "2026-02-15"},
		{CCPA, "2028-02-01", false, "2028-03-17"}, // 29 days in February 2028
		{CCPA, "2026-02-01", false, "2026-03-18"},
		{CCPA, "2026-12-20", false, "2027-02-03"},
		{CCPA, "2026-01-01", true, "2026-04-01"}, // 90 days
		{CCPA, "2028-01-01", true, "2028-03-31"},
	}
	for _, c := range cases {
		got := p.DueDate(c.reg, date(c.received).Add(17*time.Hour+3*time.Minute), c.extended)
		if got.Format("2006-01-02") != c.due || got.Hour() != 0 {
			t.Errorf("%s received %s, extended %v: due %s, want %s", c.reg.Name, c.received, c.extended, got, c.due)
		}
	}
	// Twelve months from a leap day: 28 February.
	if got := (Period{Months: 12}).DueDateString(2028, time.February, 29); got != "2029-02-28" {
		t.Errorf("29 Feb 2028 + 12 months = %s", got)
	}
	if got := (Period{Months: -1}).DueDateString(2026, time.March, 31); got != "2026-02-28" {
		t.Errorf("31 Mar 2026 - 1 month = %s", got)
	}
}

// DueDateString is DueDate as YYYY-MM-DD (tests).
func (p Period) DueDateString(y int, m time.Month, d int) string {
	y, m, d = p.DueDate(y, m, d)
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
}

func TestDeadlineInPolicyZone(t *testing.T) {
	// 23:30 on 31 January in New York is already 1 February in UTC.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone data")
	}
	received := time.Date(2026, 1, 31, 23, 30, 0, 0, ny)
	utc := NewPolicy()
	if got := utc.DueDate(GDPR, received, false).Format("2006-01-02"); got != "2026-03-01" {
		t.Errorf("UTC: due %s", got)
	}
	local := NewPolicy()
	local.Location = ny
	r := &Record{ComplianceType: "GDPR", ReceivedAt: received, CompletedAt: time.Date(2026, 2, 28, 23, 59, 0, 0, ny)}
	local.Evaluate(r, received)
	if r.Deadline.Due.Format("2006-01-02") != "2026-02-28" || r.Deadline.State != Met {
		t.Errorf("New York: %+v", r.Deadline)
	}
	if !r.Deadline.By.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, ny)) {
		t.Errorf("by %v", r.Deadline.By)
	}
}

func TestStates(t *testing.T) {
	received := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC) // GDPR: due 28 Feb
	endOfDue := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		completed time.Time
		now       time.Time
		ext       *Extension
		want      State
		extended  bool
	}{
		{"open, weeks left", time.Time{}, time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), nil, OnTime, false},
		{"open, 8 days left", time.Time{}, time.Date(2026, 2, 20, 12, 0, 0, 0, time.UTC), nil, OnTime, false},
		{"open, 7 days left", time.Time{}, time.Date(2026, 2, 21, 0, 0, 0, 0, time.UTC), nil, AtRisk, false},
		{"open, last day", time.Time{}, endOfDue.Add(-time.Nanosecond), nil, AtRisk, false},
		{"open, a moment late", time.Time{}, endOfDue, nil, Overdue, false},
		{"met on the last moment", endOfDue.Add(-time.Nanosecond), endOfDue.AddDate(1, 0, 0), nil, Met, false},
		{"met a moment late", endOfDue, endOfDue, nil, MetLate, false},
		{"met early", received.Add(time.Hour), received.Add(time.Hour), nil, Met, false},
		{"extended in time", time.Time{}, endOfDue.Add(time.Hour), &Extension{Reference: "r", Reason: "complex", NoticeAt: received.AddDate(0, 0, 20)}, OnTime, true},
		{"extended, met late for the original", endOfDue.AddDate(0, 1, 0), endOfDue.AddDate(0, 2, 0), &Extension{Reference: "r", Reason: "complex", NoticeAt: received.AddDate(0, 0, 20)}, Met, true},
		{"extension notified too late", time.Time{}, endOfDue.Add(time.Hour), &Extension{Reference: "r", Reason: "complex", NoticeAt: endOfDue}, Overdue, false},
	}
	for _, c := range cases {
		p := NewPolicy()
		r := &Record{Reference: "r", Project: "p", ComplianceType: "GDPR", ReceivedAt: received, CompletedAt: c.completed}
		if c.ext != nil {
			if err := p.Extend(*c.ext); err != nil {
				t.Fatal(err)
			}
		}
		p.Evaluate(r, c.now)
		if r.Deadline.State != c.want || r.Deadline.Extended != c.extended {
			t.Errorf("%s: %+v, want %s extended %v", c.name, r.Deadline, c.want, c.extended)
		}
		if c.ext != nil && (r.Extension == nil || r.Extension.Reason != "complex") {
			t.Errorf("%s: extension not recorded: %+v", c.name, r.Extension)
		}
		if c.name == "extension notified too late" && r.Deadline.Note == "" {
			t.Errorf("no note for a late extension")
		}
	}
}

func TestPolicyConfigurableAndExtensionRules(t *testing.T) {
	p := NewPolicy(Regulation{Name: "ccpa", Period: Period{Days: 10}}, Regulation{Name: "LGPD", Period: Period{Days: 15}})
	r := &Record{Reference: "x", ComplianceType: "CCPA", ReceivedAt: date("2026-01-01")}
	p.Evaluate(r, date("2026-01-02"))
	if r.Deadline.Due.Format("2006-01-02") != "2026-01-11" || r.Deadline.State != OnTime || r.Deadline.Regulation != "CCPA" {
		t.Errorf("configured CCPA: %+v", r.Deadline)
	}
	if err := p.Extend(Extension{Reference: "x", Reason: "volume", NoticeAt: date("2026-01-02")}); err != nil {
		t.Fatal(err)
	}
	r = &Record{Reference: "x", ComplianceType: "CCPA", ReceivedAt: date("2026-01-01")}
	p.Evaluate(r, date("2026-01-02"))
	if r.Deadline.Extended || r.Deadline.Note == "" {
		t.Errorf("an extension where the rule allows none: %+v", r.Deadline)
	}
	r = &Record{Reference: "y", ComplianceType: "unknown", ReceivedAt: date("2026-01-01")}
	p.Evaluate(r, date("2026-01-02"))
	if r.Deadline.State != "" || r.Deadline.Note == "" {
		t.Errorf("no rule: %+v", r.Deadline)
	}
	for _, e := range []Extension{{Reason: "a", NoticeAt: date("2026-01-01")}, {Reference: "a", NoticeAt: date("2026-01-01")}, {Reference: "a", Reason: "b"}} {
		if p.Extend(e) == nil {
			t.Errorf("extension %+v accepted", e)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy(`
time_zone = "UTC"
[[regulation]]
name = "GDPR"
period = { months = 1 }
extension = { months = 2 }
at_risk = { days = 3 }
[[regulation]]
name = "LGPD"
period = { days = 15 }
[[extension]]
reference = "DSR-1"
reason = "complex"
notice_at = 2026-01-05T00:00:00Z
`)
	if err != nil {
		t.Fatal(err)
	}
	r := &Record{Reference: "DSR-1", Project: "web", ComplianceType: "GDPR", ReceivedAt: date("2026-01-31")}
	p.Evaluate(r, date("2026-02-27"))
	if !r.Deadline.Extended || r.Deadline.Due.Format("2006-01-02") != "2026-04-30" || r.Deadline.State != OnTime {
		t.Errorf("%+v", r.Deadline)
	}
	r = &Record{Reference: "X", ComplianceType: "LGPD", ReceivedAt: date("2026-01-31")}
	p.Evaluate(r, date("2026-02-27"))
	if r.Deadline.Due.Format("2006-01-02") != "2026-02-15" || r.Deadline.State != Overdue {
		t.Errorf("LGPD %+v", r.Deadline)
	}
	for _, bad := range []string{`nonsense = 1`, `[[regulation]]
period = { days = 1 }`, `[[regulation]]
name = "X"`, `[[extension]]
reference = "a"`, `time_zone = "Mars/Olympus"`, `x = `} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
