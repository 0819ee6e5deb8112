package mpgdpr

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Option configures a Client.
type Option func(*config) error

type config struct {
	region       Region
	baseURL      string
	httpClient   *http.Client
	userAgent    string
	apiSecret    string
	limiter      *rate.Limiter
	retry        RetryPolicy
	logger       *slog.Logger
	maxRetrieval int
	maxDeletion  int
	verbatimIDs  bool
	rand         func() float64
}

// Per-request limits Mixpanel documents. Deletions have been documented as
// 1999 and announced as 500; both are configurable.
const (
	DefaultMaxRetrievalIDs = 2000
	DefaultMaxDeletionIDs  = 1999
)

// WithVerbatimDistinctIDs sends every distinct ID that is not blank and is
// valid UTF-8 byte for byte, control and invisible characters included
// (a tab, U+200B…), instead of refusing it (see ValidateDistinctID).
// Duplicates, blank and non-UTF-8 IDs and lists over the per-request limit
// are still refused.
//
// Use it only for IDs that really hold such characters in Mixpanel, from a
// source known to be exact. The refusal exists because such a character
// is almost always an accident (a stray "\r" from a CRLF file, a
// zero-width space pasted with the ID): the request is accepted, names no
// one, and that person's data silently stays. With this option that
// mistake is no longer caught.
func WithVerbatimDistinctIDs() Option {
	return func(c *config) error {
		c.verbatimIDs = true
		return nil
	}
}

// DefaultRateLimit is Mixpanel's documented limit for the GDPR API.
const DefaultRateLimit = rate.Limit(1) // one request per second

// WithRegion selects the project's data-residency region (default RegionUS).
func WithRegion(r Region) Option {
	return func(c *config) error {
		if _, err := r.BaseURL(); err != nil {
			return err
		}
		c.region = r
		return nil
	}
}

// WithBaseURL sends every call to base instead of the region's host, for a
// proxy or a test server. It must be https, except on a loopback address.
func WithBaseURL(base string) Option {
	return func(c *config) error {
		if _, err := parseBaseURL(base); err != nil {
			return err
		}
		c.baseURL = base
		return nil
	}
}

// WithHTTPClient sends requests with hc. The client is copied, not changed:
// the copy refuses redirects to another host.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return &InputError{Field: "http client", Problem: "nil"}
		}
		c.httpClient = hc
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *config) error { c.userAgent = ua; return nil }
}

// WithAPISecret gives the client the project's API secret, the password of
// retrieval exports. The client keeps it out of errors and logs.
func WithAPISecret(secret string) Option {
	return func(c *config) error { c.apiSecret = secret; return nil }
}

// WithRateLimit gives the client a limiter of its own: at most r requests
// per second, in bursts of at most burst (default 1/s, burst 1, as Mixpanel
// allows). Every attempt, retries included, waits for it. With burst 1 the
// client also sends one request at a time, each 1/r after the previous
// answer began to arrive less half the fastest round trip seen, so that a
// server that times requests strictly does not see two closer than 1/r; the
// first 429 turns that credit off for good (see pace in ratelimit.go, and
// WithRateLimiter).
func WithRateLimit(r rate.Limit, burst int) Option {
	return func(c *config) error {
		if r <= 0 || burst < 1 {
			return &InputError{Field: "rate limit", Problem: fmt.Sprintf("rate %v and burst %d must be positive", r, burst)}
		}
		c.limiter = rate.NewLimiter(r, burst)
		return nil
	}
}

// WithRateLimiter shares l between clients: Mixpanel's limit is per
// project, so every client that talks to the same project should use one,
// e.g. rate.NewLimiter(mpgdpr.DefaultRateLimit, 1). The pacing described at
// WithRateLimit applies across all clients sharing l. A nil limiter turns
// pacing off (for tests against a fake).
func WithRateLimiter(l *rate.Limiter) Option {
	return func(c *config) error { c.limiter = l; return nil }
}

// WithRetryPolicy replaces DefaultRetryPolicy; zero fields keep their
// default (see RetryPolicy).
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *config) error { c.retry = p.normalized(); return nil }
}

// RetryLogMessage is the message of the record WithLogger's logger gets for
// each retry: a handler that watches retries compares a record's Message
// with it, never with a copy of the text.
const RetryLogMessage = "mpgdpr: retrying"

// WithLogger reports each retry to l at Warn level, as RetryLogMessage
// with the attributes op, attempt, wait, reason and (for an HTTP answer)
// status. Nothing logged holds a secret: the reason is redacted.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l != nil {
			c.logger = l
		}
		return nil
	}
}

// WithMaxIDsPerRequest sets how many distinct ids one retrieval and one
// deletion request may carry (defaults 2000 and 1999). Mixpanel has
// announced 500 for deletions, and 2000/(data groups+1) for projects with
// data groups.
func WithMaxIDsPerRequest(retrieval, deletion int) Option {
	return func(c *config) error {
		if retrieval < 1 || deletion < 1 || retrieval > DefaultMaxRetrievalIDs || deletion > DefaultMaxRetrievalIDs {
			return &InputError{Field: "ids per request", Problem: fmt.Sprintf("%d and %d must be between 1 and %d", retrieval, deletion, DefaultMaxRetrievalIDs)}
		}
		c.maxRetrieval, c.maxDeletion = retrieval, deletion
		return nil
	}
}

// parseBaseURL accepts https URLs, and http only on loopback, so a token
// is never sent in clear text across a network.
func parseBaseURL(base string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || u.Host == "" {
		return nil, &InputError{Field: "base URL", Problem: fmt.Sprintf("%q is not an absolute URL", base)}
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, &InputError{Field: "base URL", Problem: "must not carry user info, a query or a fragment"}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, &InputError{Field: "base URL", Problem: "must be https (http only for loopback test servers)"}
		}
	default:
		return nil, &InputError{Field: "base URL", Problem: fmt.Sprintf("scheme %q is not https", u.Scheme)}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func defaultConfig() config {
	return config{
		region:       RegionUS,
		httpClient:   &http.Client{Timeout: 60 * time.Second},
		userAgent:    "mpgdpr-go/" + Version,
		limiter:      rate.NewLimiter(DefaultRateLimit, 1),
		retry:        DefaultRetryPolicy(),
		logger:       slog.New(slog.DiscardHandler),
		maxRetrieval: DefaultMaxRetrievalIDs,
		maxDeletion:  DefaultMaxDeletionIDs,
		rand:         defaultRand,
	}
}
