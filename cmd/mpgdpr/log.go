package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// defaultNoteAfter: a wait longer than this is always said.
const defaultNoteAfter = 3 * time.Second

// setupLogging reads --verbose, MPGDPR_LOG and MPGDPR_NOTE_AFTER and builds
// cl.logger, which every client gets with WithLogger. Its lines go to stderr
// through the redactor, like everything this command prints.
func (cl *cli) setupLogging() error {
	cl.noteAfter = defaultNoteAfter
	if v := cl.env[envNoteAfter]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return usagef("%s=%q: want a duration such as 3s (0: say every wait)", envNoteAfter, v)
		}
		cl.noteAfter = d
	}
	level, on := slog.LevelDebug, cl.verbose
	if v := cl.env[envLog]; v != "" && !cl.verbose {
		switch strings.ToLower(v) {
		case "debug":
			level, on = slog.LevelDebug, true
		case "info":
			level, on = slog.LevelInfo, true
		case "warn", "warning":
			level, on = slog.LevelWarn, true
		case "off", "none":
		default:
			return usagef("%s=%q: want debug, info or warn", envLog, v)
		}
	}
	var inner slog.Handler
	cl.logOn = slog.LevelError + 1
	if on {
		cl.logOn = level
		inner = slog.NewTextHandler(&noteWriter{cl}, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime})
	}
	cl.logger = slog.New(&logHandler{inner: inner, cl: cl})
	return nil
}

// dropTime leaves the time out of log lines: stderr is read by a person,
// and a log collector adds its own.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// noteWriter writes log lines above the progress line, redacted.
type noteWriter struct{ cl *cli }

func (w *noteWriter) Write(p []byte) (int, error) {
	if pr := w.cl.prog.Load(); pr != nil {
		pr.note(w.cl.stderr, "%s", strings.TrimSuffix(string(p), "\n"))
		return len(p), nil
	}
	return w.cl.stderr.Write(p)
}

// logHandler sends records to inner (nil when logging is off), and watches
// the library's retries in any case: a long wait is never silent.
type logHandler struct {
	inner slog.Handler
	cl    *cli
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	// Warn is where the library reports retries, which are observed even
	// when nothing is logged.
	return l >= slog.LevelWarn || h.inner != nil && h.inner.Enabled(ctx, l)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "mpgdpr: retrying" {
		h.cl.observeRetry(r)
	}
	if h.inner != nil && h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	if h.inner != nil {
		c.inner = h.inner.WithAttrs(as)
	}
	return &c
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	c := *h
	if h.inner != nil {
		c.inner = h.inner.WithGroup(name)
	}
	return &c
}

// observeRetry counts the retry as a request and, for a wait of more than
// noteAfter, says what is waited for and why: on the progress line, or in
// a note where there is none (unless the log already says it).
func (cl *cli) observeRetry(r slog.Record) {
	var op, reason string
	var attempt int
	var wait time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "op":
			op = a.Value.String()
		case "reason":
			reason = a.Value.String()
		case "attempt":
			attempt = int(a.Value.Int64())
		case "wait":
			wait = a.Value.Duration()
		}
		return true
	})
	p := cl.prog.Load()
	if p != nil {
		p.requests.Add(1)
	}
	// A long wait is said; so are the shorter ones from the third try on,
	// lest several in a row add up to a silence.
	if wait < cl.noteAfter && (attempt < 2 || wait < cl.noteAfter/4) {
		return
	}
	of := ""
	if cl.maxAttempts > 0 {
		of = fmt.Sprintf("/%d", cl.maxAttempts)
	}
	// attempt is the try that failed; the wait is before the next one.
	msg := fmt.Sprintf("retrying %s in %%s (attempt %d%s): %s", op, attempt+1, of, reason)
	cl.waitNote(fmt.Sprintf(msg, "{left}"), fmt.Sprintf(msg, words.Duration(wait)), time.Now().Add(wait), slog.LevelWarn)
}

// waitNote says what the command waits for: on the progress line (line,
// with {left} counting down to end) when it is drawn, else as a note on
// stderr, unless the log at level already says it.
func (cl *cli) waitNote(line, note string, end time.Time, level slog.Level) {
	p := cl.prog.Load()
	if p != nil && p.on {
		p.setWait(line, end)
		return
	}
	if level >= cl.logOn {
		return
	}
	if p != nil {
		p.note(cl.stderr, "mpgdpr: %s", note)
		return
	}
	fmt.Fprintf(cl.stderr, "mpgdpr: %s\n", note)
}
