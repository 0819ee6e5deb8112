package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// progress is the one-line status of a long job on stderr: requests filed,
// tasks by status, the request rate, an estimate of the filing time left,
// and what the command is waiting for when it waits. It is drawn only on a
// terminal (or when asked with --progress always), overwriting itself, so
// that logs and pipes get clean output; there, a long wait is said in a
// note instead (see cli.waitNote).
type progress struct {
	w       io.Writer
	on      bool
	label   string
	started time.Time
	rate    float64 // the client's request rate limit, per second, for the estimate

	chunksDone, chunksTotal   atomic.Int64
	tasksTotal                atomic.Int64
	exportsDone, exportsTotal atomic.Int64 // exports to download and save
	requests                  atomic.Int64 // requests sent (creates, checks, retries)

	mu       sync.Mutex // serialises drawing; guards what follows
	status   map[string]string
	waitMsg  string
	waitEnd  time.Time
	stop     chan struct{}
	stopped  chan struct{}
	drawn    bool
	finished bool
}

// newProgress returns the progress line of one command, and makes it the
// one the cli's notes and log observer (retries, waits) draw on.
func (cl *cli) newProgress(mode, label string, rate float64) *progress {
	on := mode == "always" || mode == "auto" && isTerminal(cl.rawStderr)
	p := &progress{w: cl.rawStderr, on: on, label: label, started: time.Now(), rate: rate, status: map[string]string{}}
	cl.prog.Store(p)
	return p
}

// start redraws the line every 200ms until finish.
func (p *progress) start() {
	if !p.on || p.stop != nil {
		return
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

// finish draws the final state and ends the line, so that what follows
// starts on a line of its own.
func (p *progress) finish() {
	if !p.on || p.finished {
		return
	}
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.stop = nil
	}
	p.clearWait()
	p.draw()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finished = true
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// note prints a message on a line of its own above the progress line.
func (p *progress) note(w io.Writer, format string, a ...any) {
	p.mu.Lock()
	if p.on && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	p.mu.Unlock()
	fmt.Fprintf(w, format+"\n", a...)
}

// setStatus records a task's latest status, for the counts per status.
func (p *progress) setStatus(task, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status[task] = status
}

// setWait says on the line what the command waits for, until end (zero:
// until clearWait).
func (p *progress) setWait(msg string, end time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waitMsg, p.waitEnd = msg, end
}

func (p *progress) clearWait() { p.setWait("", time.Time{}) }

func (p *progress) draw() {
	if !p.on {
		return
	}
	line := p.line(time.Now())
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	fmt.Fprint(p.w, "\r"+line+"\x1b[K")
	p.drawn = true
}

// terminal statuses, for "tasks ended n/m".
var terminalStatus = map[string]bool{"SUCCESS": true, "FAILURE": true, "REVOKED": true, "NOT_FOUND": true}

// line is the progress line at now.
func (p *progress) line(now time.Time) string {
	el := now.Sub(p.started)
	parts := []string{}
	done, total := p.chunksDone.Load(), p.chunksTotal.Load()
	if total > 0 {
		parts = append(parts, fmt.Sprintf("requests filed %d/%d", done, total))
	}
	p.mu.Lock()
	counts := map[string]int{}
	ended := 0
	for _, s := range p.status {
		counts[s]++
		if terminalStatus[s] {
			ended++
		}
	}
	waitMsg, waitEnd := p.waitMsg, p.waitEnd
	p.mu.Unlock()
	if n := p.tasksTotal.Load(); n > 0 {
		s := fmt.Sprintf("tasks ended %d/%d", ended, n)
		if len(counts) > 0 {
			var byStatus []string
			for st, c := range counts {
				byStatus = append(byStatus, fmt.Sprintf("%d %s", c, st))
			}
			sort.Strings(byStatus)
			s += " (" + strings.Join(byStatus, ", ") + ")"
		}
		parts = append(parts, s)
	}
	if n := p.exportsTotal.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("exports saved %d/%d", p.exportsDone.Load(), n))
	}
	// A rate over less than a second says nothing (one request in 1 ms is
	// not 1000 req/s): count the requests until then.
	if n := p.requests.Load(); el < time.Second {
		parts = append(parts, words.Count(int(n), "request"))
	} else {
		parts = append(parts, fmt.Sprintf("%.1f req/s", float64(n)/el.Seconds()))
	}
	if left := total - done; left > 0 && p.rate > 0 {
		// Requests go out at the rate limit at best: the filing cannot end
		// sooner than this (retries and polls share the limit).
		eta := time.Duration(float64(left) / p.rate * float64(time.Second))
		parts = append(parts, "filing ETA "+words.Duration(eta))
	}
	if waitMsg != "" && (waitEnd.IsZero() || now.Before(waitEnd)) {
		if !waitEnd.IsZero() {
			waitMsg = strings.Replace(waitMsg, "{left}", words.Duration(waitEnd.Sub(now)), 1)
		}
		parts = append(parts, waitMsg)
	}
	parts = append(parts, el.Truncate(time.Second).String())
	return p.label + ": " + strings.Join(parts, " · ")
}

// bulkProgress is the progress line as the bulk engine sees it.
type bulkProgress struct{ p *progress }

func (b bulkProgress) Filing(done, total int) {
	b.p.chunksDone.Store(int64(done))
	b.p.chunksTotal.Store(int64(total))
}
func (b bulkProgress) Filed()                       { b.p.chunksDone.Add(1) }
func (b bulkProgress) Sent()                        { b.p.requests.Add(1) }
func (b bulkProgress) Tasks(n int)                  { b.p.tasksTotal.Store(int64(n)) }
func (b bulkProgress) Status(taskID, status string) { b.p.setStatus(taskID, status) }
func (b bulkProgress) EndWait()                     { b.p.clearWait() }
func (b bulkProgress) Shown() bool                  { return b.p.on }
func (b bulkProgress) Exports(total, done int) {
	b.p.exportsTotal.Add(int64(total))
	b.p.exportsDone.Add(int64(done))
}
