package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker"
)

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handlers implements the generated StrictServerInterface.
type handlers struct{ s *Server }

var _ StrictServerInterface = (*handlers)(nil)

// serviceProblem maps the worker's errors to problems; others stay errors
// (500).
func serviceProblem(err error) error {
	var re *worker.RequestError
	switch {
	case errors.As(err, &re):
		// RequestError never quotes a distinct ID (worker/request.go).
		return newProblem(http.StatusUnprocessableEntity, ProblemRejected, "the worker refused the request; nothing was stored", FieldError{Field: re.Field, Rule: re.Problem})
	case errors.Is(err, worker.ErrConflictingRequest):
		return newProblem(http.StatusConflict, ProblemConflict, "this reference already names a different request")
	case errors.Is(err, worker.ErrUnknownReference):
		return newProblem(http.StatusNotFound, ProblemNotFound, "no request has this reference")
	case errors.Is(err, worker.ErrNotCancellable):
		return newProblem(http.StatusConflict, ProblemNotCancellable, "a retrieval, or every item has already ended")
	case errors.Is(err, worker.ErrNoExport):
		return newProblem(http.StatusNotFound, ProblemNotFound, "no such export (not a retrieval, not done, no such task, or deleted by retention)")
	}
	return err
}

// CreateRequest enqueues a request.
func (h *handlers) CreateRequest(ctx context.Context, req CreateRequestRequestObject) (CreateRequestResponseObject, error) {
	b := req.Body
	r := worker.Request{
		Reference:      b.Reference,
		Kind:           worker.Kind(b.Kind),
		ComplianceType: mpgdpr.ComplianceType(b.ComplianceType),
		DistinctIDs:    b.DistinctIds,
	}
	if b.DisclosureType != nil {
		r.DisclosureType = mpgdpr.DisclosureType(*b.DisclosureType)
	}
	if b.Projects != nil {
		r.Projects = *b.Projects
	}
	if b.AllProjects != nil {
		r.AllProjects = *b.AllProjects
	}
	if b.ReceivedAt != nil {
		r.ReceivedAt = *b.ReceivedAt
	}
	if b.CallbackUrl != nil {
		r.CallbackURL = *b.CallbackUrl
	}
	if e := b.Extension; e != nil {
		r.Extension = &worker.Extension{Reason: e.Reason, NoticeAt: e.NoticeAt}
	}
	res, err := h.s.svc.Enqueue(ctx, r)
	if err != nil {
		return nil, serviceProblem(err)
	}
	out := enqueued(res)
	if res.Duplicate {
		return CreateRequest200JSONResponse(*out), nil
	}
	return CreateRequest202JSONResponse(*out), nil
}

// GetRequest reports a request.
func (h *handlers) GetRequest(ctx context.Context, req GetRequestRequestObject) (GetRequestResponseObject, error) {
	withEvents := req.Params.Events != nil && *req.Params.Events
	var opts []worker.StatusOption
	if withEvents {
		opts = append(opts, worker.WithEvents())
	}
	rs, err := h.s.svc.RequestStatus(ctx, req.Reference, opts...)
	if err != nil {
		return nil, serviceProblem(err)
	}
	out := RequestStatus{Reference: rs.Reference, Kind: string(rs.Kind), ReceivedAt: rs.ReceivedAt, Items: []Item{}}
	statusExtras(rs, &out)
	for _, it := range rs.Items {
		item := Item{Project: it.Project, State: it.State, Tasks: []Task{}}
		if it.Detail != "" {
			item.Detail = &it.Detail
		}
		for _, t := range it.Tasks {
			task := Task{TaskId: t.TaskID, Origin: t.Origin, Status: t.Status, Polls: t.Polls, Done: t.Done}
			// Never the server's path of the export: the API's own URL.
			if rs.Kind == worker.Retrieval && t.ExportSHA256 != "" {
				task.Export = &ExportRef{Url: exportURL(rs.Reference, it.Project, t.TaskID), Size: t.ExportSize, Sha256: t.ExportSHA256}
			}
			item.Tasks = append(item.Tasks, task)
		}
		if withEvents {
			evs := make([]Event, 0, len(it.Events))
			for _, e := range it.Events {
				ev := Event{At: e.At, Event: e.Event}
				if e.TaskID != "" {
					ev.TaskId = &e.TaskID
				}
				if e.BatchID != 0 {
					ev.BatchId = &e.BatchID
				}
				if e.Detail != "" {
					ev.Detail = &e.Detail
				}
				evs = append(evs, ev)
			}
			item.Events = &evs
		}
		out.Items = append(out.Items, item)
	}
	return GetRequest200JSONResponse(out), nil
}

// exportURL is the API path of a task's export.
func exportURL(ref, project, task string) string {
	return "/v1/requests/" + url.PathEscape(ref) + "/exports/" + url.PathEscape(project) + "/" + url.PathEscape(task)
}

// ListRequests lists requests a page at a time.
func (h *handlers) ListRequests(ctx context.Context, req ListRequestsRequestObject) (ListRequestsResponseObject, error) {
	var o worker.ListOptions
	if p := req.Params; p.State != nil {
		o.State = string(*p.State)
	}
	if p := req.Params; p.After != nil {
		o.After = *p.After
	}
	if p := req.Params; p.Limit != nil {
		o.Limit = *p.Limit
	}
	page, err := h.s.svc.ListRequests(ctx, o)
	if err != nil {
		var re *worker.RequestError
		if errors.As(err, &re) {
			return nil, newProblem(http.StatusBadRequest, ProblemInvalid, "a query parameter is not valid", FieldError{Field: "query parameter " + re.Field, Rule: re.Problem})
		}
		return nil, serviceProblem(err)
	}
	out := RequestPage{Requests: make([]RequestSummary, 0, len(page.Requests))}
	if page.Next != "" {
		out.Next = &page.Next
	}
	for _, r := range page.Requests {
		out.Requests = append(out.Requests, RequestSummary{
			Reference: r.Reference, Kind: string(r.Kind), ComplianceType: r.ComplianceType, State: r.State,
			Projects: r.Projects, ReceivedAt: r.ReceivedAt, CompletedAt: r.CompletedAt, Due: r.Due,
		})
	}
	return ListRequests200JSONResponse(out), nil
}

// CancelRequest cancels a deletion.
func (h *handlers) CancelRequest(ctx context.Context, req CancelRequestRequestObject) (CancelRequestResponseObject, error) {
	res, err := h.s.svc.Cancel(ctx, req.Reference)
	if err != nil {
		return nil, serviceProblem(err)
	}
	out := CancelResult{Reference: res.Reference, Items: make([]CancelItem, 0, len(res.Items))}
	for _, it := range res.Items {
		ci := CancelItem{Project: it.Project, State: it.State, Outcome: CancelItemOutcome(it.Outcome)}
		if it.Detail != "" {
			ci.Detail = &it.Detail
		}
		out.Items = append(out.Items, ci)
	}
	return CancelRequest200JSONResponse(out), nil
}

// GetExport streams an export: io.Copy from the worker's file, never
// whole in memory (the generated response closes it).
func (h *handlers) GetExport(ctx context.Context, req GetExportRequestObject) (GetExportResponseObject, error) {
	f, err := h.s.svc.OpenExport(ctx, req.Reference, req.Project, req.TaskId)
	if err != nil {
		return nil, serviceProblem(err)
	}
	name := f.Name
	if name == "" {
		name = req.TaskId + ".zip"
	}
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	resp := GetExport200ApplicationzipResponse{Body: f, ContentLength: f.Size, Headers: GetExport200ResponseHeaders{ContentDisposition: &disp}}
	if sum, err := hex.DecodeString(f.SHA256); err == nil && len(sum) == 32 {
		// RFC 9530: the digest of the representation, base64 between colons.
		d := "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
		resp.Headers.ReprDigest = &d
	}
	return resp, nil
}
