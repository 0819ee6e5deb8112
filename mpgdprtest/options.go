package mpgdprtest

import (
	"time"
)

// Credentials and identity the server uses unless told otherwise. They are
// test values, not secrets.
const (
	DefaultOAuthToken   = "mpgdprtest-oauth-token"
	DefaultProjectToken = "mpgdprtest-project-token"
	DefaultAPISecret    = "mpgdprtest-api-secret"
	DefaultProjectID    = int64(1978118)
	DefaultRequester    = "dpo@example.invalid"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	oauth, project, secret string
	projectID              int64
	requester              string
	rps                    float64
	schedule               Schedule
	now                    func() time.Time
	createStatus           int
	createShape            CreateShape
	linkField              string
	maxRetrieval           int
	maxDeletion            int

	listen, downloadListen, downloadURL string
	control                             bool
	controlToken                        string
	onRequest                           func(Request)
}

func defaults() config {
	return config{
		oauth:        DefaultOAuthToken,
		project:      DefaultProjectToken,
		secret:       DefaultAPISecret,
		projectID:    DefaultProjectID,
		requester:    DefaultRequester,
		schedule:     StepPerPoll(),
		now:          time.Now,
		createStatus: 200,
		createShape:  CreateObject,
		linkField:    LinkDownloadURL,
		listen:       DefaultListen,
	}
}

// WithTokens sets the OAuth token the server expects as the bearer token
// (401 otherwise) and the project token it expects as the `token` query
// parameter (403 otherwise).
func WithTokens(oauthToken, projectToken string) Option {
	return func(c *config) { c.oauth, c.project = oauthToken, projectToken }
}

// WithAPISecret sets the project's API secret, the password of the export
// archives the download host serves. An empty secret serves them
// unencrypted, as some older exports were.
func WithAPISecret(secret string) Option {
	return func(c *config) { c.secret = secret }
}

// WithProjectID sets the project_id shown in task objects.
func WithProjectID(id int64) Option {
	return func(c *config) { c.projectID = id }
}

// WithRateLimit answers 429 with a Retry-After header (whole seconds, at
// least 1) to API requests beyond rps per second, in bursts of one, like
// Mixpanel's documented 1 request/second. 0, the default, turns it off.
// The limit runs on the wall clock, not on WithClock's.
func WithRateLimit(rps float64) Option {
	return func(c *config) { c.rps = rps }
}

// WithSchedule sets how tasks move from PENDING to SUCCESS (default
// StepPerPoll).
func WithSchedule(s Schedule) Option {
	return func(c *config) { c.schedule = s }
}

// WithClock replaces time.Now for the Timed schedule and task timestamps,
// so a test can move time forward without sleeping.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// CreateShape is one of the two create answers Mixpanel documents.
type CreateShape int

const (
	// CreateObject answers {"status":"ok","results":{"task_id":"…"}}.
	CreateObject CreateShape = iota
	// CreateArray answers {"status":"ok","results":[{…task…}]}: an array of
	// task objects with the id under tracking_id, the compliance type in
	// lower case and a zone-less timestamp, as another documented example
	// shows.
	CreateArray
)

// WithCreateResponse sets the status (200 or 201, both documented) and the
// shape of create answers, to exercise a client's tolerance of both.
func WithCreateResponse(status int, shape CreateShape) Option {
	return func(c *config) { c.createStatus, c.createShape = status, shape }
}

// The task fields Mixpanel has been documented to carry a finished
// retrieval's link in.
const (
	LinkDownloadURL = "download_url"
	LinkResult      = "result"
	LinkResults     = "results"
)

// WithLinkField sets which task field carries a finished retrieval's
// download link (default LinkDownloadURL).
func WithLinkField(field string) Option {
	return func(c *config) { c.linkField = field }
}

// WithMaxIDs makes the server refuse, with a 400 that is not a contract
// violation, creates carrying more ids than Mixpanel allows this project
// (it has announced 500 for deletions, and 2000/(data groups+1) with data
// groups). 0 leaves the document's limits (2000 and 1999) alone.
func WithMaxIDs(retrieval, deletion int) Option {
	return func(c *config) { c.maxRetrieval, c.maxDeletion = retrieval, deletion }
}
