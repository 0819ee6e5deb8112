package evidence

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// policyFile is the TOML of LoadPolicy.
type policyFile struct {
	TimeZone    string       `toml:"time_zone"`
	Regulations []Regulation `toml:"regulation"`
	Extensions  []Extension  `toml:"extension"`
}

// LoadPolicy reads a deadline policy from a TOML file (docs/REPORTS.md):
//
//	time_zone = "Europe/Berlin"         # days are counted here (default UTC)
//	[[regulation]]                      # replaces the built-in rule of that name
//	name = "GDPR"
//	period = { months = 1 }
//	extension = { months = 2 }
//	at_risk = { days = 7 }
//	[[extension]]                       # a recorded extension
//	reference = "DSR-1042"
//	project = "web"                     # optional: every project when left out
//	reason = "complex request, several systems"
//	notice_at = 2026-02-10T09:00:00Z
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evidence: policy: %w", err)
	}
	return ParsePolicy(string(b))
}

// ParsePolicy is LoadPolicy from text.
func ParsePolicy(text string) (*Policy, error) {
	var f policyFile
	md, err := toml.Decode(text, &f)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("evidence: policy: not valid TOML at line %d", perr.Position.Line)
		}
		return nil, fmt.Errorf("evidence: policy: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("evidence: policy: unknown keys: %s", strings.Join(keys, ", "))
	}
	for _, r := range f.Regulations {
		if strings.TrimSpace(r.Name) == "" {
			return nil, errors.New("evidence: policy: a [[regulation]] without a name")
		}
		if r.Period.IsZero() || r.Period.Months < 0 || r.Period.Days < 0 || r.Extension.Months < 0 || r.Extension.Days < 0 || r.AtRisk.Months < 0 || r.AtRisk.Days < 0 {
			return nil, fmt.Errorf("evidence: policy: regulation %q: the period must be positive, and nothing negative", r.Name)
		}
	}
	p := NewPolicy(f.Regulations...)
	if f.TimeZone != "" {
		l, err := time.LoadLocation(f.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("evidence: policy: time zone %q: %w", f.TimeZone, err)
		}
		p.Location = l
	}
	for _, e := range f.Extensions {
		if err := p.Extend(e); err != nil {
			return nil, fmt.Errorf("evidence: policy: %w", err)
		}
	}
	return p, nil
}
