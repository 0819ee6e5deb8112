package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// BatchTask is one request of a batch that Mixpanel accepted: the task it
// created and the distinct IDs that task covers.
type BatchTask struct {
	// Seq numbers the requests of one batch from 1, in the order they were
	// sent, resubmissions after a 409 included; BeforeChunk saw the same
	// number before the request was sent.
	Seq         int
	TaskID      string
	DistinctIDs []string
	// ResubmitOf is the Seq of the earlier request, of unknown outcome, that
	// this one resubmitted (DeleteAll), or 0. That earlier request may have
	// created a task too; Mixpanel answers 409 to a resubmission while it
	// runs, so a resubmission accepted means it had not been filed, or had
	// already finished.
	ResubmitOf int
}

// Conflict is a part of a request that Mixpanel refused with 409 because
// those IDs already have a deletion running. Nothing was created for them:
// follow TaskIDs (Mixpanel does not say which task covers which ID) to know
// when their data is gone.
type Conflict struct {
	Seq         int      // the request that drew the 409
	DistinctIDs []string // the IDs of that request Mixpanel named as conflicting
	TaskIDs     []string // the running deletion tasks Mixpanel named
	ResubmitOf  int      // as BatchTask.ResubmitOf: the request of unknown outcome this one resubmitted, or 0
}

// BatchResult accounts for every distinct ID given to DeleteAll or
// RetrieveAll: after de-duplication, each ID is in exactly one of
// Tasks, Conflicts, Unknown and Unsent. Nothing is dropped silently.
type BatchResult struct {
	// Tasks are the accepted requests, in the order they were sent.
	Tasks []BatchTask
	// Conflicts are IDs a deletion already covers (409 Conflict).
	Conflicts []Conflict
	// Unknown are the IDs of the one request whose outcome is unknown
	// (ErrOutcomeUnknown; the batch's error matches it): Mixpanel may have
	// accepted it. They are never reported as Unsent. DeleteAll has already
	// resubmitted them as long as its retry policy allowed; resubmitting a
	// deletion again later is safe (an accepted one draws a 409 naming its
	// task). For a retrieval, resubmitting may create a second export:
	// check first.
	Unknown []string
	// Unsent are the IDs never sent, or sent and certainly refused, when the
	// batch stopped early; in input order. They can be submitted again.
	Unsent []string
	// Duplicates lists each ID that appeared more than once in the input;
	// it was sent once.
	Duplicates []string
}

// BatchOption configures one DeleteAll or RetrieveAll call.
type BatchOption func(*batchConfig)

type batchConfig struct {
	chunk      int
	before     func(seq int, ids []string) error
	beforeSend func(seq int, ids []string) error
	onChunk    func(BatchTask) error
	onConflict func(Conflict) error
	onUnknown  func(seq int, ids []string, err error) error
}

// WithChunkSize sends at most n IDs per request, instead of the client's
// per-request limit (WithMaxIDsPerRequest). n may not exceed that limit.
func WithChunkSize(n int) BatchOption {
	return func(c *batchConfig) { c.chunk = n }
}

// WithBeforeChunk calls f just before each request is sent, with its
// sequence number and IDs, so that a caller can record "about to send"
// durably first. An error from f stops the batch before that request: its
// IDs and all later ones are Unsent. f must not keep ids.
func WithBeforeChunk(f func(seq int, ids []string) error) BatchOption {
	return func(c *batchConfig) { c.before = f }
}

// WithBeforeSend calls f once per request, after the request's turn at the
// rate limiter and right before its first attempt goes on the wire (retries
// of that attempt do not call it again), with its sequence number and IDs.
// Unlike WithBeforeChunk, which runs before the possibly long wait for the
// limiter, a job killed while waiting for its turn has not yet called f: a
// journal that marks IDs as "sending" in f marks only IDs that may really
// have been sent. An error from f stops the batch: that request is not sent
// and its IDs and all later ones are Unsent (the limiter's token is spent
// all the same); if it was a resubmission of a request whose outcome is
// unknown, its IDs stay Unknown. DeleteAll calls f again before it resubmits a deletion whose
// outcome was unknown, with the resubmission's new sequence number. f must
// not keep ids.
func WithBeforeSend(f func(seq int, ids []string) error) BatchOption {
	return func(c *batchConfig) { c.beforeSend = f }
}

// WithOnChunk calls f as soon as a request is accepted, so that a caller can
// record the task id before anything else is sent. An error from f stops
// the batch: the task stays in Tasks, all later IDs are Unsent.
func WithOnChunk(f func(BatchTask) error) BatchOption {
	return func(c *batchConfig) { c.onChunk = f }
}

// WithOnUnknown calls f when a request's outcome is unknown
// (ErrOutcomeUnknown: it may have been accepted), with its sequence number,
// IDs and the error, before anything else is sent. DeleteAll then
// resubmits those IDs under a new sequence number (BeforeChunk and
// BeforeSend see it, and the BatchTask or Conflict that settles it has
// ResubmitOf set to this one's); RetrieveAll stops. An error from f stops
// the batch: the IDs stay Unknown. f must not keep ids.
func WithOnUnknown(f func(seq int, ids []string, err error) error) BatchOption {
	return func(c *batchConfig) { c.onUnknown = f }
}

// WithOnConflict calls f when a request draws a 409, before the rest of
// its IDs are resubmitted. An error from f stops the batch there: the
// conflict stays in Conflicts, the IDs not yet accepted are Unsent.
func WithOnConflict(f func(Conflict) error) BatchOption {
	return func(c *batchConfig) { c.onConflict = f }
}

// DeleteAll asks Mixpanel to erase everything it holds about any number of
// people. The IDs are de-duplicated and sent in order, in requests of at
// most the client's deletion limit (or WithChunkSize), one after another
// under the client's rate limiter and retry policy.
//
// Every ID is checked before anything is sent: an empty list, a blank ID or
// one that is not valid UTF-8 is an *InputError, and nothing is sent.
//
// A 409 (some IDs of a request already have a deletion running) is handled:
// those IDs go to Conflicts with the tasks Mixpanel named, and the other IDs
// of that request are resubmitted at once (again and again if need be). A
// 409 that names none of the request's IDs, or no task, leaves nothing to
// follow: it stops the batch like any refusal (SplitCreate has the rule).
//
// A request whose outcome is unknown (ErrOutcomeUnknown: a 5xx, a dropped
// connection; see CreateRefused) is resubmitted with the same IDs after the
// client's retry backoff, within its RetryPolicy's attempts and MaxElapsed,
// until the service gives an answer that settles it: accepted (Tasks), or
// 409 because the first one was filed (Conflicts, naming its task). Each
// resubmission is a request of its own for the journaling callbacks:
// WithOnUnknown sees the unknown one, WithBeforeChunk and WithBeforeSend see
// the resubmission under a new Seq, and its BatchTask or Conflict carries
// ResubmitOf, the Seq it settles. A journal that recorded the first request
// as "sending" should keep it open until one with ResubmitOf naming it
// arrives, or the batch returns with those IDs in Unknown.
//
// Any other failure stops the batch: DeleteAll returns the BatchResult so far
// together with the error. The result accounts for every ID: accepted
// (Tasks), already covered (Conflicts), perhaps accepted (Unknown: the
// resubmissions did not settle them, or the batch stopped before they
// could), or not sent (Unsent). The result is never nil.
func (c *Client) DeleteAll(ctx context.Context, ids []string, ct ComplianceType, opts ...BatchOption) (*BatchResult, error) {
	return c.batch(ctx, "DeleteAll", Deletion, ids, c.maxDeletion, opts, validateCompliance(ct), func(ctx context.Context, chunk []string) (string, error) {
		return c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: chunk, ComplianceType: ct})
	})
}

// RetrieveAll asks Mixpanel for everything it holds about any number of
// people, in requests of at most the client's retrieval limit (or
// WithChunkSize); dt is for CCPA only, empty for the default. It works as
// DeleteAll does, 409 handling included (Mixpanel documents 409 for
// deletions; should a retrieval draw one, its IDs are reported the same
// way). Each task yields its own export. Unlike DeleteAll, it never
// resubmits a request whose outcome is unknown, since a second retrieval
// would create a second export: the batch stops with those IDs in Unknown.
func (c *Client) RetrieveAll(ctx context.Context, ids []string, ct ComplianceType, dt DisclosureType, opts ...BatchOption) (*BatchResult, error) {
	pre := validateCompliance(ct)
	if pre == nil {
		pre = validateDisclosure(ct, dt)
	}
	return c.batch(ctx, "RetrieveAll", Retrieval, ids, c.maxRetrieval, opts, pre, func(ctx context.Context, chunk []string) (string, error) {
		return c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: chunk, ComplianceType: ct, DisclosureType: dt})
	})
}

// batch is DeleteAll and RetrieveAll: pre is the verdict on their other
// arguments, create sends one request. A request with an unknown outcome
// is resubmitted when kind.Resubmittable (deletions: harmless, a filed one
// draws a 409 naming its task). Each answer is split by SplitCreate.
func (c *Client) batch(ctx context.Context, op string, kind Kind, ids []string, limit int, opts []BatchOption, pre error,
	create func(context.Context, []string) (string, error)) (*BatchResult, error) {
	cfg := batchConfig{chunk: limit}
	for _, o := range opts {
		o(&cfg)
	}
	uniq, dups := dedupe(ids)
	res := &BatchResult{Duplicates: dups}
	if pre != nil {
		res.Unsent = uniq
		return res, pre
	}
	if cfg.chunk < 1 || cfg.chunk > limit {
		res.Unsent = uniq
		return res, &InputError{Field: "chunk size", Problem: fmt.Sprintf("%d is not between 1 and the per-request limit %d", cfg.chunk, limit)}
	}
	if err := checkBatchIDs(ids, c.verbatimIDs); err != nil {
		res.Unsent = uniq
		return res, err
	}
	queue := uniq // IDs not yet accounted for, in order
	seq := 0
	// unknownSeq is the request with an unknown outcome that pending
	// resubmits (0: none). While it is set, pending may have been filed:
	// stopping leaves it Unknown, never Unsent.
	unknownSeq := 0
	var unknownErr error // why unknownSeq's outcome is unknown
	stop := func(pending []string, err error) (*BatchResult, error) {
		if unknownSeq != 0 {
			if !errors.Is(err, ErrOutcomeUnknown) {
				err = wrapf("%w (after: %w)", err, unknownErr)
			}
			res.Unknown = slices.Clone(pending)
			res.Unsent = slices.Clone(queue)
			return res, errorf("%s: stopped with request %d's %d ids of unknown outcome (they may have been accepted) and %d ids not sent: %w", op, unknownSeq, len(pending), len(queue), err)
		}
		res.Unsent = append(slices.Clone(pending), queue...)
		return res, errorf("%s: stopped with %d of %d ids not sent: %w", op, len(res.Unsent), len(uniq), err)
	}
	pol := c.retry
	for len(queue) > 0 {
		n := min(cfg.chunk, len(queue))
		pending := slices.Clone(queue[:n])
		queue = queue[n:]
		unknownSeq = 0
		resubmits := 0
		var settleStart time.Time
		for len(pending) > 0 {
			if err := ctx.Err(); err != nil {
				return stop(pending, err)
			}
			if unknownSeq != 0 {
				// Resubmit once the service may answer again: after the
				// policy's backoff, within its attempts and time budget.
				wait := pol.wait(resubmits, 0, c.rand)
				if !pol.attemptsLeft(resubmits) || wait > pol.MaxElapsed-time.Since(settleStart) {
					return stop(pending, wrapf("gave up resubmitting after %d attempts: %w", resubmits, unknownErr))
				}
				if err := sleep(ctx, wait); err != nil {
					return stop(pending, err)
				}
			}
			seq++
			if cfg.before != nil {
				if err := cfg.before(seq, slices.Clone(pending)); err != nil {
					return stop(pending, fmt.Errorf("before request %d: %w", seq, err))
				}
			}
			cctx := ctx
			if cfg.beforeSend != nil {
				s, ids := seq, slices.Clone(pending)
				cctx = withBeforeSend(ctx, func() error { return cfg.beforeSend(s, ids) })
			}
			id, err := create(cctx, pending)
			var notSent *beforeSendError
			if errors.As(err, &notSent) {
				return stop(pending, fmt.Errorf("before sending request %d: %w", seq, notSent.err))
			}
			o := SplitCreate(pending, id, err)
			switch {
			case len(o.Filed) > 0:
				t := BatchTask{Seq: seq, TaskID: id, DistinctIDs: pending, ResubmitOf: unknownSeq}
				res.Tasks = append(res.Tasks, t)
				pending, unknownSeq = nil, 0
				if cfg.onChunk != nil {
					if err := cfg.onChunk(cloneTask(t)); err != nil {
						return stop(nil, fmt.Errorf("after request %d: %w", seq, err))
					}
				}
			case len(o.Conflicting) > 0:
				cf := Conflict{Seq: seq, DistinctIDs: o.Conflicting, TaskIDs: o.ConflictTasks, ResubmitOf: unknownSeq}
				res.Conflicts = append(res.Conflicts, cf)
				pending = o.Unfiled
				if cfg.onConflict != nil {
					if err := cfg.onConflict(cloneConflict(cf)); err != nil {
						return stop(pending, fmt.Errorf("after request %d: %w", seq, err))
					}
				}
			case len(o.Unknown) > 0:
				if unknownSeq == 0 {
					settleStart = time.Now()
				}
				unknownSeq, unknownErr = seq, err
				if cfg.onUnknown != nil {
					if ferr := cfg.onUnknown(seq, slices.Clone(pending), err); ferr != nil {
						return stop(pending, fmt.Errorf("after request %d: %w", seq, ferr))
					}
				}
				if !kind.Resubmittable() {
					return stop(pending, err)
				}
				resubmits++
				c.logger.LogAttrs(ctx, slog.LevelWarn, "mpgdpr: resubmitting a deletion of unknown outcome",
					slog.String("op", op), slog.Int("seq", seq), slog.Int("ids", len(pending)),
					slog.String("reason", c.secrets.String(err.Error())))
			default:
				return stop(pending, err)
			}
		}
	}
	return res, nil
}

// beforeSendKey carries a create's before-send hook (WithBeforeSend) in
// its context to the pipeline, which calls it after the limiter's turn.
type beforeSendKey struct{}

func withBeforeSend(ctx context.Context, f func() error) context.Context {
	return context.WithValue(ctx, beforeSendKey{}, f)
}

// beforeSendHook returns the hook ctx carries, or nil.
func beforeSendHook(ctx context.Context) func() error {
	f, _ := ctx.Value(beforeSendKey{}).(func() error)
	return f
}

// beforeSendError is a before-send hook's refusal: the request was not
// sent. RequestSent makes the pipeline treat it as refused unsent.
type beforeSendError struct{ err error }

func (e *beforeSendError) Error() string     { return "refused before sending: " + e.err.Error() }
func (e *beforeSendError) Unwrap() error     { return e.err }
func (e *beforeSendError) RequestSent() bool { return false }

// dedupe returns ids without repeats, first occurrences in order, and each
// repeated ID once.
func dedupe(ids []string) (uniq, dups []string) {
	seen := make(map[string]bool, len(ids))
	dup := map[string]bool{}
	uniq = make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
			continue
		}
		if !dup[id] {
			dup[id] = true
			dups = append(dups, id)
		}
	}
	return uniq, dups
}

// checkBatchIDs rejects the whole input if any ID is invalid, naming the
// positions (1-based, as given) of the first few, never their values: an
// error may be logged, and a distinct ID is personal data.
func checkBatchIDs(ids []string, verbatim bool) error {
	if len(ids) == 0 {
		return &InputError{Field: "distinct ids", Problem: "the list is empty"}
	}
	var bad []string
	count := 0
	for i, id := range ids {
		if err := validateID(id, verbatim); err != nil {
			count++
			if len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("#%d %v", i+1, err))
			}
		}
	}
	if count == 0 {
		return nil
	}
	more := ""
	if count > len(bad) {
		more = fmt.Sprintf(", and %d more", count-len(bad))
	}
	return &InputError{Field: "distinct ids", Problem: fmt.Sprintf("%d invalid, nothing sent: %s%s", count, strings.Join(bad, "; "), more)}
}

// splitConflict splits pending into the IDs a 409 named and the others,
// each in pending's order. IDs the server named that were not in the
// request are ignored.
func splitConflict(pending, named []string) (conflicting, rest []string) {
	set := make(map[string]bool, len(named))
	for _, id := range named {
		set[id] = true
	}
	for _, id := range pending {
		if set[id] {
			conflicting = append(conflicting, id)
		} else {
			rest = append(rest, id)
		}
	}
	return conflicting, rest
}

func cloneTask(t BatchTask) BatchTask {
	t.DistinctIDs = slices.Clone(t.DistinctIDs)
	return t
}

func cloneConflict(c Conflict) Conflict {
	c.DistinctIDs = slices.Clone(c.DistinctIDs)
	c.TaskIDs = slices.Clone(c.TaskIDs)
	return c
}
