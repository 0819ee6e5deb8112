package mpgdprtest

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ControlPrefix is the path prefix of the control API on the API host.
// Mixpanel's paths all begin with BasePath, so it cannot collide with
// them.
const ControlPrefix = "/_fake/"

// ControlOpenAPI is the control API's OpenAPI 3.0 document
// (mpgdprtest/control.openapi.yaml). Every control request is validated
// against it, and so is every control answer. Treat it as read-only.
//
//go:embed control.openapi.yaml
var ControlOpenAPI []byte

// WithControlAPI mounts the control API under ControlPrefix on the API
// host, so that a process that cannot call Go methods (a test in another
// language, a CI step with curl) can list tasks, advance them, inject
// faults, and read violations and recorded requests over HTTP. Control
// requests are not recorded, rate-limited or hit by faults.
// docs/FAKE_SERVER.md describes it; ControlOpenAPI is its document.
func WithControlAPI() Option {
	return func(c *config) { c.control = true }
}

// WithControlToken mounts the control API (see WithControlAPI) and
// requires every control request to carry token as
// "Authorization: Bearer <token>" (401 otherwise). Start refuses a
// non-loopback listen address with the control API but no token.
func WithControlToken(token string) Option {
	return func(c *config) { c.control, c.controlToken = true, token }
}

// ControlURL is the control API's base URL, for example
// http://127.0.0.1:41234/_fake, or "" when it is not mounted.
func (s *Server) ControlURL() string {
	if !s.cfg.control {
		return ""
	}
	return s.api.URL + strings.TrimSuffix(ControlPrefix, "/")
}

// ControlHandler returns the control API as an http.Handler serving the
// paths under ControlPrefix, for mounting on a server of one's own. It
// enforces WithControlToken's token, if any. It is what WithControlAPI
// mounts; without that option it is still available here.
func (s *Server) ControlHandler() http.Handler { return s.control }

func isControlPath(p string) bool {
	return strings.HasPrefix(p, ControlPrefix) || p == strings.TrimSuffix(ControlPrefix, "/")
}

// maxControlBody bounds a control request's body: a fault with a body of
// its own is the largest.
const maxControlBody = 1 << 20

// control is the control API of one Server.
type control struct {
	s   *Server
	doc *controlDoc
	ops map[string]controlOp
}

// controlOp answers one operation of the document: a status and a value
// to send as JSON (nil: no body).
type controlOp func(r *http.Request, params map[string]string) (int, any)

func newControl(s *Server) (*control, error) {
	doc, err := loadControlDoc()
	if err != nil {
		return nil, err
	}
	c := &control{s: s, doc: doc}
	c.ops = map[string]controlOp{
		"getInfo":         c.info,
		"listTasks":       c.listTasks,
		"getTask":         c.getTask,
		"advanceTask":     c.advanceTask,
		"setTaskStatus":   c.setTaskStatus,
		"advanceAll":      c.advanceAll,
		"listFaults":      c.listFaults,
		"injectFault":     c.injectFault,
		"clearFaults":     c.clearFaults,
		"listRequests":    c.listRequests,
		"clearRequests":   c.clearRequests,
		"listViolations":  c.listViolations,
		"clearViolations": c.clearViolations,
		"reset":           c.reset,
	}
	if err := c.checkOps(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkOps makes sure every operation of the document has a handler and
// every handler an operation, so the two cannot drift apart.
func (c *control) checkOps() error {
	ids := c.doc.operationIDs()
	for _, id := range ids {
		if c.ops[id] == nil {
			return fmt.Errorf("mpgdprtest: control operation %q has no handler", id)
		}
	}
	if len(ids) != len(c.ops) {
		return fmt.Errorf("mpgdprtest: %d control handlers for %d operations", len(c.ops), len(ids))
	}
	return nil
}

// ServeHTTP authorizes, routes and validates a control request, runs its
// operation, and validates the answer before sending it.
func (c *control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if tok := c.s.cfg.controlToken; tok != "" {
		got := r.Header.Get("Authorization")
		if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+tok)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mpgdpr fake control"`)
			writeControlError(w, http.StatusUnauthorized, "this fake's control API needs its control token as Authorization: Bearer <token>")
			return
		}
	}
	m, err := c.doc.find(r)
	if err != nil {
		code := http.StatusNotFound
		if errors.Is(err, errMethodNotAllowed) {
			code = http.StatusMethodNotAllowed
		}
		writeControlError(w, code, fmt.Sprintf("%s %s: %v (see docs/FAKE_SERVER.md)", r.Method, r.URL.Path, err))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	in, err := c.doc.validateRequest(r, m)
	if err != nil {
		writeControlError(w, http.StatusBadRequest, "the control request does not match control.openapi.yaml: "+err.Error())
		return
	}
	code, v := c.ops[m.Route.Operation.OperationID](r, m.PathParams)
	header := http.Header{}
	var body []byte
	if v != nil {
		if body, err = json.Marshal(v); err != nil {
			writeControlError(w, http.StatusInternalServerError, err.Error())
			return
		}
		header.Set("Content-Type", "application/json")
	}
	if err := c.doc.validateResponse(in, code, header, body); err != nil {
		writeControlError(w, http.StatusInternalServerError, "the fake's own control answer breaks control.openapi.yaml (a bug in the fake): "+err.Error())
		return
	}
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

type controlError struct {
	Error string `json:"error"`
}

func writeControlError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(controlError{msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// The JSON shapes of control.openapi.yaml.
type (
	infoJSON struct {
		APIURL               string  `json:"api_url"`
		ControlURL           string  `json:"control_url"`
		DownloadHost         string  `json:"download_host"`
		DownloadURL          string  `json:"download_url"`
		Schedule             string  `json:"schedule"`
		Rate                 float64 `json:"rate"`
		ProjectID            int64   `json:"project_id"`
		CreateStatus         int     `json:"create_status"`
		CreateShape          string  `json:"create_shape"`
		LinkField            string  `json:"link_field"`
		MaxRetrievalIDs      int     `json:"max_retrieval_ids"`
		MaxDeletionIDs       int     `json:"max_deletion_ids"`
		ControlTokenRequired bool    `json:"control_token_required"`
	}
	taskJSON struct {
		ID             string    `json:"id"`
		Kind           Kind      `json:"kind"`
		Status         string    `json:"status"`
		DistinctIDs    []string  `json:"distinct_ids"`
		ComplianceType string    `json:"compliance_type"`
		DisclosureType string    `json:"disclosure_type,omitempty"`
		Requested      time.Time `json:"requested"`
		Checks         int       `json:"checks"`
		DownloadURL    string    `json:"download_url"`
		Downloads      int       `json:"downloads"`
	}
	taskListJSON struct {
		Tasks []taskJSON `json:"tasks"`
	}
	statusChangeJSON struct {
		Status string `json:"status"`
	}
	faultJSON struct {
		Op         string `json:"op,omitempty"`
		Times      int    `json:"times,omitempty"`
		LatencyMS  int64  `json:"latency_ms,omitempty"`
		Reset      string `json:"reset,omitempty"`
		Status     int    `json:"status,omitempty"`
		RetryAfter string `json:"retry_after,omitempty"`
		Body       string `json:"body,omitempty"`
		Truncate   int    `json:"truncate,omitempty"`
	}
	queuedFaultJSON struct {
		Fault faultJSON `json:"fault"`
		Left  int       `json:"left"`
		Kind  string    `json:"kind"`
	}
	faultListJSON struct {
		Faults []queuedFaultJSON `json:"faults"`
	}
	requestJSON struct {
		Time         time.Time  `json:"time"`
		Host         string     `json:"host"`
		Method       string     `json:"method"`
		Path         string     `json:"path"`
		Op           string     `json:"op"`
		Status       int        `json:"status"`
		Bearer       Credential `json:"bearer"`
		ProjectToken Credential `json:"project_token"`
		Fault        string     `json:"fault,omitempty"`
		Violation    bool       `json:"violation"`
	}
	requestListJSON struct {
		Requests []requestJSON `json:"requests"`
	}
	violationJSON struct {
		Op      string `json:"op,omitempty"`
		Kind    string `json:"kind"`
		Method  string `json:"method"`
		Path    string `json:"path"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	violationListJSON struct {
		Count      int             `json:"count"`
		Violations []violationJSON `json:"violations"`
	}
)

var resetNames = map[Reset]string{NoReset: "none", ResetBeforeBody: "before-body", ResetAfterBody: "after-body", ResetAfterHandling: "after-handling"}

func toTaskJSON(t Task) taskJSON {
	ids := t.DistinctIDs
	if ids == nil {
		ids = []string{}
	}
	return taskJSON{
		ID: t.ID, Kind: t.Kind, Status: t.Status, DistinctIDs: ids,
		ComplianceType: t.ComplianceType, DisclosureType: t.DisclosureType,
		Requested: t.Requested.UTC(), Checks: t.Checks, DownloadURL: t.DownloadURL, Downloads: t.Downloads,
	}
}

func (c *control) taskList() taskListJSON {
	tasks := c.s.Tasks()
	out := taskListJSON{Tasks: make([]taskJSON, len(tasks))}
	for i, t := range tasks {
		out.Tasks[i] = toTaskJSON(t)
	}
	return out
}

func (c *control) info(*http.Request, map[string]string) (int, any) {
	cfg := c.s.cfg
	shape := "object"
	if cfg.createShape == CreateArray {
		shape = "array"
	}
	return http.StatusOK, infoJSON{
		APIURL: c.s.URL(), ControlURL: c.s.api.URL + strings.TrimSuffix(ControlPrefix, "/"),
		DownloadHost: c.s.DownloadHost(), DownloadURL: c.s.DownloadURL(),
		Schedule: cfg.schedule.String(), Rate: cfg.rps, ProjectID: cfg.projectID,
		CreateStatus: cfg.createStatus, CreateShape: shape, LinkField: cfg.linkField,
		MaxRetrievalIDs: cfg.maxRetrieval, MaxDeletionIDs: cfg.maxDeletion,
		ControlTokenRequired: cfg.controlToken != "",
	}
}

func (c *control) listTasks(*http.Request, map[string]string) (int, any) {
	return http.StatusOK, c.taskList()
}

// taskAnswer answers with the task id names, or the error err.
func (c *control) taskAnswer(id string, err error) (int, any) {
	switch {
	case errors.Is(err, ErrNoTask):
		return http.StatusNotFound, controlError{fmt.Sprintf("no task %q", id)}
	case errors.Is(err, ErrCannotAdvance):
		return http.StatusConflict, controlError{strings.TrimPrefix(err.Error(), "mpgdprtest: ")}
	case err != nil:
		return http.StatusInternalServerError, controlError{err.Error()}
	}
	t, ok := c.s.Task(id)
	if !ok {
		return http.StatusNotFound, controlError{fmt.Sprintf("no task %q", id)}
	}
	return http.StatusOK, toTaskJSON(t)
}

func (c *control) getTask(_ *http.Request, p map[string]string) (int, any) {
	return c.taskAnswer(p["id"], nil)
}

func (c *control) advanceTask(_ *http.Request, p map[string]string) (int, any) {
	return c.taskAnswer(p["id"], c.s.Advance(p["id"]))
}

func (c *control) setTaskStatus(r *http.Request, p map[string]string) (int, any) {
	var in statusChangeJSON
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return http.StatusBadRequest, controlError{"reading the body: " + err.Error()}
	}
	return c.taskAnswer(p["id"], c.s.SetStatus(p["id"], in.Status))
}

func (c *control) advanceAll(*http.Request, map[string]string) (int, any) {
	c.s.AdvanceAll()
	return http.StatusOK, c.taskList()
}

func toFaultJSON(f Fault) faultJSON {
	out := faultJSON{
		Op: f.Op, Times: f.Times, LatencyMS: f.Latency.Milliseconds(), Status: f.Status,
		RetryAfter: f.RetryAfter, Body: f.Body, Truncate: f.Truncate,
	}
	if f.Reset != NoReset {
		out.Reset = resetNames[f.Reset]
	}
	return out
}

func (c *control) listFaults(*http.Request, map[string]string) (int, any) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	out := faultListJSON{Faults: make([]queuedFaultJSON, len(s.faults))}
	for i, f := range s.faults {
		out.Faults[i] = queuedFaultJSON{Fault: toFaultJSON(f.Fault), Left: f.left, Kind: f.kind()}
	}
	return http.StatusOK, out
}

func (c *control) injectFault(r *http.Request, _ map[string]string) (int, any) {
	var in faultJSON
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return http.StatusBadRequest, controlError{"reading the body: " + err.Error()}
	}
	f := Fault{
		Op: in.Op, Times: in.Times, Latency: time.Duration(in.LatencyMS) * time.Millisecond,
		Status: in.Status, RetryAfter: in.RetryAfter, Body: in.Body, Truncate: in.Truncate,
	}
	for k, name := range resetNames {
		if name == in.Reset {
			f.Reset = k
		}
	}
	c.s.InjectFault(f)
	left := max(f.Times, 1)
	return http.StatusCreated, queuedFaultJSON{Fault: toFaultJSON(f), Left: left, Kind: f.kind()}
}

func (c *control) clearFaults(*http.Request, map[string]string) (int, any) {
	c.s.ClearFaults()
	return http.StatusNoContent, nil
}

func (c *control) listRequests(*http.Request, map[string]string) (int, any) {
	reqs := c.s.Requests()
	out := requestListJSON{Requests: make([]requestJSON, len(reqs))}
	for i, r := range reqs {
		out.Requests[i] = requestJSON{
			Time: r.Time.UTC(), Host: r.Host, Method: r.Method, Path: r.Path, Op: r.Op, Status: r.Status,
			Bearer: r.Bearer, ProjectToken: r.ProjectToken, Fault: r.Fault, Violation: r.Violation,
		}
	}
	return http.StatusOK, out
}

func (c *control) clearRequests(*http.Request, map[string]string) (int, any) {
	c.s.ClearRequests()
	return http.StatusNoContent, nil
}

// listViolations answers 409 when there is any, so that `curl -f` (or any
// client checking the status) fails on it without reading the body.
func (c *control) listViolations(*http.Request, map[string]string) (int, any) {
	vs := c.s.Violations()
	out := violationListJSON{Count: len(vs), Violations: make([]violationJSON, len(vs))}
	for i, v := range vs {
		out.Violations[i] = violationJSON{Op: v.Op, Kind: v.Kind, Method: v.Method, Path: v.Path, Reason: v.Reason, Message: v.String()}
	}
	if len(vs) > 0 {
		return http.StatusConflict, out
	}
	return http.StatusOK, out
}

func (c *control) clearViolations(*http.Request, map[string]string) (int, any) {
	c.s.ClearViolations()
	return http.StatusNoContent, nil
}

func (c *control) reset(*http.Request, map[string]string) (int, any) {
	c.s.Reset()
	return http.StatusNoContent, nil
}
