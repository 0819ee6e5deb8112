package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress is the one-line status of a long job on stderr: requests filed,
// tasks ended, request rate. It is drawn only on a terminal (or when asked
// with --progress always), overwriting itself, so that logs and pipes get
// clean output.
type progress struct {
	w       io.Writer
	on      bool
	label   string
	started time.Time

	chunksDone, chunksTotal atomic.Int64
	tasksDone, tasksTotal   atomic.Int64
	requests                atomic.Int64

	mu       sync.Mutex // serialises drawing
	stop     chan struct{}
	stopped  chan struct{}
	drawn    bool
	finished bool
}

func newProgress(w io.Writer, mode, label string) *progress {
	on := mode == "always" || mode == "auto" && isTerminal(w)
	return &progress{w: w, on: on, label: label, started: time.Now()}
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

func (p *progress) draw() {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	fmt.Fprint(p.w, "\r"+p.line()+"\x1b[K")
	p.drawn = true
}

func (p *progress) line() string {
	el := time.Since(p.started)
	r := 0.0
	if s := el.Seconds(); s > 0 {
		r = float64(p.requests.Load()) / s
	}
	return fmt.Sprintf("%s: requests filed %d/%d · tasks done %d/%d · %.1f req/s · %s",
		p.label, p.chunksDone.Load(), p.chunksTotal.Load(), p.tasksDone.Load(), p.tasksTotal.Load(),
		r, el.Truncate(time.Second))
}
