package mpgdpr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Download errors, for errors.Is.
var (
	// ErrExportNotReady: the retrieval has not reached SUCCESS.
	ErrExportNotReady = errors.New("retrieval export not ready")
	// ErrNoExportLink: the retrieval succeeded but carries no download link.
	ErrNoExportLink = errors.New("retrieval has no download link")
	// ErrExportTooLarge: the export is larger than the allowed maximum.
	ErrExportTooLarge = errors.New("export larger than allowed")
	// ErrDownloadFailed: the export could not be downloaded completely.
	// Every download error after the first request matches it, except
	// ErrExportTooLarge, a failure of the caller's writer or file, and the
	// context's own errors.
	ErrDownloadFailed = errors.New("export download failed")
	// ErrExportIncomplete: the bytes received do not form a complete zip
	// archive (no end of central directory record at the end, or one that
	// does not agree with the size): the transfer was cut, or the storage
	// host sent something else. It also matches ErrDownloadFailed.
	ErrExportIncomplete = fmt.Errorf("%w: not a complete zip archive", ErrDownloadFailed)
)

// DownloadOption configures one download.
type DownloadOption func(*downloadConfig)

type downloadConfig struct {
	maxBytes     int64
	client       *http.Client
	loopbackHTTP bool
}

// WithMaxExportBytes fails a download larger than n bytes (default: no limit).
func WithMaxExportBytes(n int64) DownloadOption {
	return func(c *downloadConfig) { c.maxBytes = n }
}

// WithDownloadHTTPClient fetches the export with hc. By default a client of
// its own is used, never the API client's: a transport that adds credentials
// must not add them on the storage host. hc must not add credentials either.
// Its redirects are checked as the default client's are (https only, no
// secret in the link), then by hc's own CheckRedirect, if any.
func WithDownloadHTTPClient(hc *http.Client) DownloadOption {
	return func(c *downloadConfig) { c.client = hc }
}

// WithInsecureLoopbackDownloads allows export links, and their redirects,
// over plain http to a loopback address (127.0.0.0/8, ::1, localhost), for
// tests with a local storage host. Without it, plain http is allowed only
// when the client itself was pointed at a loopback http API with
// WithBaseURL, as a fake server is. Other hosts always need https.
func WithInsecureLoopbackDownloads() DownloadOption {
	return func(c *downloadConfig) { c.loopbackHTTP = true }
}

// downloadClient has no credentials. Redirects are checked per download
// (see redirectChecker).
var downloadClient = &http.Client{
	Transport: http.DefaultTransport.(*http.Transport).Clone(),
}

// DownloadExport streams a finished retrieval's export to w, in constant
// memory, and returns the number of bytes written.
//
// It fails with ErrExportNotReady or ErrNoExportLink before any request when
// the task is not a finished retrieval with a link, and refuses a link that
// is not https (see WithInsecureLoopbackDownloads). The request carries no
// credentials.
//
// A nil error means the bytes written to w form a complete zip archive: the
// transfer ended as its framing says (Content-Length, chunked encoding or,
// for a body that ends when the connection closes, nothing), and the data
// ends with a zip end of central directory record consistent with its size.
// Anything else is an error matching ErrDownloadFailed (ErrExportIncomplete
// when the bytes are not a complete archive), never a short success; what w
// received then is not a usable export and should be discarded.
//
// A failed transfer is retried with the client's retry policy. It resumes
// with a Range request only when the first answer carried a validator (a
// strong ETag or a Last-Modified date), sent back as If-Range, and only if
// the 206 answer carries the same validator: two versions of the object are
// never spliced. When it cannot resume, the download fails, since bytes
// already written to w cannot be taken back (DownloadExportFile starts over
// instead). A TLS certificate that does not verify, a 4xx answer other than
// 429, and a failure of w are not retried.
func (c *Client) DownloadExport(ctx context.Context, task *Task, w io.Writer, opts ...DownloadOption) (int64, error) {
	link, cfg, err := c.prepareDownload(task, opts)
	if err != nil {
		return 0, err
	}
	s := newSink(w, nil)
	err = c.download(ctx, link, s, cfg)
	return s.n, err
}

func (c *Client) prepareDownload(task *Task, opts []DownloadOption) (*url.URL, downloadConfig, error) {
	cfg := downloadConfig{client: downloadClient}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.client == nil {
		return nil, cfg, &InputError{Field: "download http client", Problem: "nil"}
	}
	if c.base.Scheme == "http" && isLoopback(c.base.Hostname()) {
		cfg.loopbackHTTP = true // a client for a local fake: its storage host is local too
	}
	if task == nil {
		return nil, cfg, &InputError{Field: "task", Problem: "nil"}
	}
	if task.Status != StatusSuccess {
		return nil, cfg, errorf("download: %w: task %s is %s", ErrExportNotReady, c.secrets.String(task.TrackingID), orUnknown(Status(c.secrets.String(string(task.Status)))))
	}
	raw := stripQuotes(task.DownloadURL)
	if raw == "" {
		return nil, cfg, errorf("download: %w: task %s", ErrNoExportLink, c.secrets.String(task.TrackingID))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, cfg, errorf("download: %w: task %s: the link is not an absolute URL", ErrNoExportLink, c.secrets.String(task.TrackingID))
	}
	if err := c.checkLink(u, cfg.loopbackHTTP); err != nil {
		return nil, cfg, &InputError{Field: "download link", Problem: err.Error()}
	}
	return u, cfg, nil
}

func orUnknown(s Status) string {
	if s == "" {
		return "without a status"
	}
	return string(s)
}

// checkLink allows https, and http only to loopback hosts when allowed;
// it refuses a link that carries one of the client's secrets, which must
// never reach another host.
func (c *Client) checkLink(u *url.URL, loopbackHTTP bool) error {
	if c.secrets.Contains(u.String()) { // raw, escaped or encoded
		return errors.New("refusing a link that contains a credential")
	}
	if u.Scheme == "https" || (u.Scheme == "http" && loopbackHTTP && isLoopback(u.Hostname())) {
		return nil
	}
	if u.Scheme == "http" && isLoopback(u.Hostname()) {
		return fmt.Errorf("refusing a plain http link to %s: exports are fetched over https (WithInsecureLoopbackDownloads allows a local test host)", u.Host)
	}
	return fmt.Errorf("refusing a %s link to %s: exports are fetched over https only", u.Scheme, u.Host)
}

// redirectChecker applies checkLink to every redirect of a download, then
// the caller's own policy, if any.
func (c *Client) redirectChecker(cfg downloadConfig) func(*http.Request, []*http.Request) error {
	next := cfg.client.CheckRedirect
	return func(req *http.Request, via []*http.Request) error {
		if err := c.checkLink(req.URL, cfg.loopbackHTTP); err != nil {
			return permanent{fmt.Errorf("%w: redirected: %v", ErrDownloadFailed, err)}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// permanent marks a download failure that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// version is what the first answer said about the object being received,
// so that a resumed transfer continues the same one.
type version struct {
	etag         string // strong ETag, or ""
	lastModified string // Last-Modified, or ""
	total        int64  // size of the whole object, -1 if unknown
}

func (v version) resumable() bool { return v.etag != "" || v.lastModified != "" }

// versionOf reads the validators of an answer. A weak ETag cannot be used
// with If-Range (RFC 9110, 13.1.5).
func versionOf(h http.Header) version {
	v := version{total: -1, lastModified: h.Get("Last-Modified")}
	if e := h.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		v.etag = e
	}
	return v
}

func (c *Client) download(ctx context.Context, link *url.URL, s *sink, cfg downloadConfig) error {
	hc := *cfg.client
	hc.CheckRedirect = c.redirectChecker(cfg)
	cfg.client = &hc
	pol := c.retry
	start := time.Now()
	shown := safeLink(link)
	var ver version
	for attempt := 1; ; attempt++ {
		err := c.fetchOnce(ctx, link, s, cfg, &ver)
		if err == nil {
			return nil
		}
		var perm permanent
		if ctx.Err() != nil || errors.As(err, &perm) || errors.Is(err, ErrExportTooLarge) {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
			return errorf("download %s: %w", shown, err)
		}
		wait := pol.backoff(attempt, c.rand)
		if !pol.attemptsLeft(attempt) || wait > pol.MaxElapsed-time.Since(start) {
			if !errors.Is(err, ErrDownloadFailed) {
				err = fmt.Errorf("%w: %v", ErrDownloadFailed, err)
			}
			return errorf("download %s: %w (after %d attempts, %d bytes received)", shown, err, attempt, s.n)
		}
		c.logger.Warn("mpgdpr: retrying download", "attempt", attempt, "wait", wait, "received", s.n, "reason", c.secrets.String(err.Error()))
		if err := sleep(ctx, wait); err != nil {
			return errorf("download %s: %w", shown, err)
		}
	}
}

// restart empties the sink to fetch the object again from its first byte,
// or fails for good when the sink cannot start over.
func restart(s *sink, why string) error {
	if s.n == 0 {
		return nil
	}
	if err := s.restart(); err != nil {
		return permanent{fmt.Errorf("%w: %s, and %d bytes already written cannot be taken back", ErrDownloadFailed, why, s.n)}
	}
	return nil
}

// fetchOnce makes one request, resuming at s.n when something was already
// received from a version that can be asked for again (If-Range).
func (c *Client) fetchOnce(ctx context.Context, link *url.URL, s *sink, cfg downloadConfig, ver *version) error {
	if s.n > 0 && !ver.resumable() {
		if err := restart(s, "the transfer was cut and the storage host gave no ETag or Last-Modified to resume it safely"); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link.String(), nil)
	if err != nil {
		return permanent{err}
	}
	resuming := s.n > 0
	if resuming {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(s.n, 10)+"-")
		if ver.etag != "" {
			req.Header.Set("If-Range", ver.etag)
		} else {
			req.Header.Set("If-Range", ver.lastModified)
		}
	}
	resp, err := cfg.client.Do(req)
	if err != nil {
		var perm permanent
		if errors.As(err, &perm) { // a redirect refused by redirectChecker
			return perm
		}
		if cause, ok := tlsVerifyError(err); ok {
			return permanent{fmt.Errorf("%w: the storage host's TLS certificate does not verify: %w", ErrDownloadFailed, cause)}
		}
		return errors.New(c.secrets.String(scrubURLError(err)))
	}
	defer drainClose(resp)
	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent && resuming:
		got := versionOf(resp.Header)
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case !ok || start != s.n:
			return permanent{fmt.Errorf("%w: the server resumed at the wrong offset (%q)", ErrDownloadFailed, resp.Header.Get("Content-Range"))}
		case ver.etag != "" && got.etag != ver.etag,
			ver.etag == "" && got.lastModified != ver.lastModified,
			ver.total >= 0 && total >= 0 && total != ver.total:
			// The server ignored If-Range: this is another version.
			if err := restart(s, "the storage host resumed another version of the export"); err != nil {
				return err
			}
			*ver = version{total: -1}
			return errors.New("the storage host resumed another version of the export; starting over")
		}
		if total >= 0 {
			ver.total = total
		}
	case code == http.StatusOK:
		if err := restart(s, "the storage host sent the export again from its start (it changed, or cannot resume)"); err != nil {
			return err
		}
		*ver = versionOf(resp.Header)
		if resp.ContentLength >= 0 {
			ver.total = resp.ContentLength
		}
	case code == http.StatusRequestedRangeNotSatisfiable && resuming:
		// What we hold is not a prefix of what the server has now.
		if err := restart(s, "the storage host has no more bytes to resume with"); err != nil {
			return err
		}
		*ver = version{total: -1}
		return errors.New("the storage host could not resume (HTTP 416); starting over")
	case code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("HTTP %d", code)
	default: // 403/404: an expired or wrong link will not get better
		return permanent{fmt.Errorf("%w: HTTP %d (the link may have expired: check the retrieval again for a fresh one)", ErrDownloadFailed, code)}
	}
	want := int64(-1)
	if resp.ContentLength >= 0 {
		want = s.n + resp.ContentLength
	}
	if cfg.maxBytes > 0 && (want > cfg.maxBytes || ver.total > cfg.maxBytes) {
		return fmt.Errorf("%w: %d bytes, the maximum is %d", ErrExportTooLarge, max(want, ver.total), cfg.maxBytes)
	}
	body := io.Reader(resp.Body)
	if cfg.maxBytes > 0 {
		body = io.LimitReader(resp.Body, cfg.maxBytes-s.n+1)
	}
	if _, err := io.Copy(s, body); err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return permanent{err}
		}
		return err
	}
	if cfg.maxBytes > 0 && s.n > cfg.maxBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrExportTooLarge, cfg.maxBytes)
	}
	if want >= 0 && s.n != want {
		return fmt.Errorf("truncated: %d of %d bytes", s.n, want)
	}
	if ver.total >= 0 && s.n != ver.total {
		return fmt.Errorf("truncated: %d of %d bytes", s.n, ver.total)
	}
	if err := s.complete(); err != nil {
		if resp.ContentLength < 0 && !isChunked(resp) {
			// The body ended when the connection closed: nothing tells a
			// cut from the end, but an incomplete archive is a cut.
			return fmt.Errorf("%w: the connection closed after %d bytes: %v", ErrExportIncomplete, s.n, err)
		}
		return permanent{fmt.Errorf("%w: %d bytes, as the storage host announced: %v", ErrExportIncomplete, s.n, err)}
	}
	return nil
}

func isChunked(resp *http.Response) bool {
	for _, te := range resp.TransferEncoding {
		if te == "chunked" {
			return true
		}
	}
	return false
}

// parseContentRange reads "bytes first-last/total" (total may be "*").
func parseContentRange(h string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, false
	}
	span, size, found := strings.Cut(rest, "/")
	first, last, found2 := strings.Cut(span, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	total = -1
	if size != "*" {
		t, err := strconv.ParseInt(size, 10, 64)
		if err != nil || t <= end {
			return 0, 0, false
		}
		total = t
	}
	return start, total, true
}

// tlsVerifyError finds a certificate verification failure (unknown
// authority, wrong name, expired or otherwise invalid) in a transport
// error, and returns it without the URL that wraps it.
func tlsVerifyError(err error) (error, bool) {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &cv):
		return cv, true
	case errors.As(err, &ua):
		return ua, true
	case errors.As(err, &he):
		return he, true
	case errors.As(err, &ci):
		return ci, true
	}
	return nil, false
}

// writeError marks a failure of the caller's writer, which is not retried.
type writeError struct{ error }

func (w *writeError) Unwrap() error { return w.error }

// safeLink shows a link without its query: a pre-signed storage URL's query
// is a credential.
func safeLink(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.Path
}

// scrubURLError renders a transport error without the request's query.
func scrubURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return ue.Op + " " + safeLink(u) + ": " + ue.Err.Error()
		}
	}
	return err.Error()
}
