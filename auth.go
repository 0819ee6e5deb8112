package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// authorize is the one place credentials are put on a request: the OAuth
// token as a bearer token and the project token as the `token` query
// parameter, replacing whatever value the generated code left there so the
// parameter is never sent twice. It refuses a request bound for any host but
// the configured API's.
func (c *Client) authorize(_ context.Context, req *http.Request) error {
	if req.URL.Scheme != c.base.Scheme || req.URL.Host != c.base.Host {
		return errors.New("mpgdpr: refusing to send credentials to " + req.URL.Scheme + "://" + req.URL.Host + ", not the configured API")
	}
	if req.URL.RawQuery == "token=" || req.URL.RawQuery == "" {
		// What the generated code leaves when the token is empty: skip a
		// parse and re-encode on every call.
		req.URL.RawQuery = c.tokenQuery
	} else {
		q := req.URL.Query()
		q.Set("token", c.projectToken)
		req.URL.RawQuery = q.Encode()
	}
	// One allocation for both values; each header gets a slice of its own
	// (capacity 1, so an Add by a later editor cannot touch the other).
	vals := &[2]string{c.bearer, c.userAgent}
	req.Header["Authorization"] = vals[0:1:1]
	if c.userAgent != "" {
		req.Header["User-Agent"] = vals[1:2:2]
	}
	return nil
}

// checkOutgoing is the last check before a request leaves the pipeline,
// after every request editor ran (a per-call RequestEditorFn given to a
// Raw() call runs after authorize): a request bound anywhere but the
// configured API is refused, since it carries the credentials, and so is a
// header net/http would refuse to send (a permanent error: sending it
// again would fail again). Neither is sent, so neither is retried nor an
// unknown outcome.
func (c *Client) checkOutgoing(req *http.Request) error {
	u := req.URL
	if u == nil || u.Scheme != c.base.Scheme || u.Host != c.base.Host || u.User != nil || (req.Host != "" && req.Host != c.base.Host) {
		dest := "an unnamed host"
		if u != nil {
			dest = u.Scheme + "://" + u.Host
		}
		if req.Host != "" && u != nil && req.Host != u.Host {
			dest += " (Host " + req.Host + ")"
		}
		return &unsentError{msg: "mpgdpr: refusing to send credentials to " + c.redact(dest) + ", not the configured API"}
	}
	for name, vals := range req.Header {
		if !validHeaderName(name) {
			return &unsentError{msg: fmt.Sprintf("mpgdpr: refusing to send an invalid header name %.40q", c.redact(name))}
		}
		for _, v := range vals {
			if err := validHeaderValue(v); err != nil {
				return &unsentError{msg: fmt.Sprintf("mpgdpr: refusing to send header %s: invalid value (%v)", name, err)}
			}
		}
	}
	return nil
}

// unsentError is a request the client refused to send: it is neither
// retried nor an unknown outcome, and matches ErrInvalidInput.
type unsentError struct{ msg string }

func (e *unsentError) Error() string        { return e.msg }
func (e *unsentError) RequestSent() bool    { return false }
func (e *unsentError) Is(target error) bool { return target == ErrInvalidInput }

const redacted = "REDACTED"

// redact removes every secret the client holds from s. It is applied to
// everything that leaves the client as text: errors and log attributes.
func (c *Client) redact(s string) string {
	for _, secret := range c.secrets { // each secret, then its query-escaped form
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return s
}

// redactURL returns u with the token query parameter's value replaced.
func (c *Client) redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return c.redact(raw)
	}
	if q := u.Query(); q.Has("token") {
		q.Set("token", redacted)
		u.RawQuery = q.Encode()
	}
	u.User = nil
	return c.redact(u.String())
}

// scrub makes a transport error safe to show: *url.Error prints the request
// URL, query string and token included. The copy keeps the cause, so
// errors.Is(err, context.Canceled) and errors.As(err, **net.OpError) still work.
func (c *Client) scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: c.redactURL(ue.URL), Err: c.scrubInner(ue.Err)}
	}
	return c.scrubInner(err)
}

func (c *Client) scrubInner(err error) error {
	if err == nil || c.redact(err.Error()) == err.Error() {
		return err
	}
	return &redactedError{msg: c.redact(err.Error()), err: err}
}

// redactedError hides a secret found in an error's text. Its cause is kept
// for errors.Is against sentinels only; the cause's own text is not shown.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
