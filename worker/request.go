package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Kind says whether a request erases or exports: the library's Kind, so
// that its rules (Kind.Resubmittable, Client.Create, Client.Check) are the
// worker's too.
type Kind = mpgdpr.Kind

// The two kinds of request.
const (
	Deletion  = mpgdpr.Deletion
	Retrieval = mpgdpr.Retrieval
)

// Request is one data-subject request: erase or export what Mixpanel holds
// about some distinct IDs, in one project, several, or all. It becomes one
// item per project.
type Request struct {
	// Reference is the caller's own id for the request (a DSR ticket id):
	// enqueuing the same reference again is the same request.
	Reference      string
	Kind           Kind
	ComplianceType mpgdpr.ComplianceType
	// DisclosureType is for CCPA retrievals only; empty for the default.
	DisclosureType mpgdpr.DisclosureType
	// DistinctIDs name the person (repeats are dropped).
	DistinctIDs []string
	// Projects names configured projects; AllProjects takes every one.
	Projects    []string
	AllProjects bool
	// ReceivedAt is when the request reached the caller; zero means now.
	ReceivedAt time.Time
	// CallbackURL, if set, is POSTed a signed notice when the request ends
	// (callback.go); its host must be allowed by the configuration.
	CallbackURL string
	// CallbackFormat is the notice's form and signature: CallbackMpgdpr
	// (the default, "") or CallbackOpenDSR.
	CallbackFormat string
	// Extension, if set, extends the statutory deadline (GDPR Art. 12(3),
	// CCPA § 1798.130): why, and when the person was told.
	Extension *Extension
}

// The forms of callback notice.
const (
	// CallbackMpgdpr: this worker's JSON notice, signed with HMAC-SHA-256
	// (Mpgdpr-Signature: t=…,v1=…).
	CallbackMpgdpr = "mpgdpr"
	// CallbackOpenDSR: OpenDSR 1.0's status callback, signed as OpenDSR says.
	CallbackOpenDSR = "opendsr"
)

// Extension is a deadline extension recorded with a request.
type Extension struct {
	Reason   string    `json:"reason"`
	NoticeAt time.Time `json:"notice_at"`
}

// RequestArgs are the River job args of a request: the JSON in
// river_job.args for kind "mpgdpr_request". A job the worker enqueues
// carries the Reference alone (the request is stored in mpgdpr_request in
// the same transaction); another system inserting a job gives every field
// (see README.md), and the worker drops all but the Reference from the
// job's args when it takes the request in, so that River's table keeps no
// distinct ID.
type RequestArgs struct {
	Reference      string     `json:"reference" river:"unique"`
	RequestKind    string     `json:"kind,omitempty"`
	ComplianceType string     `json:"compliance_type,omitempty"`
	DisclosureType string     `json:"disclosure_type,omitempty"`
	DistinctIDs    []string   `json:"distinct_ids,omitempty"`
	Projects       []string   `json:"projects,omitempty"`
	AllProjects    bool       `json:"all_projects,omitempty"`
	ReceivedAt     time.Time  `json:"received_at,omitzero"`
	CallbackURL    string     `json:"callback_url,omitempty"`
	CallbackFormat string     `json:"callback_format,omitempty"`
	Extension      *Extension `json:"extension,omitempty"`
}

// Kind is the River job kind.
func (RequestArgs) Kind() string { return "mpgdpr_request" }

// ErrConflictingRequest: a reference already names a different request
// (other IDs, kind, types or projects).
var ErrConflictingRequest = errors.New("worker: reference already used for a different request")

// ErrInvalidRequest: the request was refused before anything was stored.
var ErrInvalidRequest = errors.New("worker: invalid request")

// RequestError is a request refused before anything was stored; it matches
// ErrInvalidRequest. It never quotes a distinct ID.
type RequestError struct {
	Field, Problem string
}

// Error names the field and the problem, never a distinct ID.
func (e *RequestError) Error() string {
	return "worker: request: " + e.Field + ": " + e.Problem
}

// Is matches ErrInvalidRequest.
func (e *RequestError) Is(target error) bool { return target == ErrInvalidRequest }

// EnqueueResult says what Enqueue did. For a duplicate, every field is the
// stored request's.
type EnqueueResult struct {
	Reference string `json:"reference"`
	// Duplicate: the same request was already enqueued; nothing was added.
	Duplicate bool `json:"duplicate"`
	// Projects the request was enqueued for, sorted.
	Projects []string `json:"projects"`
	// State is the request's state (one of RequestStates).
	State string `json:"state"`
	// ReceivedAt is when the request was received (as given, or when
	// enqueued).
	ReceivedAt time.Time `json:"received_at"`
	// Due is the statutory deadline's last day (YYYY-MM-DD, UTC), with
	// the recorded extension if any; DeadlineBy is the end of that day.
	Due        string    `json:"due"`
	DeadlineBy time.Time `json:"deadline_by"`
	// Extended: the deadline includes a recorded extension.
	Extended bool `json:"extended"`
}

// normalized is a checked request, canonical for its digest.
type normalized struct {
	RequestArgs
	digest string
}

// normalize checks a request against the configuration and the library's
// input rules, drops repeated IDs and resolves the projects.
func (c *Config) checkRequest(a RequestArgs) (*normalized, error) {
	ref := a.Reference
	switch {
	case strings.TrimSpace(ref) == "":
		return nil, &RequestError{"reference", "missing"}
	case len(ref) > 256 || !utf8.ValidString(ref) || strings.IndexFunc(ref, unicode.IsControl) >= 0:
		return nil, &RequestError{"reference", "longer than 256 bytes, not UTF-8, or has control characters"}
	}
	kind := Kind(a.RequestKind)
	if !kind.Valid() {
		return nil, &RequestError{"kind", fmt.Sprintf("%q is not deletion or retrieval", a.RequestKind)}
	}
	ct, err := mpgdpr.ParseComplianceType(a.ComplianceType)
	if err != nil {
		return nil, &RequestError{"compliance type", "choose GDPR or CCPA"}
	}
	var dt mpgdpr.DisclosureType
	if a.DisclosureType != "" {
		if kind != Retrieval || ct != mpgdpr.CCPA {
			return nil, &RequestError{"disclosure type", "only CCPA retrievals take one"}
		}
		if dt, err = mpgdpr.ParseDisclosureType(a.DisclosureType); err != nil {
			return nil, &RequestError{"disclosure type", "choose Data, Categories or Sources"}
		}
	}
	if len(a.DistinctIDs) == 0 {
		return nil, &RequestError{"distinct ids", "none given"}
	}
	ids := make([]string, 0, len(a.DistinctIDs))
	seen := make(map[string]bool, len(a.DistinctIDs))
	for i, id := range a.DistinctIDs {
		if err := validateDistinctID(id); err != nil {
			return nil, &RequestError{fmt.Sprintf("distinct id #%d", i+1), err.Error()}
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	var projects []string
	switch {
	case a.AllProjects && len(a.Projects) > 0:
		return nil, &RequestError{"projects", "give projects or all projects, not both"}
	case a.AllProjects:
		projects = c.ProjectNames()
	case len(a.Projects) == 0:
		return nil, &RequestError{"projects", "none given (name some, or all)"}
	default:
		for _, name := range a.Projects {
			if _, ok := c.Project(name); !ok {
				return nil, &RequestError{"projects", fmt.Sprintf("no project %q in the configuration", name)}
			}
			if !slices.Contains(projects, name) {
				projects = append(projects, name)
			}
		}
		slices.Sort(projects)
	}
	for _, name := range projects {
		p, _ := c.Project(name)
		if limit := p.limit(kind); len(ids) > limit {
			return nil, &RequestError{"distinct ids", fmt.Sprintf("%d IDs, more than one create may carry in project %q (%d): split the request", len(ids), name, limit)}
		}
		if kind == Retrieval && p.APISecretEnv == "" && p.APISecretFile == "" {
			return nil, &RequestError{"projects", fmt.Sprintf("project %q has no api_secret_env or api_secret_file: its exports could not be checked", name)}
		}
	}
	received := a.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	format := a.CallbackFormat
	switch {
	case format != "" && format != CallbackMpgdpr && format != CallbackOpenDSR:
		return nil, &RequestError{"callback format", "choose mpgdpr or opendsr"}
	case format != "" && a.CallbackURL == "":
		return nil, &RequestError{"callback format", "given without a callback URL"}
	case format == "" && a.CallbackURL != "":
		format = CallbackMpgdpr
	}
	if a.CallbackURL != "" {
		if err := c.checkCallback(a.CallbackURL, format); err != nil {
			return nil, err
		}
	}
	var ext *Extension
	if e := a.Extension; e != nil {
		switch {
		case strings.TrimSpace(e.Reason) == "" || len(e.Reason) > 500 || !utf8.ValidString(e.Reason) || strings.IndexFunc(e.Reason, unicode.IsControl) >= 0:
			return nil, &RequestError{"extension reason", "missing, longer than 500 bytes, not UTF-8, or has control characters"}
		case e.NoticeAt.IsZero():
			return nil, &RequestError{"extension notice_at", "missing: when was the person told of the extension?"}
		case e.NoticeAt.Before(received):
			return nil, &RequestError{"extension notice_at", "before the request was received"}
		}
		ext = &Extension{Reason: e.Reason, NoticeAt: e.NoticeAt.UTC()}
	}
	n := &normalized{RequestArgs: RequestArgs{
		Reference:      ref,
		RequestKind:    string(kind),
		ComplianceType: string(ct),
		DisclosureType: string(dt),
		DistinctIDs:    ids,
		Projects:       projects,
		ReceivedAt:     received.UTC(),
		CallbackURL:    a.CallbackURL,
		CallbackFormat: format,
		Extension:      ext,
	}}
	n.digest = requestDigest(n.RequestArgs, nil)
	return n, nil
}

// requestDigest is what makes two requests under one reference the same:
// SHA-256 over their kind, types, sorted IDs and projects. With h, over the
// IDs' keyed hashes: the digest of a purged row (purge.go), which holds no
// plain ID, and names no one to whoever lacks the key.
func requestDigest(a RequestArgs, h *evidence.IDHasher) string {
	ids := slices.Clone(a.DistinctIDs)
	if h != nil {
		for i, id := range ids {
			ids[i] = h.Hash(id)
		}
	}
	slices.Sort(ids)
	fields := []any{a.RequestKind, a.ComplianceType, a.DisclosureType, ids, a.Projects}
	// Added later, and only when set, so that older requests keep their digest.
	if a.CallbackURL != "" || a.Extension != nil {
		fields = append(fields, a.CallbackURL, a.CallbackFormat, a.Extension)
	}
	canon, _ := json.Marshal(fields)
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// args converts a Request to its job args.
func (r Request) args() RequestArgs {
	return RequestArgs{
		Reference:      r.Reference,
		RequestKind:    string(r.Kind),
		ComplianceType: string(r.ComplianceType),
		DisclosureType: string(r.DisclosureType),
		DistinctIDs:    r.DistinctIDs,
		Projects:       r.Projects,
		AllProjects:    r.AllProjects,
		ReceivedAt:     r.ReceivedAt,
		CallbackURL:    r.CallbackURL,
		CallbackFormat: r.CallbackFormat,
		Extension:      r.Extension,
	}
}

// storeRequest records a checked request in tx, idempotently: inserted
// reports a new row; an existing row with another digest is
// ErrConflictingRequest. A purged row's digest is over the IDs' keyed
// hashes (h), so the same request enqueued again after its purge is still
// recognised. A new row is sealed, with its extension, in the chain.
func storeRequest(ctx context.Context, tx dbTx, h *evidence.IDHasher, n *normalized, now time.Time) (inserted bool, err error) {
	inserted, err = insertRequest(ctx, tx, h, n, now)
	if err != nil || !inserted {
		return inserted, err
	}
	return true, recordRequest(ctx, tx, h, n)
}

// insertRequest is storeRequest without the chained events
// (recordRequest), which the caller must add in the same transaction.
func insertRequest(ctx context.Context, tx dbTx, h *evidence.IDHasher, n *normalized, now time.Time) (inserted bool, err error) {
	ids, _ := json.Marshal(n.DistinctIDs)
	projects, _ := json.Marshal(n.Projects)
	extReason, extAt := "", ""
	if e := n.Extension; e != nil {
		extReason, extAt = e.Reason, workerdb.FormatTime(e.NoticeAt)
	}
	rows, err := tx.exec(ctx, `INSERT INTO mpgdpr_request (reference, kind, compliance_type, disclosure_type, distinct_ids, projects, digest, received_at, enqueued_at, callback_url, callback_format, extension_reason, extension_notice_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reference) DO NOTHING`,
		n.Reference, n.RequestKind, n.ComplianceType, n.DisclosureType, string(ids), string(projects), n.digest, workerdb.FormatTime(n.ReceivedAt), workerdb.FormatTime(now),
		n.CallbackURL, n.CallbackFormat, extReason, extAt)
	if err != nil {
		return false, err
	}
	if rows == 1 {
		return true, nil
	}
	var digest string
	var purged *string
	if err := tx.queryRow(ctx, `SELECT digest, ids_purged_at FROM mpgdpr_request WHERE reference = ?`, n.Reference).Scan(&digest, &purged); err != nil {
		return false, err
	}
	want := n.digest
	if purged != nil && h != nil {
		want = requestDigest(n.RequestArgs, h)
	}
	if digest != want {
		return false, fmt.Errorf("%w: %q", ErrConflictingRequest, n.Reference)
	}
	return false, nil
}

// recordRequest seals a newly stored request and records its extension,
// in the chain "" whose head stays locked until tx ends: callers add it
// last, so that the lock is held for as few statements as can be.
func recordRequest(ctx context.Context, tx dbTx, h *evidence.IDHasher, n *normalized) error {
	if err := sealRequest(ctx, tx, h, n.Reference); err != nil {
		return err
	}
	if e := n.Extension; e != nil {
		// Into the chained record, where the report reads the deadline's
		// extension (evidence.ParseExtensionDetail).
		if err := addEvent(ctx, tx, event{Reference: n.Reference, Event: workerdb.EventExtended, Detail: evidence.ExtensionDetail(e.Reason, e.NoticeAt)}); err != nil {
			return err
		}
	}
	return nil
}

// validateDistinctID applies the library's rules for one distinct ID
// (mpgdpr.ValidateDistinctID), giving back only what is wrong.
func validateDistinctID(id string) error {
	err := mpgdpr.ValidateDistinctID(id)
	var ie *mpgdpr.InputError
	if errors.As(err, &ie) {
		return errors.New(ie.Problem)
	}
	return err
}
