package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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
	ErrDownloadFailed = errors.New("export download failed")
)

// DownloadOption configures one download.
type DownloadOption func(*downloadConfig)

type downloadConfig struct {
	maxBytes int64
	client   *http.Client
}

// WithMaxExportBytes fails a download larger than n bytes (default: no limit).
func WithMaxExportBytes(n int64) DownloadOption {
	return func(c *downloadConfig) { c.maxBytes = n }
}

// WithDownloadHTTPClient fetches the export with hc. By default a client of
// its own is used, never the API client's: a transport that adds credentials
// must not add them on the storage host. hc must not add credentials either.
func WithDownloadHTTPClient(hc *http.Client) DownloadOption {
	return func(c *downloadConfig) { c.client = hc }
}

// downloadClient has no credentials and follows redirects only to https
// (or loopback, for tests).
var downloadClient = &http.Client{
	Transport: http.DefaultTransport.(*http.Transport).Clone(),
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if err := checkLink(req.URL); err != nil {
			return err
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	},
}

// DownloadExport streams a finished retrieval's export to w, in constant
// memory, and returns the number of bytes written. It fails with
// ErrExportNotReady or ErrNoExportLink before any request when the task is
// not a finished retrieval with a link. The request carries no credentials.
// A failed transfer is retried with the client's retry policy, resuming
// with a Range request when the server supports it; a transfer that cannot
// be completed is an error (ErrDownloadFailed), never a short success.
func (c *Client) DownloadExport(ctx context.Context, task *Task, w io.Writer, opts ...DownloadOption) (int64, error) {
	link, cfg, err := c.prepareDownload(task, opts)
	if err != nil {
		return 0, err
	}
	s := &sink{w: w}
	err = c.download(ctx, link, s, cfg)
	return s.n, err
}

// DownloadExportFile downloads the export to path atomically: into a
// temporary file in the same directory, synced, then renamed over path. On
// failure path is left as it was. The file is created 0600: it holds
// personal data.
func (c *Client) DownloadExportFile(ctx context.Context, task *Task, path string, opts ...DownloadOption) (int64, error) {
	link, cfg, err := c.prepareDownload(task, opts)
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.part")
	if err != nil {
		return 0, fmt.Errorf("mpgdpr: download: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("mpgdpr: download: %w", err)
	}
	s := &sink{w: f, reset: func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return f.Truncate(0)
	}}
	if err := c.download(ctx, link, s, cfg); err != nil {
		return s.n, err
	}
	if err := f.Sync(); err != nil {
		return s.n, fmt.Errorf("mpgdpr: download: %w", err)
	}
	if err := f.Close(); err != nil {
		return s.n, fmt.Errorf("mpgdpr: download: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return s.n, fmt.Errorf("mpgdpr: download: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	return s.n, nil
}

func (c *Client) prepareDownload(task *Task, opts []DownloadOption) (*url.URL, downloadConfig, error) {
	cfg := downloadConfig{client: downloadClient}
	for _, o := range opts {
		o(&cfg)
	}
	if task == nil {
		return nil, cfg, &InputError{Field: "task", Problem: "nil"}
	}
	if task.Status != StatusSuccess {
		return nil, cfg, fmt.Errorf("mpgdpr: download: %w: task %s is %s", ErrExportNotReady, task.TrackingID, orUnknown(task.Status))
	}
	raw := stripQuotes(task.DownloadURL)
	if raw == "" {
		return nil, cfg, fmt.Errorf("mpgdpr: download: %w: task %s", ErrNoExportLink, task.TrackingID)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, cfg, fmt.Errorf("mpgdpr: download: %w: task %s: the link is not an absolute URL", ErrNoExportLink, task.TrackingID)
	}
	if err := checkLink(u); err != nil {
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

// checkLink allows https, and http only to loopback test servers.
func checkLink(u *url.URL) error {
	if u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil
	}
	return fmt.Errorf("refusing a %s link to %s: exports are fetched over https only", u.Scheme, u.Host)
}

// sink counts what was written, and can start over when it is a file.
type sink struct {
	w     io.Writer
	n     int64
	reset func() error
}

func (s *sink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n += int64(n)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// permanent marks a download failure that retrying cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func (c *Client) download(ctx context.Context, link *url.URL, s *sink, cfg downloadConfig) error {
	pol := c.retry
	start := time.Now()
	shown := safeLink(link)
	for attempt := 1; ; attempt++ {
		err := c.fetchOnce(ctx, link, s, cfg)
		if err == nil {
			return nil
		}
		var perm permanent
		if ctx.Err() != nil || errors.As(err, &perm) || errors.Is(err, ErrExportTooLarge) {
			return fmt.Errorf("mpgdpr: download %s: %w", shown, err)
		}
		wait := pol.backoff(attempt, c.rand)
		if !pol.attemptsLeft(attempt) || wait > pol.MaxElapsed-time.Since(start) {
			return fmt.Errorf("mpgdpr: download %s: %w after %d attempts (%d bytes received): %v", shown, ErrDownloadFailed, attempt, s.n, err)
		}
		c.logger.Warn("mpgdpr: retrying download", "attempt", attempt, "wait", wait, "received", s.n, "reason", c.redact(err.Error()))
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("mpgdpr: download %s: %w", shown, err)
		}
	}
}

// fetchOnce makes one request, resuming at s.n when something was already
// received and the server honours the Range request.
func (c *Client) fetchOnce(ctx context.Context, link *url.URL, s *sink, cfg downloadConfig) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link.String(), nil)
	if err != nil {
		return permanent{err}
	}
	if s.n > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(s.n, 10)+"-")
	}
	resp, err := cfg.client.Do(req)
	if err != nil {
		return errors.New(c.redact(scrubURLError(err)))
	}
	defer drainClose(resp)
	switch {
	case resp.StatusCode == http.StatusPartialContent && s.n > 0:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(s.n, 10)+"-") {
			return permanent{fmt.Errorf("%w: the server resumed at the wrong offset (%q)", ErrDownloadFailed, resp.Header.Get("Content-Range"))}
		}
	case resp.StatusCode == http.StatusOK:
		if s.n > 0 { // no resume: start over, if the sink can
			if s.reset == nil {
				return permanent{fmt.Errorf("%w: lost the connection after %d bytes and the server cannot resume", ErrDownloadFailed, s.n)}
			}
			if err := s.reset(); err != nil {
				return permanent{err}
			}
			s.n = 0
		}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	default: // 403/404: an expired or wrong link will not get better
		return permanent{fmt.Errorf("%w: HTTP %d (the link may have expired: check the retrieval again for a fresh one)", ErrDownloadFailed, resp.StatusCode)}
	}
	want := int64(-1)
	if resp.ContentLength >= 0 {
		want = s.n + resp.ContentLength
	}
	if cfg.maxBytes > 0 && want > cfg.maxBytes {
		return fmt.Errorf("%w: %d bytes, the maximum is %d", ErrExportTooLarge, want, cfg.maxBytes)
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
	return nil
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
