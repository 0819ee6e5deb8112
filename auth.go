package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/privacykit/mpgdpr/internal/redact"
)

// authorize is the one place credentials are put on a request: the OAuth
// token as a bearer token and the project token as the `token` query
// parameter, replacing whatever value the generated code left there so the
// parameter is never sent twice. It refuses a request bound for any host but
// the configured API's.
func (c *Client) authorize(_ context.Context, req *http.Request) error {
	if req.URL.Scheme != c.base.Scheme || req.URL.Host != c.base.Host {
		return errorf("refusing to send credentials to %s://%s, not the configured API", req.URL.Scheme, req.URL.Host)
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
		return &unsentError{msg: "refusing to send credentials to " + c.secrets.String(dest) + ", not the configured API"}
	}
	for name, vals := range req.Header {
		if !validHeaderName(name) {
			return &unsentError{msg: fmt.Sprintf("refusing to send an invalid header name %.40q", c.secrets.String(name))}
		}
		for _, v := range vals {
			if err := validHeaderValue(v); err != nil {
				return &unsentError{msg: fmt.Sprintf("refusing to send header %s: invalid value (%v)", name, err)}
			}
		}
	}
	return nil
}

// unsentError is a request the client refused to send: it is neither
// retried nor an unknown outcome, and matches ErrInvalidInput.
type unsentError struct{ msg string } // without the prefix

func (e *unsentError) Error() string        { return prefix + e.msg }
func (e *unsentError) text() string         { return e.msg }
func (e *unsentError) RequestSent() bool    { return false }
func (e *unsentError) Is(target error) bool { return target == ErrInvalidInput }

const redacted = redact.Mask

// redactURL returns a request URL with its credentials masked: the token
// parameter's value, a user info (redact.URL), and any secret.
func (c *Client) redactURL(raw string) string {
	return c.secrets.String(redact.URL(raw))
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
	if err == nil {
		return err
	}
	msg := err.Error()
	if safe := c.secrets.String(msg); safe != msg {
		return &redactedError{msg: safe, plain: c.secrets.String(textOf(err)), err: err}
	}
	return err
}

// redactedError hides a secret found in an error's text. Its cause is kept
// for errors.Is against sentinels only; the cause's own text is not shown.
type redactedError struct {
	msg, plain string // the text, and the text without this package's prefix (Unprefixed)
	err        error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) text() string  { return e.plain }

func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
