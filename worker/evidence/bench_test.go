package evidence

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// genSource yields n synthetic records, each freshly built as a database
// source would, without keeping any.
type genSource struct{ n int }

func (g genSource) Records(ctx context.Context, f Filter, yield func(*Record) error) error {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range g.n {
		received := base.Add(time.Duration(i) * time.Second)
		r := &Record{Reference: fmt.Sprintf("DSR-%07d", i), Project: "web", Kind: "deletion", ComplianceType: "GDPR",
			DistinctIDs: []string{fmt.Sprintf("user-%07d@example.com", i)}, IDs: 1, ReceivedAt: received, SourceState: "done",
			Tasks: []Task{{TaskID: fmt.Sprintf("task-%05d", i/2000), Origin: "filed", FiledAt: received.Add(time.Minute),
				Statuses: []StatusSeen{{"PENDING", received.Add(2 * time.Minute)}, {"SUCCESS", received.Add(time.Hour)}}, DoneAt: received.Add(time.Hour)}},
			CompletedAt: received.Add(time.Hour), ChainHash: "3f1d2c7e9a8b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"}
		if err := yield(r); err != nil {
			return err
		}
	}
	return nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// peakSampler wraps a Writer and samples the live heap every 10,000
// records (after a GC, so that it measures what is retained, not garbage).
type peakSampler struct {
	Writer
	n    int
	peak uint64
}

func (p *peakSampler) Write(r *Record) error {
	p.n++
	if p.n%10000 == 0 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		p.peak = max(p.peak, m.HeapAlloc)
	}
	return p.Writer.Write(r)
}

// BenchmarkReportStream writes a report of a million requests in CSV and
// JSON Lines and reports the peak live heap: it stays flat (the writers
// keep nothing per record) whatever the number of requests.
func BenchmarkReportStream(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, format := range []string{"csv", "json"} {
			b.Run(fmt.Sprintf("%s/requests=%d", format, n), func(b *testing.B) {
				h, _ := NewIDHasher([]byte("benchmark key, sixteen bytes+"))
				for b.Loop() {
					cw := &countWriter{}
					var w Writer
					if format == "csv" {
						w = NewCSVWriter(cw, h)
					} else {
						w = NewJSONLWriter(cw, h)
					}
					runtime.GC()
					var m0 runtime.MemStats
					runtime.ReadMemStats(&m0)
					ps := &peakSampler{Writer: w}
					got, err := Generate(context.Background(), genSource{n}, nil, Filter{}, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), ps)
					if err != nil || got != n {
						b.Fatal(got, err)
					}
					b.ReportMetric(float64(ps.peak)/(1<<20), "peak-heap-MiB")
					b.ReportMetric(float64(m0.HeapAlloc)/(1<<20), "start-heap-MiB")
					b.ReportMetric(float64(cw.n)/(1<<20), "output-MiB")
				}
			})
		}
	}
}
