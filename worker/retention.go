package worker

import "time"

// Defaults of the retention settings (Config.IDRetention and the rest):
// how long the worker keeps personal data once it is no longer needed.
const (
	DefaultIDRetention             = 720 * time.Hour // 30 days after a request ends
	DefaultExportRetention         = 720 * time.Hour // 30 days after the download
	DefaultRiverCompletedRetention = time.Hour
	DefaultRiverCancelledRetention = 24 * time.Hour
	DefaultRiverDiscardedRetention = 168 * time.Hour
)

// normalizeRetention fills in the defaults: a setting left out (or 0) takes
// its default.
func (c *Config) normalizeRetention() {
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{
		{&c.IDRetention, DefaultIDRetention},
		{&c.ExportRetention, DefaultExportRetention},
		{&c.RiverCompletedRetention, DefaultRiverCompletedRetention},
		{&c.RiverCancelledRetention, DefaultRiverCancelledRetention},
		{&c.RiverDiscardedRetention, DefaultRiverDiscardedRetention},
	} {
		if *d.v == 0 {
			*d.v = Duration(d.def)
		}
	}
}
