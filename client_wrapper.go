package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"golang.org/x/time/rate"

	"github.com/privacykit/mpgdpr/gen"
	"github.com/privacykit/mpgdpr/internal/redact"
)

// Client calls Mixpanel's GDPR/CCPA API for one project. It is safe for
// concurrent use; all calls share one rate limiter.
type Client struct {
	oauthToken   string
	projectToken string
	apiSecret    string
	tokenQuery   string      // "token=<escaped project token>", built once
	secrets      *redact.Set // the three credentials, kept out of every error, log line and body
	bearer       string      // "Bearer <OAuth token>", built once
	base         *url.URL
	http         *http.Client
	send         *http.Client // http with recognisable redirect refusals (markRedirects), built once
	stdTransport bool         // http's transport is net/http's own (isStdTransport)
	userAgent    string
	limiter      *rate.Limiter
	retry        RetryPolicy
	logger       *slog.Logger
	maxRetrieval int
	maxDeletion  int
	verbatimIDs  bool // WithVerbatimDistinctIDs
	rand         func() float64
	raw          *gen.ClientWithResponses
}

// The generated calls get nil query parameters: the only one is the project
// token, which authorize (auth.go) puts on every request, so that credentials
// are set in one place. With nil, the generated request builder also skips
// formatting, splitting, parsing and re-encoding an empty query on every call
// (4 allocations per call; see BENCHMARKS.md).

// maxSuccessBody bounds a success body: a task object is a few KiB, and one
// listing 2000 ids well under a MiB.
const maxSuccessBody = 8 << 20

// New returns a client for the project whose token is projectToken, acting
// with the user's GDPR OAuth token. Both are required, and taken exactly as
// given: a token (or WithAPISecret's secret) with leading or trailing
// whitespace, such as the newline os.ReadFile keeps, or with a control
// character inside is refused with an *InputError naming which credential
// is wrong (never its value). Trim what you read from a file.
func New(oauthToken, projectToken string, opts ...Option) (*Client, error) {
	if err := validateSecret("OAuth token", oauthToken, true); err != nil {
		return nil, err
	}
	if err := validateSecret("project token", projectToken, true); err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := validateSecret("API secret", cfg.apiSecret, false); err != nil {
		return nil, err
	}
	if err := validHeaderValue(cfg.userAgent); err != nil {
		return nil, &InputError{Field: "user agent", Problem: err.Error()}
	}
	base := cfg.baseURL
	if base == "" {
		base, _ = cfg.region.BaseURL()
	}
	u, err := parseBaseURL(base)
	if err != nil {
		return nil, err
	}
	c := &Client{
		oauthToken:   oauthToken,
		projectToken: projectToken,
		apiSecret:    cfg.apiSecret,
		tokenQuery:   "token=" + url.QueryEscape(projectToken),
		bearer:       "Bearer " + oauthToken,
		base:         u,
		userAgent:    cfg.userAgent,
		limiter:      cfg.limiter,
		retry:        cfg.retry.normalized(),
		logger:       cfg.logger,
		maxRetrieval: cfg.maxRetrieval,
		maxDeletion:  cfg.maxDeletion,
		verbatimIDs:  cfg.verbatimIDs,
		rand:         cfg.rand,
	}
	c.secrets = redact.New(c.oauthToken, c.projectToken, c.apiSecret)
	c.http = c.guardRedirects(cfg.httpClient)
	c.send = c.markRedirects()
	c.stdTransport = isStdTransport(c.http.Transport)
	c.raw, err = gen.NewClientWithResponses(u.String(),
		gen.WithHTTPClient(pipeline{c}),
		gen.WithRequestEditorFn(c.authorize))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// guardRedirects copies hc so that a redirect to another host or scheme is
// refused: the request carries the tokens.
func (c *Client) guardRedirects(hc *http.Client) *http.Client {
	cp := *hc
	next := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != c.base.Host || req.URL.Scheme != c.base.Scheme {
			return errorf("refusing a redirect to %s://%s: credentials go to the configured API only", req.URL.Scheme, req.URL.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errorf("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}

// BaseURL is the API base URL the client sends to.
func (c *Client) BaseURL() string { return c.base.String() }

// Raw returns the generated client, sending through the same auth, rate
// limiter and retries, for calls the wrapper does not cover. Leave the
// `token` parameter empty: the client sets it. Response bodies arrive
// bounded (64 KiB of an error, 8 MiB of a success) and with every secret
// the client holds replaced by REDACTED, whether the server sent it as is,
// query-escaped, JSON-escaped (\u0053…), percent-encoded or base64-encoded,
// also in a body that is not valid JSON (internal/redact has the rule; a
// credential shorter than 4 bytes is not looked for). A per-call RequestEditorFn runs after the credentials are set; a
// request it points at another host is refused before sending.
func (c *Client) Raw() *gen.ClientWithResponses { return c.raw }

// MaxIDsPerRequest reports the per-request limits in force.
func (c *Client) MaxIDsPerRequest() (retrieval, deletion int) {
	return c.maxRetrieval, c.maxDeletion
}

// RetrievalRequest asks for everything Mixpanel holds about some people.
type RetrievalRequest struct {
	DistinctIDs    []string
	ComplianceType ComplianceType
	// DisclosureType is for CCPA only; empty means the service default (Data).
	DisclosureType DisclosureType
}

// DeletionRequest asks Mixpanel to erase everything it holds about some people.
type DeletionRequest struct {
	DistinctIDs    []string
	ComplianceType ComplianceType
}

// CreateRetrieval files a retrieval task and returns its id. Nothing is sent
// if the request is invalid. A create is never re-sent once Mixpanel may
// have received it: errors.Is(err, ErrOutcomeUnknown) says to check first.
func (c *Client) CreateRetrieval(ctx context.Context, r RetrievalRequest) (string, error) {
	if err := validateCompliance(r.ComplianceType); err != nil {
		return "", err
	}
	if err := validateDisclosure(r.ComplianceType, r.DisclosureType); err != nil {
		return "", err
	}
	if err := validateIDs(r.DistinctIDs, c.maxRetrieval, c.verbatimIDs); err != nil {
		return "", err
	}
	body := gen.CreateRetrievalRequest{DistinctIds: r.DistinctIDs, ComplianceType: gen.ComplianceType(r.ComplianceType)}
	if r.DisclosureType != "" {
		dt := gen.DisclosureType(r.DisclosureType)
		body.DisclosureType = &dt
	}
	resp, err := c.raw.ClientInterface.CreateRetrieval(ctx, nil, body)
	return c.created("CreateRetrieval", resp, err)
}

// CreateDeletion files a deletion task and returns its id. Nothing is sent
// if the request is invalid. On a 409 the *Error names the IDs that already
// have a deletion running and the tasks covering them; the whole request was
// rejected. See CreateRetrieval for ErrOutcomeUnknown.
func (c *Client) CreateDeletion(ctx context.Context, r DeletionRequest) (string, error) {
	if err := validateCompliance(r.ComplianceType); err != nil {
		return "", err
	}
	if err := validateIDs(r.DistinctIDs, c.maxDeletion, c.verbatimIDs); err != nil {
		return "", err
	}
	body := gen.CreateDeletionRequest{DistinctIds: r.DistinctIDs, ComplianceType: gen.ComplianceType(r.ComplianceType)}
	resp, err := c.raw.ClientInterface.CreateDeletion(ctx, nil, body)
	return c.created("CreateDeletion", resp, err)
}

// CheckRetrieval returns a retrieval task's status; once it is SUCCESS,
// Task.DownloadURL is the export's link. An answer whose task id or link
// carries one of the client's secrets (raw, JSON-escaped or
// percent-encoded) is refused as ErrMalformedResponse, so such a link is
// never followed or written; a secret in any other field is replaced by
// REDACTED.
func (c *Client) CheckRetrieval(ctx context.Context, trackingID string) (*Task, error) {
	if err := validateTrackingID(trackingID); err != nil {
		return nil, err
	}
	resp, err := c.raw.ClientInterface.CheckRetrieval(ctx, trackingID, nil)
	return c.status("CheckRetrieval", resp, err)
}

// CheckDeletion returns a deletion task's status.
func (c *Client) CheckDeletion(ctx context.Context, trackingID string) (*Task, error) {
	if err := validateTrackingID(trackingID); err != nil {
		return nil, err
	}
	resp, err := c.raw.ClientInterface.CheckDeletion(ctx, trackingID, nil)
	return c.status("CheckDeletion", resp, err)
}

// CancelDeletion cancels a deletion that has not started (PENDING or
// STAGING). Once it has, Mixpanel answers 405: errors.Is(err, ErrCannotCancel).
func (c *Client) CancelDeletion(ctx context.Context, trackingID string) error {
	if err := validateTrackingID(trackingID); err != nil {
		return err
	}
	resp, err := c.raw.ClientInterface.CancelDeletion(ctx, trackingID, nil)
	if err != nil {
		return c.callError("CancelDeletion", err)
	}
	defer drainClose(resp)
	if resp.StatusCode/100 != 2 {
		e := newError("CancelDeletion", resp, c.secrets.Deep)
		if e.StatusCode == http.StatusMethodNotAllowed {
			// A cancel retried after its answer was lost meets 405 though it
			// worked: the task is REVOKED then, and that is success.
			if t, cerr := c.CheckDeletion(ctx, trackingID); cerr == nil && t.Status == StatusRevoked {
				return nil
			}
		}
		return e
	}
	return nil
}

// created turns a create's response into its task id. Once a 2xx arrived,
// Mixpanel accepted the task: a body that cannot be read or understood is an
// unknown outcome, never a plain failure that invites a resubmission.
func (c *Client) created(op string, resp *http.Response, err error) (string, error) {
	if err != nil {
		return "", c.callError(op, err)
	}
	defer drainClose(resp)
	if resp.StatusCode/100 != 2 {
		return "", newError(op, resp, c.secrets.Deep)
	}
	cleaned := wasCleaned(resp)
	body, err := readBody(resp)
	if err != nil {
		return "", &OutcomeUnknownError{Op: op, Err: fmt.Errorf("HTTP %d, reading the answer: %w", resp.StatusCode, c.scrub(err))}
	}
	id, err := decodeCreate(body)
	if err == nil && c.tainted(id, cleaned) {
		// Accepted, but under an id that cannot be journaled or followed.
		err = fmt.Errorf("%w: the answer's task id carries one of the client's credentials; refusing it", ErrMalformedResponse)
	}
	if err != nil {
		return "", &OutcomeUnknownError{Op: op, Err: fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)}
	}
	return id, nil
}

func (c *Client) status(op string, resp *http.Response, err error) (*Task, error) {
	if err != nil {
		return nil, c.callError(op, err)
	}
	defer drainClose(resp)
	if resp.StatusCode/100 != 2 {
		return nil, newError(op, resp, c.secrets.Deep)
	}
	cleaned := wasCleaned(resp)
	body, err := readBody(resp)
	if err != nil {
		return nil, errorf("%s: reading the answer: %w", op, c.scrub(err))
	}
	t, err := decodeTaskStatus(body)
	if err == nil {
		err = c.checkTask(t, cleaned)
	}
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	return t, nil
}

// callError wraps a failure that produced no response, naming the call,
// unless the pipeline's error already does: an unknown outcome anywhere in
// the chain, or one of this package's errors (by type: ownError) on top.
// Only the top is looked at for the latter: a transport error wrapping one
// (a *url.Error around a refused redirect) still needs scrubbing.
func (c *Client) callError(op string, err error) error {
	var ou *OutcomeUnknownError
	if errors.As(err, &ou) {
		return err
	}
	if isOwn(err) {
		return err
	}
	return errorf("%s: %w", op, c.scrub(err))
}

// wasCleaned reports whether the pipeline replaced a secret in resp's body.
func wasCleaned(resp *http.Response) bool {
	mb, ok := resp.Body.(*memBody)
	return ok && mb.cleaned
}

func readBody(resp *http.Response) ([]byte, error) {
	if mb, ok := resp.Body.(*memBody); ok {
		// Already read, bounded and redacted by the pipeline: take the
		// bytes as they are instead of copying them again.
		b := mb.take()
		if len(b) > maxSuccessBody {
			return nil, fmt.Errorf("%w: answer larger than %d bytes", ErrMalformedResponse, maxSuccessBody)
		}
		return b, nil
	}
	if n := resp.ContentLength; n >= 0 && n <= maxSuccessBody {
		// The usual case: one allocation of the right size.
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSuccessBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSuccessBody {
		return nil, fmt.Errorf("%w: answer larger than %d bytes", ErrMalformedResponse, maxSuccessBody)
	}
	return b, nil
}
