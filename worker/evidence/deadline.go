package evidence

import (
	"fmt"
	"strings"
	"time"
)

// State is where a request stands against its deadline.
type State string

// The states of a request against its deadline.
const (
	// OnTime: not completed, and the deadline is more than the at-risk
	// margin away.
	OnTime State = "on_time"
	// AtRisk: not completed, and the deadline is within the at-risk margin.
	AtRisk State = "at_risk"
	// Overdue: not completed, and the deadline has passed.
	Overdue State = "overdue"
	// Met: completed before the end of the deadline's day.
	Met State = "met"
	// MetLate: completed, after the deadline.
	MetLate State = "met_late"
)

// States lists every State, in the order reports show them.
var States = []State{OnTime, AtRisk, Overdue, Met, MetLate}

// Open reports whether a request in this state is not completed.
func (s State) Open() bool { return s == OnTime || s == AtRisk || s == Overdue }

// Period is a length of time in calendar months and days (months first).
type Period struct {
	Months int `toml:"months" json:"months,omitempty"`
	Days   int `toml:"days" json:"days,omitempty"`
}

// IsZero reports an empty period.
func (p Period) IsZero() bool { return p.Months == 0 && p.Days == 0 }

// String is e.g. "1 month", "45 days", "2 months 3 days".
func (p Period) String() string {
	var parts []string
	plural := func(n int, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	if p.Months != 0 {
		parts = append(parts, plural(p.Months, "month"))
	}
	if p.Days != 0 || len(parts) == 0 {
		parts = append(parts, plural(p.Days, "day"))
	}
	return strings.Join(parts, " ")
}

// Add is the period's sum with q.
func (p Period) Add(q Period) Period { return Period{p.Months + q.Months, p.Days + q.Days} }

// DueDate is the last day of the period counted from the date of receipt
// (year, month, day): months first, clipped to the target month's last
// day when it is shorter, then days.
func (p Period) DueDate(year int, month time.Month, day int) (int, time.Month, int) {
	y, m := year, int(month)-1+p.Months
	y += m / 12
	m %= 12
	if m < 0 {
		m += 12
		y--
	}
	tm := time.Month(m + 1)
	d := min(day, daysIn(y, tm))
	t := time.Date(y, tm, d+p.Days, 12, 0, 0, 0, time.UTC)
	return t.Year(), t.Month(), t.Day()
}

func daysIn(year int, m time.Month) int {
	return time.Date(year, m+1, 0, 12, 0, 0, 0, time.UTC).Day()
}

// Regulation is the deadline rule of one compliance type.
type Regulation struct {
	// Name is the compliance type it applies to ("GDPR", "CCPA").
	Name string `toml:"name" json:"name"`
	// Period is the time to answer, from the date of receipt.
	Period Period `toml:"period" json:"period"`
	// Extension is the longest extension, added to Period, allowed with
	// notice (zero: none).
	Extension Period `toml:"extension" json:"extension"`
	// AtRisk is how long before the deadline an open request is at risk.
	AtRisk Period `toml:"at_risk" json:"at_risk"`
}

// GDPR is Article 12(3) GDPR: one month of receipt, extendable by two
// further months (with notice to the person within the first month).
var GDPR = Regulation{Name: "GDPR", Period: Period{Months: 1}, Extension: Period{Months: 2}, AtRisk: Period{Days: 7}}

// CCPA is Cal. Civ. Code 1798.130(a)(2): 45 days of receipt, extendable
// once by 45 more (with notice within the first 45 days).
var CCPA = Regulation{Name: "CCPA", Period: Period{Days: 45}, Extension: Period{Days: 45}, AtRisk: Period{Days: 7}}

// Extension is a recorded extension of a request's deadline.
type Extension struct {
	// Reference and Project name the record; an empty Project extends the
	// request in every project.
	Reference string    `toml:"reference" json:"reference"`
	Project   string    `toml:"project" json:"project,omitempty"`
	Reason    string    `toml:"reason" json:"reason"`
	NoticeAt  time.Time `toml:"notice_at" json:"notice_at"`
}

// Deadline is a record's deadline and its state, as Policy.Evaluate found
// them.
type Deadline struct {
	// Regulation is the rule applied ("GDPR", "CCPA"), empty when the
	// compliance type has none (then State is empty too).
	Regulation string
	// Due is the last day (in the policy's zone, at midnight) to complete;
	// By is the end of that day, the instant a completion must precede.
	Due time.Time
	By  time.Time
	// Extended: an extension was recorded and applied.
	Extended bool
	// Note explains an extension not applied, or a missing rule.
	Note  string
	State State
}

// Policy holds the regulations and the recorded extensions, and evaluates
// records against them. The zero Policy is not usable: use NewPolicy.
type Policy struct {
	// Location is the zone whose days deadlines are counted in (UTC).
	Location *time.Location
	regs     map[string]Regulation
	ext      map[[2]string]Extension
}

// NewPolicy is a policy with GDPR and CCPA, days counted in UTC, and the
// given regulations replacing the default of the same name.
func NewPolicy(regs ...Regulation) *Policy {
	p := &Policy{Location: time.UTC, regs: map[string]Regulation{"GDPR": GDPR, "CCPA": CCPA}, ext: map[[2]string]Extension{}}
	for _, r := range regs {
		r.Name = strings.ToUpper(r.Name)
		p.regs[r.Name] = r
	}
	return p
}

// Regulation returns the rule for a compliance type.
func (p *Policy) Regulation(complianceType string) (Regulation, bool) {
	r, ok := p.regs[strings.ToUpper(complianceType)]
	return r, ok
}

// Extend records an extension; a later one for the same record replaces it.
func (p *Policy) Extend(e Extension) error {
	if strings.TrimSpace(e.Reference) == "" {
		return fmt.Errorf("evidence: extension without a reference")
	}
	if strings.TrimSpace(e.Reason) == "" {
		return fmt.Errorf("evidence: extension of %q without a reason", e.Reference)
	}
	if e.NoticeAt.IsZero() {
		return fmt.Errorf("evidence: extension of %q without the time notice was given", e.Reference)
	}
	p.ext[[2]string{e.Reference, e.Project}] = e
	return nil
}

func (p *Policy) extension(ref, project string) (Extension, bool) {
	if e, ok := p.ext[[2]string{ref, project}]; ok {
		return e, true
	}
	e, ok := p.ext[[2]string{ref, ""}]
	return e, ok
}

// DueDate is the last day to answer a request received at t under reg,
// with or without its extension, at midnight in the policy's zone.
func (p *Policy) DueDate(reg Regulation, received time.Time, extended bool) time.Time {
	per := reg.Period
	if extended {
		per = per.Add(reg.Extension)
	}
	l := p.loc()
	r := received.In(l)
	y, m, d := per.DueDate(r.Year(), r.Month(), r.Day())
	return time.Date(y, m, d, 0, 0, 0, 0, l)
}

func (p *Policy) loc() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// endOfDay is the first instant of the day after d (a midnight in l).
func endOfDay(d time.Time, l *time.Location) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, l)
}

// Evaluate sets r.Extension (from the recorded extensions, if r has none)
// and r.Deadline, as of now. An extension whose notice came after the
// original deadline is recorded but not applied (the law wants notice
// within the first period).
func (p *Policy) Evaluate(r *Record, now time.Time) {
	if r.Extension == nil {
		if e, ok := p.extension(r.Reference, r.Project); ok {
			r.Extension = &e
		}
	}
	reg, ok := p.Regulation(r.ComplianceType)
	if !ok || r.ReceivedAt.IsZero() {
		r.Deadline = Deadline{Note: fmt.Sprintf("no deadline rule for compliance type %q or no time of receipt", r.ComplianceType)}
		return
	}
	l := p.loc()
	dl := Deadline{Regulation: reg.Name, Due: p.DueDate(reg, r.ReceivedAt, false)}
	dl.By = endOfDay(dl.Due, l)
	if e := r.Extension; e != nil {
		switch {
		case reg.Extension.IsZero():
			dl.Note = reg.Name + " allows no extension: not applied"
		case !e.NoticeAt.Before(dl.By):
			dl.Note = "extension notified after the original deadline: not applied"
		default:
			dl.Extended = true
			dl.Due = p.DueDate(reg, r.ReceivedAt, true)
			dl.By = endOfDay(dl.Due, l)
		}
	}
	// A cancelled request was answered when it was cancelled.
	end := r.CompletedAt
	if r.Cancelled() {
		end = r.CancelledAt
	}
	switch {
	case !end.IsZero() && end.Before(dl.By):
		dl.State = Met
	case !end.IsZero():
		dl.State = MetLate
	case !now.Before(dl.By):
		dl.State = Overdue
	default:
		y, m, d := reg.AtRisk.DueDate(now.In(l).Year(), now.In(l).Month(), now.In(l).Day())
		if !time.Date(y, m, d, 0, 0, 0, 0, l).Before(dl.Due) {
			dl.State = AtRisk
		} else {
			dl.State = OnTime
		}
	}
	r.Deadline = dl
}
