package mpgdpr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ComplianceType is the regulation a request is made under.
type ComplianceType string

// The compliance types Mixpanel accepts.
const (
	GDPR ComplianceType = "GDPR"
	CCPA ComplianceType = "CCPA"
)

// ParseComplianceType reads GDPR or CCPA in any case.
func ParseComplianceType(s string) (ComplianceType, error) {
	ct := ComplianceType(strings.ToUpper(strings.TrimSpace(s)))
	if err := validateCompliance(ct); err != nil {
		return "", err
	}
	return ct, nil
}

// DisclosureType says what a CCPA retrieval discloses. Empty leaves the
// service's default (Data).
type DisclosureType string

// The disclosure types Mixpanel accepts.
const (
	DisclosureData       DisclosureType = "Data"
	DisclosureCategories DisclosureType = "Categories"
	DisclosureSources    DisclosureType = "Sources"
)

// ParseDisclosureType reads Data, Categories or Sources in any case.
func ParseDisclosureType(s string) (DisclosureType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "data":
		return DisclosureData, nil
	case "categories":
		return DisclosureCategories, nil
	case "sources":
		return DisclosureSources, nil
	}
	return "", &InputError{Field: "disclosure type", Problem: fmt.Sprintf("%q is not Data, Categories or Sources", s)}
}

// Status is a task's state. Values Mixpanel may add later decode as they
// are and count as neither terminal nor successful.
type Status string

// The statuses Mixpanel documents.
const (
	StatusPending  Status = "PENDING"
	StatusStaging  Status = "STAGING"
	StatusStarted  Status = "STARTED"
	StatusSuccess  Status = "SUCCESS"
	StatusFailure  Status = "FAILURE"
	StatusRevoked  Status = "REVOKED" // cancelled
	StatusNotFound Status = "NOT_FOUND"
	StatusUnknown  Status = "UNKNOWN" // Mixpanel could not locate the task, for now
)

// Terminal reports whether the task has ended: SUCCESS, FAILURE, REVOKED or
// NOT_FOUND. Everything else, unknown values included, is in progress.
func (s Status) Terminal() bool {
	switch s {
	case StatusSuccess, StatusFailure, StatusRevoked, StatusNotFound:
		return true
	}
	return false
}

// Succeeded reports whether the task ended in SUCCESS.
func (s Status) Succeeded() bool { return s == StatusSuccess }

// Cancellable reports whether a deletion in this state can still be
// cancelled (PENDING or STAGING).
func (s Status) Cancellable() bool { return s == StatusPending || s == StatusStaging }

// Known reports whether s is one of the documented statuses.
func (s Status) Known() bool {
	switch s {
	case StatusPending, StatusStaging, StatusStarted, StatusSuccess, StatusFailure, StatusRevoked, StatusNotFound, StatusUnknown:
		return true
	}
	return false
}

// Task is what Mixpanel reports about a retrieval or deletion task. The
// service shows different subsets of these fields in different places; any
// field may be empty.
type Task struct {
	TrackingID      string   // the task id
	Status          Status   // upper-cased as received
	DownloadURL     string   // a finished retrieval's export link, from whichever field carried it, quotes stripped
	Result          string   // the `result` text when it is not the link
	DistinctIDs     []string // the IDs the task covers
	DistinctIDCount int      // the number of IDs, when only the count is given
	ComplianceType  string   // as received (Mixpanel has shown lower case)
	DisclosureType  string   // as received (Mixpanel shows DATA)
	ProjectID       int64
	RequestingUser  string
	// DateRequested is parsed from RFC 3339 or Mixpanel's zone-less form
	// (taken as UTC); DateRequestedRaw keeps the original text.
	DateRequested    time.Time
	DateRequestedRaw string
	DestinationURL   string
	// Raw is the task object as received, for fields this type does not name.
	Raw json.RawMessage
}

// wireTask accepts every documented spelling of a task object.
type wireTask struct {
	TrackingID      flexString   `json:"tracking_id"`
	TaskID          flexString   `json:"task_id"`
	Status          flexString   `json:"status"`
	Result          flexString   `json:"result"`
	Results         flexString   `json:"results"`
	DownloadURL     flexString   `json:"download_url"`
	DistinctIDs     []flexString `json:"distinct_ids"`
	DistinctIDCount flexInt      `json:"distinct_id_count"`
	ComplianceType  flexString   `json:"compliance_type"`
	DisclosureType  flexString   `json:"disclosure_type"`
	ProjectID       flexInt      `json:"project_id"`
	RequestingUser  flexString   `json:"requesting_user"`
	DateRequested   flexString   `json:"date_requested"`
	DestinationURL  flexString   `json:"destination_url"`
}

// task fills t from w and returns it; raw is the task object as sent.
func (w *wireTask) task(t *Task, raw json.RawMessage) *Task {
	*t = Task{
		TrackingID:       string(w.TrackingID),
		Status:           Status(strings.ToUpper(strings.TrimSpace(string(w.Status)))),
		DistinctIDCount:  int(w.DistinctIDCount),
		ComplianceType:   string(w.ComplianceType),
		DisclosureType:   string(w.DisclosureType),
		ProjectID:        int64(w.ProjectID),
		RequestingUser:   string(w.RequestingUser),
		DateRequestedRaw: string(w.DateRequested),
		DestinationURL:   string(w.DestinationURL),
		Raw:              raw,
	}
	if t.TrackingID == "" {
		t.TrackingID = string(w.TaskID)
	}
	if len(w.DistinctIDs) > 0 {
		t.DistinctIDs = make([]string, len(w.DistinctIDs))
		for i, id := range w.DistinctIDs {
			t.DistinctIDs[i] = string(id)
		}
	}
	t.DateRequested = parseMixpanelTime(t.DateRequestedRaw)
	// The link has been documented as download_url, result and results.
	for _, f := range []flexString{w.DownloadURL, w.Result, w.Results} {
		if t.DownloadURL == "" && f != "" && isLink(string(f)) {
			t.DownloadURL = stripQuotes(string(f))
		}
	}
	if w.Result != "" && !isLink(string(w.Result)) {
		t.Result = string(w.Result)
	}
	return t
}

// taskScratch holds a decode's envelope, wire task and result in one
// allocation. A returned *Task points into it and keeps the rest alive,
// a few hundred bytes whose strings the Task shares anyway.
type taskScratch struct {
	env struct {
		Results rawView `json:"results"`
	}
	w wireTask
	t Task
}

// rawView is json.RawMessage without the copy: a view into the input of
// json.Unmarshal. The input is an answer body read into a buffer of its
// own, which nothing modifies, so Task.Raw may be a view into it (as it
// already was for a task at the top level).
type rawView []byte

func (r *rawView) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// id is task(nil).TrackingID without building the Task.
func (w *wireTask) id() string {
	if w.TrackingID != "" {
		return string(w.TrackingID)
	}
	return string(w.TaskID)
}

// decodeTaskStatus reads a check response: {"status":"ok","results":{…}},
// or the task at the top level.
func decodeTaskStatus(body []byte) (*Task, error) {
	d := new(taskScratch)
	env, w := &d.env, &d.w
	if err := json.Unmarshal(body, env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	raw, topLevel := json.RawMessage(body), true
	if r := bytes.TrimSpace(env.Results); len(r) > 0 && r[0] == '{' {
		raw, topLevel = r, false
	} else if len(r) > 0 && r[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(r, &list) == nil && len(list) > 0 {
			raw, topLevel = list[0], false
		}
	}
	if err := json.Unmarshal(raw, w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	t := w.task(&d.t, raw)
	if topLevel && (t.Status == "OK" || t.Status == "ERROR") {
		t.Status = "" // the envelope's status, not a task state
	}
	if t.Status == "" {
		return nil, fmt.Errorf("%w: no task status in the answer", ErrMalformedResponse)
	}
	return t, nil
}

// decodeCreate reads a create response in either documented shape and
// returns the task id.
func decodeCreate(body []byte) (string, error) {
	d := new(taskScratch)
	env := &d.env
	if err := json.Unmarshal(body, env); err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	r := bytes.TrimSpace(env.Results)
	var ids []string
	switch {
	case len(r) > 0 && r[0] == '{':
		w := &d.w
		if err := json.Unmarshal(r, w); err != nil {
			return "", fmt.Errorf("%w: %v", ErrMalformedResponse, err)
		}
		ids = append(ids, w.id())
	case len(r) > 0 && r[0] == '[':
		var list []wireTask
		if err := json.Unmarshal(r, &list); err != nil {
			return "", fmt.Errorf("%w: %v", ErrMalformedResponse, err)
		}
		for i := range list {
			ids = append(ids, list[i].id())
		}
	}
	if len(ids) == 0 || ids[0] == "" {
		return "", fmt.Errorf("%w: no task id in the answer", ErrMalformedResponse)
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			return "", fmt.Errorf("%w: the answer names %d different tasks", ErrMalformedResponse, len(ids))
		}
	}
	return ids[0], nil
}

// flexString accepts a JSON string or number; null, objects, arrays and
// booleans decode as "" rather than failing the whole answer.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*f = ""
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		// Fast path: no escapes, so the bytes are the string.
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
			*f = flexString(b[1 : len(b)-1])
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		*f = flexString(b)
	}
	return nil
}

// flexInt accepts a JSON number, a numeric string or null.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if s == "" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		fl, ferr := strconv.ParseFloat(string(s), 64)
		if ferr != nil {
			return nil // lenient: a field this client does not need to understand
		}
		n = int64(fl)
	}
	*f = flexInt(n)
	return nil
}

// stripQuotes removes literal double quotes around a link, seen in the wild.
func stripQuotes(s string) string {
	s = strings.TrimSpace(s)
	for len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

func isLink(s string) bool {
	u, err := url.Parse(stripQuotes(s))
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

var mixpanelTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05",
}

// parseMixpanelTime parses RFC 3339, or the zone-less form Mixpanel shows
// (taken as UTC). It returns the zero time when neither fits.
func parseMixpanelTime(s string) time.Time {
	s = strings.TrimSpace(s)
	layouts := mixpanelTimeLayouts
	if !hasZone(s) {
		// The layouts accept disjoint sets of strings, so the order only
		// saves a failed attempt (and its error's allocations).
		layouts = mixpanelZonelessFirst
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// mixpanelZonelessFirst is mixpanelTimeLayouts with RFC 3339 last.
var mixpanelZonelessFirst = append(mixpanelTimeLayouts[1:len(mixpanelTimeLayouts):len(mixpanelTimeLayouts)], mixpanelTimeLayouts[0])

// hasZone reports whether s ends like an RFC 3339 time: Z or ±hh:mm.
func hasZone(s string) bool {
	n := len(s)
	return n > 0 && (s[n-1] == 'Z' || s[n-1] == 'z') || n >= 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':'
}

// tainted reports whether s, a value decoded from an answer, carries one of
// the client's secrets in any form this client can tell (redact.Set.Contains:
// raw, escaped, encoded, or hidden by JSON or percent escapes, as a link's
// query would carry it to another host), or as REDACTED where the pipeline
// replaced one (cleaned: the body held one).
func (c *Client) tainted(s string, cleaned bool) bool {
	if cleaned && strings.Contains(s, redacted) {
		return true
	}
	return c.secrets.Contains(s)
}

// checkTask refuses a decoded task whose id or links carry a secret (a
// malformed answer: such an id must not be journaled, such a link must not
// be followed or written), and replaces any other field that does by
// REDACTED. cleaned says the body held a secret that was replaced.
func (c *Client) checkTask(t *Task, cleaned bool) error {
	refuse := ""
	switch {
	case c.tainted(t.TrackingID, cleaned):
		refuse = "task id"
	case c.tainted(t.DownloadURL, cleaned):
		refuse = "download link"
	case c.tainted(t.DestinationURL, cleaned):
		refuse = "destination URL"
	case c.secrets.ContainsBytes(t.Raw):
		refuse = "content, in an encoded form,"
	}
	if refuse != "" {
		return fmt.Errorf("%w: the answer's %s carries one of the client's credentials; refusing it", ErrMalformedResponse, refuse)
	}
	t.Result = c.scrubField(t.Result)
	t.ComplianceType = c.scrubField(t.ComplianceType)
	t.DisclosureType = c.scrubField(t.DisclosureType)
	t.RequestingUser = c.scrubField(t.RequestingUser)
	t.DateRequestedRaw = c.scrubField(t.DateRequestedRaw)
	t.Status = Status(c.scrubField(string(t.Status)))
	for i, id := range t.DistinctIDs {
		t.DistinctIDs[i] = c.scrubField(id)
	}
	return nil
}

// scrubField is a decoded field, or REDACTED if it carries a secret.
func (c *Client) scrubField(s string) string {
	if c.tainted(s, false) {
		return redacted
	}
	return s
}
