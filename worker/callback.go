package worker

import (
	"context"
	"net/url"
	"strings"
)

// requestChanged is called in the transaction of every change to a
// request's items (settleRequest); it enqueues the request's callback
// notice when one is due.
// TODO(issue 25): callbacks; until then no request asks for one.
func (w *Worker[TTx]) requestChanged(ctx context.Context, tx dbTx, ch requestChange) error {
	return nil
}

// checkCallbackURL checks a request's callback URL before it is stored.
func (c *Config) checkCallbackURL(raw string) error {
	if len(raw) > 2048 {
		return &RequestError{"callback url", "longer than 2048 bytes"}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || strings.ContainsAny(raw, " \t\r\n") {
		return &RequestError{"callback url", "not an absolute http(s) URL without user info"}
	}
	return nil
}
