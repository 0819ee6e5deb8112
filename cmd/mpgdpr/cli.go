package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/exitcode"
	"github.com/privacykit/mpgdpr/internal/redact"
)

// Environment variables read for credentials and the region.
const (
	envToken        = "MIXPANEL_GDPR_TOKEN"
	envProjectToken = "MIXPANEL_PROJECT_TOKEN"
	envAPISecret    = "MIXPANEL_API_SECRET"
	envRegion       = "MIXPANEL_REGION"
	envBaseURL      = "MIXPANEL_BASE_URL"
	envLog          = "MPGDPR_LOG"
	envNoteAfter    = "MPGDPR_NOTE_AFTER"
)

// cli is one run of the command: its streams and environment.
type cli struct {
	stdin     io.Reader
	stdout    io.Writer // redacting
	stderr    io.Writer // redacting
	rawStderr io.Writer // for the terminal check and the progress line
	env       map[string]string
	secrets   *secrets
	// limiter, if set, is shared by every client this cli builds (the
	// demo's steps), since the server's limit is per project.
	limiter *rate.Limiter

	verbose bool         // --verbose
	logger  *slog.Logger // for the library (WithLogger) and the command's own log lines
	logOn   slog.Level   // the lowest level logged; above slog.LevelError: none
	code    int          // the exit code the command ran to (see exits)

	// noteAfter is how long a wait may last before it is said
	// (MPGDPR_NOTE_AFTER, default 3s); maxAttempts is the retry policy's
	// (0: no limit), for "attempt 3/8".
	noteAfter   time.Duration
	maxAttempts int
	prog        atomic.Pointer[progress] // the command's progress line, if any
}

func newCLI(stdin io.Reader, stdout, stderr io.Writer, environ []string) *cli {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	s := &secrets{}
	// Secrets from the environment are known before anything is printed.
	for _, k := range []string{envToken, envProjectToken, envAPISecret} {
		s.add(env[k])
	}
	return &cli{
		stdin:     stdin,
		stdout:    &redactWriter{w: stdout, s: s},
		stderr:    &redactWriter{w: stderr, s: s},
		rawStderr: stderr,
		env:       env,
		secrets:   s,
		logger:    slog.New(slog.DiscardHandler),
		logOn:     slog.LevelError + 1,
		noteAfter: defaultNoteAfter,
	}
}

// secrets are the values no output may show. The library already keeps
// them out of its errors; this is the last line of defence for anything
// this command prints (a server could echo a token in an error message,
// a path could contain one). The rule (which forms, which lengths) is
// internal/redact's, the one every module uses.
type secrets struct {
	mu  sync.Mutex // serialises add
	set atomic.Pointer[redact.Set]
}

func (s *secrets) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set.Store(s.set.Load().With(v))
}

func (s *secrets) redact(p []byte) []byte {
	out, _ := s.set.Load().Bytes(p)
	return out
}

// redactString is redact for a string.
func (s *secrets) redactString(t string) string { return s.set.Load().String(t) }

// redactWriter replaces secrets in every write. Everything this command
// prints is written a line (or a table) at a time, so a secret is never
// split across two writes.
type redactWriter struct {
	mu sync.Mutex
	w  io.Writer
	s  *secrets
}

func (r *redactWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(r.s.redact(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// apiFlags are the flags of every command that talks to Mixpanel.
type apiFlags struct {
	token, projectToken, apiSecret string
	region, baseURL                string
	rate                           float64
	retryFor                       time.Duration
	json                           bool
	progress                       string
}

func (cl *cli) addAPIFlags(fs *pflag.FlagSet, a *apiFlags) {
	fs.StringVar(&a.token, "token", "", "GDPR OAuth token (default $"+envToken+"; a flag is visible in ps: prefer the variable)")
	fs.StringVar(&a.projectToken, "project-token", "", "project token (default $"+envProjectToken+")")
	fs.StringVar(&a.apiSecret, "api-secret", "", "API secret, the password of export archives, to verify or extract them (default $"+envAPISecret+")")
	fs.StringVar(&a.region, "region", "", "data-residency region: us, eu or in (default $"+envRegion+", else us); not with a base URL")
	fs.StringVar(&a.baseURL, "base-url", "", "API base URL instead of the region's, e.g. a proxy (default $"+envBaseURL+"; https; http only on loopback); not with a region")
	fs.Float64Var(&a.rate, "rate", 1, "at most this many API requests per second (Mixpanel allows 1)")
	fs.DurationVar(&a.retryFor, "retry-for", 0, "keep retrying a rate-limited or failing call for up to this long, e.g. 6h (default: the library's 8 attempts within 15m)")
	fs.BoolVar(&a.json, "json", false, "print one JSON object per line instead of a table")
	fs.StringVar(&a.progress, "progress", "auto", "progress line on stderr: auto (when stderr is a terminal), always or never")
}

// client builds the API client from flags and environment. Its errors are
// usage errors: nothing has been sent.
func (cl *cli) client(a *apiFlags, extra ...mpgdpr.Option) (*mpgdpr.Client, error) {
	return cl.newClient(a, true, extra...)
}

// dryRunToken stands in for a token a dry run was not given: a dry run
// sends nothing, and its client only says where and how much it would send.
const dryRunToken = "dry-run-sends-nothing"

// newClient is client; with needTokens false (a dry run), a missing token
// is said in a note and replaced by dryRunToken.
func (cl *cli) newClient(a *apiFlags, needTokens bool, extra ...mpgdpr.Option) (*mpgdpr.Client, error) {
	for _, f := range []struct{ flag, val string }{{"token", a.token}, {"project-token", a.projectToken}, {"api-secret", a.apiSecret}} {
		if f.val != "" {
			cl.secrets.add(f.val)
			fmt.Fprintf(cl.stderr, "note: --%s is visible to other users of this machine (ps); prefer the environment variable\n", f.flag)
		}
	}
	token := firstNonEmpty(a.token, cl.env[envToken])
	project := firstNonEmpty(a.projectToken, cl.env[envProjectToken])
	a.apiSecret = firstNonEmpty(a.apiSecret, cl.env[envAPISecret])
	for _, t := range []struct {
		val        *string
		what, flag string
		env        string
	}{{&token, "GDPR OAuth token", "token", envToken}, {&project, "project token", "project-token", envProjectToken}} {
		if strings.TrimSpace(*t.val) != "" {
			continue
		}
		if needTokens {
			return nil, usagef("missing the %s: set %s (or pass --%s)", t.what, t.env, t.flag)
		}
		fmt.Fprintf(cl.stderr, "note: no %s (%s): not needed for a dry run, a real run needs it\n", t.what, t.env)
		*t.val = dryRunToken
	}
	baseFrom := "--base-url"
	if a.baseURL == "" && cl.env[envBaseURL] != "" {
		a.baseURL, baseFrom = cl.env[envBaseURL], envBaseURL
	}
	regionFrom := "--region"
	if a.region == "" && cl.env[envRegion] != "" {
		regionFrom = envRegion
	}
	regionName := firstNonEmpty(a.region, cl.env[envRegion])
	region, err := mpgdpr.ParseRegion(regionName)
	if err != nil {
		if a.region == "" {
			return nil, usagef("unknown region %q in %s: want us, eu or in", regionName, envRegion)
		}
		return nil, usagef("unknown region %q: want us, eu or in", regionName)
	}
	if regionName != "" && a.baseURL != "" {
		// A base URL replaces the region's host: one of the two would be
		// ignored, and a request meant for the EU could go elsewhere.
		return nil, usagef("%s and %s are both set: a base URL replaces the region's host; give one of them", regionFrom, baseFrom)
	}
	if !(a.rate > 0) || a.rate > 1000 {
		return nil, usagef("--rate %v: want a number of requests per second above 0 (Mixpanel allows 1)", a.rate)
	}
	switch a.progress {
	case "auto", "always", "never":
	default:
		return nil, usagef("--progress %q: want auto, always or never", a.progress)
	}
	opts := []mpgdpr.Option{
		mpgdpr.WithRegion(region),
		mpgdpr.WithRateLimit(rate.Limit(a.rate), 1),
		mpgdpr.WithUserAgent(userAgent()),
	}
	if cl.limiter != nil {
		opts = append(opts, mpgdpr.WithRateLimiter(cl.limiter))
	}
	opts = append(opts, mpgdpr.WithLogger(cl.logger))
	if a.apiSecret != "" {
		opts = append(opts, mpgdpr.WithAPISecret(a.apiSecret))
	}
	if a.baseURL != "" {
		u, err := url.Parse(a.baseURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, usagef("%s: not an absolute http(s) URL", baseFrom)
		}
		if u.User != nil {
			cl.secrets.add(u.User.String())
			if p, ok := u.User.Password(); ok {
				cl.secrets.add(p)
			}
		}
		opts = append(opts, mpgdpr.WithBaseURL(a.baseURL))
	}
	cl.maxAttempts = mpgdpr.DefaultRetryPolicy().MaxAttempts
	if a.retryFor > 0 {
		opts = append(opts, mpgdpr.WithRetryPolicy(mpgdpr.RetryPolicy{MaxAttempts: -1, MaxElapsed: a.retryFor}))
		cl.maxAttempts = 0
	}
	c, err := mpgdpr.New(token, project, append(opts, extra...)...)
	if err != nil {
		msg := trimLib(err)
		var ie *mpgdpr.InputError
		if baseFrom == envBaseURL && errors.As(err, &ie) && ie.Field == "base URL" {
			msg = envBaseURL + ": " + msg
		}
		return nil, &usageError{msg}
	}
	return c, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// table prints rows under a header, aligned.
func (cl *cli) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(cl.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// jsonLine prints v as one JSON line on stdout.
func (cl *cli) jsonLine(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(cl.stderr, "mpgdpr: encoding output: %v\n", err)
		return
	}
	_, _ = cl.stdout.Write(append(b, '\n'))
}

// isTerminal reports whether w is a terminal (a character device), for the
// progress line: a file or a pipe gets none.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// exitFor maps an error to an exit code: usage for a *usageError, else
// as for an API call's error.
func exitFor(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitcode.ForAPI(err)
}

// worse returns the exit code that says more (exitcode.Worse).
func worse(a, b int) int { return exitcode.Worse(a, b) }

// usageError is bad usage or bad input: exit 2, with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// fail reports err for command cmd on stderr and returns its exit code.
func (cl *cli) fail(cmd string, code int, err error) int {
	// The library prefixes its errors with "mpgdpr: "; the command says
	// so once, in front (errors that wrap the library's are built with
	// mpgdpr.Unprefixed where they wrap it).
	fmt.Fprintf(cl.stderr, "mpgdpr %s: %s\n", cmd, trimLib(err))
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(cl.stderr, "Run 'mpgdpr help %s' for usage.\n", cmd)
	}
	return code
}
