package main

import (
	"context"
	"log/slog"
	"strings"
)

// setupLogging reads --verbose and MPGDPR_LOG and builds cl.logger, which
// every client gets with WithLogger. Its lines go to stderr through the
// redactor, like everything this command prints.
func (cl *cli) setupLogging() error {
	level, on := slog.LevelDebug, cl.verbose
	if v, set := cl.env[envLog]; set && v != "" && !cl.verbose {
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
	if on {
		inner = slog.NewTextHandler(cl.stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime})
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

// logHandler sends records to inner (nil when logging is off).
type logHandler struct {
	inner slog.Handler
	cl    *cli
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner != nil && h.inner.Enabled(ctx, l)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
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
