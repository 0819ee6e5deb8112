package mpgdpr_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
)

// patternReader produces n bytes of a repeating pattern: an export that is
// generated, never stored.
type patternReader struct {
	block []byte
	left  int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && int64(n) < p.left {
		n += copy(b[n:min(int64(len(b)), p.left)], p.block[n%len(p.block):])
	}
	p.left -= int64(n)
	return n, nil
}

// BenchmarkDownload streams a 1 GiB export, generated on the fly by a
// loopback server with a Content-Length, through DownloadExport into
// io.Discard. MB/s is the throughput; peak-heap-MiB is the largest growth of
// HeapInuse over the pre-download baseline, sampled every millisecond.
func BenchmarkDownload(b *testing.B) {
	const size = 1 << 30
	block := make([]byte, 64<<10)
	for i := range block {
		block[i] = byte('a' + i%26)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		// The pattern, then an empty zip end record whose (empty) central
		// directory starts right before it: a complete archive, as the
		// download now checks.
		end := make([]byte, 22)
		copy(end, "PK\x05\x06")
		off := uint32(size - len(end))
		end[16], end[17], end[18], end[19] = byte(off), byte(off>>8), byte(off>>16), byte(off>>24)
		_, _ = io.Copy(w, io.MultiReader(&patternReader{block: block, left: size - int64(len(end))}, bytes.NewReader(end)))
	}))
	defer srv.Close()
	c, err := mpgdpr.New(benchOAuth, benchProject, mpgdpr.WithRateLimiter(nil), mpgdpr.WithBaseURL("http://127.0.0.1:1/api/app")) // loopback API: loopback http downloads allowed
	if err != nil {
		b.Fatal(err)
	}
	task := &mpgdpr.Task{TrackingID: "export", Status: mpgdpr.StatusSuccess, DownloadURL: srv.URL + "/export.zip"}
	ctx := context.Background()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		n, err := c.DownloadExport(ctx, task, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if n != size {
			b.Fatalf("%d bytes, want %d", n, size)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	growth := float64(0)
	if p := peak.Load(); p > base {
		growth = float64(p-base) / (1 << 20)
	}
	b.ReportMetric(growth, "peak-heap-MiB")
}
