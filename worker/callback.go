package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"github.com/privacykit/mpgdpr/worker/webhook"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// A callback notice's delivery state (mpgdpr_callback.status;
// CallbackStatus.State).
const (
	CallbackNone      = "none"      // the request asked for notices; none is due yet
	CallbackPending   = "pending"   // due, not yet attempted
	CallbackDelivered = "delivered" // answered 2xx
	CallbackFailing   = "failing"   // attempted and failed; will be retried
	CallbackGivenUp   = "given_up"  // still failing give_up_after after it was due
)

// The notices' types (the mpgdpr format's "type").
const (
	noticeEnded    = "request.ended" // the request reached a final state
	noticeProgress = "item.changed"  // one item changed ([callbacks] progress)
)

// queueCallback is the River queue of deliveries: a slow receiver never
// holds up creates or polls.
const queueCallback = "mpgdpr_callback"

// callbackArgs delivers one notice (a row of mpgdpr_callback); the job
// carries its id alone, never the URL.
type callbackArgs struct {
	CallbackID int64 `json:"callback_id" river:"unique"`
}

func (callbackArgs) Kind() string { return "mpgdpr_callback" }
func (callbackArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueCallback, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}
}

// requestChanged is called in the transaction of every change to a
// request's items (settleRequest); it enqueues the request's callback
// notice when one is due, in that transaction: the notice exists if and
// only if the change is committed.
func (w *Worker[TTx]) requestChanged(ctx context.Context, tx dbTx, ch requestChange) error {
	final := ch.New != ch.Old && isFinal(ch.New)
	progress := !final && ch.Project != "" && w.cfg.Callbacks.Progress
	if !final && !progress {
		return nil
	}
	var cbURL, format string
	if err := tx.queryRow(ctx, `SELECT callback_url, callback_format FROM mpgdpr_request WHERE reference = ?`, ch.Reference).Scan(&cbURL, &format); err != nil {
		return err
	}
	if cbURL == "" {
		return nil
	}
	typ := noticeEnded
	if !final {
		typ = noticeProgress
	}
	var id int64
	if err := tx.queryRow(ctx, `INSERT INTO mpgdpr_callback (reference, type, state, project, item_state, format, delivery_id, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		ch.Reference, typ, ch.New, ch.Project, ch.ItemState, format, newDeliveryID(), CallbackPending, workerdb.FormatTime(ch.At)).Scan(&id); err != nil {
		return err
	}
	if _, err := w.river.InsertTx(ctx, tx.raw().(TTx), callbackArgs{CallbackID: id}, nil); err != nil {
		return fmt.Errorf("worker: enqueue callback: %w", err)
	}
	return nil
}

// newDeliveryID names one notice; every attempt to deliver it sends it.
func newDeliveryID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "dlv_" + hex.EncodeToString(b)
}

// checkCallback checks a request's callback URL and format before it is
// stored: callbacks configured (a signing key), the URL's host allowed,
// and for OpenDSR notices an OpenDSR key.
func (c *Config) checkCallback(raw, format string) error {
	if err := c.checkCallbackURL(raw); err != nil {
		return err
	}
	if format == CallbackOpenDSR && !c.Callbacks.openDSR() {
		return &RequestError{"callback format", "OpenDSR notices are not configured ([callbacks] opendsr_key_file)"}
	}
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
	if !c.Callbacks.enabled() {
		return &RequestError{"callback url", "callbacks are not configured on this worker ([callbacks] key_file or key_env)"}
	}
	if _, ok := c.Callbacks.allowed(u); !ok {
		what := "host"
		if u.Scheme == "http" {
			what = "plain-HTTP host"
		}
		return &RequestError{"callback url", fmt.Sprintf("%s %q is not in [callbacks] allow", what, u.Host)}
	}
	return nil
}

// callbackRuntime is what a worker that delivers notices holds: the keys,
// read at start, and the HTTP client.
type callbackRuntime struct {
	key     []byte
	openDSR *rsa.PrivateKey
	client  *http.Client
}

// newCallbackRuntime reads the keys; nil when callbacks are not configured
// or the worker delivers nothing (intake-only).
func newCallbackRuntime(cfg *Config, intakeOnly bool) (*callbackRuntime, error) {
	if intakeOnly || !cfg.Callbacks.enabled() {
		return nil, nil
	}
	key, err := cfg.callbackKey()
	if err != nil {
		return nil, err
	}
	rt := &callbackRuntime{key: key, client: cfg.Callbacks.httpClient()}
	if cfg.Callbacks.openDSR() {
		if rt.openDSR, err = cfg.openDSRSigner(); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

type schemeKey struct{}

// errAddressRefused: the callback's host resolved to an address that is
// not public and not listed.
var errAddressRefused = errors.New("address not allowed")

// httpClient is the client notices are sent with: no proxy (the address
// check must see the receiver's own address), no redirect followed, and
// every resolved address checked at dial time, so a name that resolves to
// a private address (DNS rebinding) is refused.
func (c *CallbackConfig) httpClient() *http.Client {
	d := &net.Dialer{
		Timeout: time.Duration(c.Timeout),
		ControlContext: func(ctx context.Context, network, address string, _ syscall.RawConn) error {
			host, port, err := net.SplitHostPort(address)
			if err != nil {
				return errAddressRefused
			}
			a, err := netip.ParseAddr(host)
			if err != nil {
				return errAddressRefused
			}
			scheme, _ := ctx.Value(schemeKey{}).(string)
			if !c.dialAllowed(a, port, scheme) {
				return errAddressRefused
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   time.Duration(c.Timeout),
		ResponseHeaderTimeout: time.Duration(c.Timeout),
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       time.Duration(c.Timeout),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// backoff is the wait after the attempt-th failed attempt: RetryMin,
// doubling, at most RetryMax.
func (c *CallbackConfig) backoff(attempt int) time.Duration {
	d, lim := time.Duration(c.RetryMin), time.Duration(c.RetryMax)
	for i := 1; i < attempt && d < lim; i++ {
		d *= 2
	}
	return min(d, lim)
}

// callbackWorker delivers notices.
type callbackWorker[TTx any] struct {
	river.WorkerDefaults[callbackArgs]
	w *Worker[TTx]
}

// NextRetry waits backoff after a failed attempt.
func (cw *callbackWorker[TTx]) NextRetry(job *river.Job[callbackArgs]) time.Time {
	return time.Now().Add(cw.w.cfg.Callbacks.backoff(job.Attempt))
}

// Timeout leaves the attempt its own timeout and the bookkeeping some room.
func (cw *callbackWorker[TTx]) Timeout(*river.Job[callbackArgs]) time.Duration {
	return time.Duration(cw.w.cfg.Callbacks.Timeout) + 30*time.Second
}

func (cw *callbackWorker[TTx]) Work(ctx context.Context, job *river.Job[callbackArgs]) error {
	return cw.w.deliver(ctx, job.Args.CallbackID)
}

// callbackRow is a notice and what its body needs of its request.
type callbackRow struct {
	ID                                    int64
	Reference, Type, State, Project       string
	ItemState, Format, DeliveryID, Status string
	CreatedAt                             time.Time
	Attempts                              int
	URL, Kind, ComplianceType             string
	ReceivedAt, CompletedAt               time.Time
	Ext                                   *Extension
}

// callbackAttemptError is a failed attempt, as River records it: the
// status or the error's class, never the URL.
type callbackAttemptError struct{ detail string }

func (e *callbackAttemptError) Error() string { return "worker: callback: " + e.detail }

// deliver makes one attempt to deliver notice id and records it.
func (w *Worker[TTx]) deliver(ctx context.Context, id int64) error {
	r, err := w.loadCallback(ctx, id)
	if err != nil {
		if isNoRows(err) {
			return nil // purged with its request
		}
		return err
	}
	if r.Status == CallbackDelivered || r.Status == CallbackGivenUp {
		return nil
	}
	attempt := r.Attempts + 1
	code, class := w.attempt(ctx, r)
	if ctx.Err() != nil {
		// The worker is stopping (or the job ran out of time): not the
		// receiver's failure; River runs the job again.
		return ctx.Err()
	}
	now := time.Now()
	status, ev := CallbackDelivered, workerdb.EventCallbackSent
	detail := fmt.Sprintf("%s %s attempt %d: ", r.DeliveryID, r.Type, attempt)
	switch {
	case class == "" && code >= 200 && code < 300:
		detail += fmt.Sprintf("status %d", code)
	default:
		if class == "" {
			class = fmt.Sprintf("status %d", code)
			if code >= 300 && code < 400 {
				class = fmt.Sprintf("redirect not followed (status %d)", code)
			}
		}
		detail += class
		status, ev = CallbackFailing, workerdb.EventCallbackFailed
	}
	givenUp := status == CallbackFailing && now.Sub(r.CreatedAt) >= time.Duration(w.cfg.Callbacks.GiveUpAfter)
	err = inTx(ctx, w.db, func(tx dbTx) error {
		delivered, gaveUp, lastErr := "", "", ""
		if status == CallbackDelivered {
			delivered = workerdb.FormatTime(now)
		} else {
			lastErr = class
		}
		st := status
		if givenUp {
			st, gaveUp = CallbackGivenUp, workerdb.FormatTime(now)
		}
		if _, err := tx.exec(ctx, `UPDATE mpgdpr_callback SET status = ?, attempts = ?, last_attempt_at = ?, last_status = ?, last_error = ?, delivered_at = ?, given_up_at = ? WHERE id = ?`,
			st, attempt, workerdb.FormatTime(now), code, lastErr, delivered, gaveUp, r.ID); err != nil {
			return err
		}
		if err := addEvent(ctx, tx, event{At: now, Reference: r.Reference, Project: r.Project, Event: ev, Detail: detail}); err != nil {
			return err
		}
		if givenUp {
			return addEvent(ctx, tx, event{At: now, Reference: r.Reference, Project: r.Project, Event: workerdb.EventCallbackGivenUp,
				Detail: fmt.Sprintf("%s %s after %d attempts over %s", r.DeliveryID, r.Type, attempt, now.Sub(r.CreatedAt).Round(time.Second))})
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.metrics.callbackAttempt(status, givenUp)
	if status == CallbackFailing && !givenUp {
		w.log.Warn("mpgdpr worker: callback notice not delivered; will retry", "reference", r.Reference, "attempt", attempt, "problem", class)
		return &callbackAttemptError{detail}
	}
	if givenUp {
		w.log.Error("mpgdpr worker: callback notice given up", "reference", r.Reference, "attempts", attempt, "problem", class)
	}
	return nil
}

func (w *Worker[TTx]) loadCallback(ctx context.Context, id int64) (*callbackRow, error) {
	r := &callbackRow{ID: id}
	var created, received, completed, extReason, extAt string
	err := w.db.queryRow(ctx, `SELECT c.reference, c.type, c.state, c.project, c.item_state, c.format, c.delivery_id, c.status, c.created_at, c.attempts,
		r.callback_url, r.kind, r.compliance_type, r.received_at, r.completed_at, r.extension_reason, r.extension_notice_at
		FROM mpgdpr_callback c JOIN mpgdpr_request r ON r.reference = c.reference WHERE c.id = ?`, id).Scan(
		&r.Reference, &r.Type, &r.State, &r.Project, &r.ItemState, &r.Format, &r.DeliveryID, &r.Status, &created, &r.Attempts,
		&r.URL, &r.Kind, &r.ComplianceType, &received, &completed, &extReason, &extAt)
	if err != nil {
		return nil, err
	}
	r.CreatedAt, r.ReceivedAt = workerdb.ParseTime(created), workerdb.ParseTime(received)
	if completed != "" {
		r.CompletedAt = workerdb.ParseTime(completed)
	}
	if extReason != "" {
		r.Ext = &Extension{Reason: extReason, NoticeAt: workerdb.ParseTime(extAt)}
	}
	return r, nil
}

// attempt POSTs the notice once: the status code, or the class of the
// error (never its text, which quotes the URL).
func (w *Worker[TTx]) attempt(ctx context.Context, r *callbackRow) (code int, class string) {
	if w.cb == nil {
		return 0, "this worker has no [callbacks] signing key"
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return 0, "bad callback URL"
	}
	if _, ok := w.cfg.Callbacks.allowed(u); !ok {
		// The configuration changed since the request was taken in.
		return 0, "host no longer in [callbacks] allow"
	}
	body, header, err := w.noticeFor(r)
	if err != nil {
		return 0, err.Error()
	}
	actx, cancel := context.WithTimeout(context.WithValue(ctx, schemeKey{}, u.Scheme), time.Duration(w.cfg.Callbacks.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "bad callback URL"
	}
	req.Header = header
	resp, err := w.cb.client.Do(req)
	if err != nil {
		return 0, errorClass(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, ""
}

// errorClass names what went wrong with a request without quoting it.
func errorClass(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, errAddressRefused):
		return "address not allowed (not public, and not listed in [callbacks] allow)"
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return "timeout"
	case errors.As(err, &dns):
		return "name not resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &op) && op.Op == "remote error":
		return "TLS error"
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
		return "TLS error"
	}
	return "network error"
}

// notice is the mpgdpr format's body.
type notice struct {
	DeliveryID     string     `json:"delivery_id"`
	Type           string     `json:"type"`
	Reference      string     `json:"reference"`
	Kind           string     `json:"kind"`
	ComplianceType string     `json:"compliance_type"`
	State          string     `json:"state"`
	Project        string     `json:"project,omitempty"`
	ItemState      string     `json:"item_state,omitempty"`
	At             time.Time  `json:"at"`
	CompletedAt    *time.Time `json:"completed_at,omitempty"`
	Due            string     `json:"due"`
}

// openDSRNotice is OpenDSR 1.0's status callback body.
type openDSRNotice struct {
	ControllerID           string         `json:"controller_id"`
	ExpectedCompletionTime string         `json:"expected_completion_time"`
	StatusCallbackURL      string         `json:"status_callback_url"`
	SubjectRequestID       string         `json:"subject_request_id"`
	RequestStatus          string         `json:"request_status"`
	APIVersion             string         `json:"api_version"`
	Extensions             map[string]any `json:"extensions,omitempty"`
}

// openDSRStatus maps a request state to OpenDSR's four statuses. OpenDSR
// has no failure: a failed or unknown request stays "in_progress" (it
// needs a person) and the worker's own state is in the processor's
// extension.
func openDSRStatus(state string) string {
	switch state {
	case RequestReceived:
		return "pending"
	case StateDone:
		return "completed"
	case StateCancelled:
		return "cancelled"
	}
	return "in_progress"
}

// noticeFor builds a notice's body and headers. The body depends on the
// row alone, so every attempt sends the same bytes.
func (w *Worker[TTx]) noticeFor(r *callbackRow) ([]byte, http.Header, error) {
	dl := requestDeadline(r.ComplianceType, r.ReceivedAt, r.Ext, r.CompletedAt, r.CreatedAt)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "mpgdpr-worker")
	h.Set(webhook.DeliveryHeader, r.DeliveryID)
	if r.Format == CallbackOpenDSR {
		if w.cb.openDSR == nil {
			return nil, nil, errors.New("this worker has no [callbacks] opendsr_key_file")
		}
		n := openDSRNotice{
			ControllerID:      w.cfg.Callbacks.OpenDSRControllerID,
			StatusCallbackURL: r.URL, SubjectRequestID: r.Reference,
			RequestStatus: openDSRStatus(r.State), APIVersion: OpenDSRVersion,
		}
		switch {
		case !r.CompletedAt.IsZero():
			n.ExpectedCompletionTime = r.CompletedAt.UTC().Format(time.RFC3339)
		case !dl.By.IsZero():
			n.ExpectedCompletionTime = dl.By.UTC().Format(time.RFC3339)
		default:
			n.ExpectedCompletionTime = r.ReceivedAt.UTC().Format(time.RFC3339)
		}
		ext := map[string]any{"state": r.State, "delivery_id": r.DeliveryID}
		if r.Project != "" {
			ext["project"], ext["item_state"] = r.Project, r.ItemState
		}
		n.Extensions = map[string]any{w.cfg.Callbacks.OpenDSRDomain: ext}
		body, err := json.Marshal(n)
		if err != nil {
			return nil, nil, err
		}
		sig, err := webhook.SignOpenDSR(w.cb.openDSR, body)
		if err != nil {
			return nil, nil, errors.New("OpenDSR signing failed")
		}
		h.Set(webhook.OpenDSRDomainHeader, w.cfg.Callbacks.OpenDSRDomain)
		h.Set(webhook.OpenDSRSignatureHeader, sig)
		return body, h, nil
	}
	n := notice{
		DeliveryID: r.DeliveryID, Type: r.Type, Reference: r.Reference, Kind: r.Kind, ComplianceType: r.ComplianceType,
		State: r.State, Project: r.Project, ItemState: r.ItemState, At: r.CreatedAt.UTC(),
	}
	if !r.CompletedAt.IsZero() && isFinal(r.State) {
		c := r.CompletedAt.UTC()
		n.CompletedAt = &c
	}
	if !dl.Due.IsZero() {
		n.Due = dl.Due.Format(time.DateOnly)
	}
	body, err := json.Marshal(n)
	if err != nil {
		return nil, nil, err
	}
	h.Set(webhook.SignatureHeader, webhook.Sign(w.cb.key, time.Now(), body))
	return body, h, nil
}

// callbackStatus sums up the delivery of ref's notices, for RequestStatus:
// nil when the request names no callback URL.
func (w *Worker[TTx]) callbackStatus(ctx context.Context, q querier, ref string) (*CallbackStatus, error) {
	var cbURL string
	if err := q.queryRow(ctx, `SELECT callback_url FROM mpgdpr_request WHERE reference = ?`, ref).Scan(&cbURL); err != nil {
		if isNoRows(err) {
			return nil, ErrUnknownReference
		}
		return nil, err
	}
	if cbURL == "" {
		return nil, nil
	}
	cs := &CallbackStatus{State: CallbackNone}
	seen := map[string]bool{}
	err := collect(ctx, q, `SELECT status, attempts, last_error, delivered_at FROM mpgdpr_callback WHERE reference = ? ORDER BY id`, []any{ref}, func(r rowScanner) error {
		var status, lastErr, delivered string
		var attempts int
		if err := r.Scan(&status, &attempts, &lastErr, &delivered); err != nil {
			return err
		}
		seen[status] = true
		cs.Attempts += attempts
		if lastErr != "" {
			cs.LastError = lastErr
		}
		if delivered != "" {
			t := workerdb.ParseTime(delivered)
			cs.DeliveredAt = &t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// What needs attention wins: given up, then failing, then pending.
	for _, s := range []string{CallbackGivenUp, CallbackFailing, CallbackPending, CallbackDelivered} {
		if seen[s] {
			cs.State = s
			break
		}
	}
	if cs.State == CallbackDelivered {
		cs.LastError = ""
	}
	return cs, nil
}

// OpenDSRVersion is the OpenDSR (formerly OpenGDPR) specification version
// of the notices and of the HTTP API's OpenDSR endpoints: 1.0, whose
// examples give "api_version": "1.0".
const OpenDSRVersion = "1.0"
