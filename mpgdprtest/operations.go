package mpgdprtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/privacykit/mpgdpr/gen"
)

// operations implements the generated server interface. The request was
// validated, rate-limited and authorized before any of these run.
type operations struct{ s *Server }

var _ gen.ServerInterface = operations{}

func (o operations) CreateRetrieval(w http.ResponseWriter, r *http.Request, _ gen.CreateRetrievalParams) {
	var body gen.CreateRetrievalRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	if max := o.s.cfg.maxRetrieval; max > 0 && len(body.DistinctIds) > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Too many distinct_ids: at most %d per request", max))
		return
	}
	disclosure := ""
	if body.DisclosureType != nil {
		disclosure = string(*body.DisclosureType)
	}
	t := o.s.create(Retrieval, body.DistinctIds, string(body.ComplianceType), disclosure)
	o.created(w, t)
}

func (o operations) CreateDeletion(w http.ResponseWriter, r *http.Request, _ gen.CreateDeletionParams) {
	var body gen.CreateDeletionRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	if max := o.s.cfg.maxDeletion; max > 0 && len(body.DistinctIds) > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Too many distinct_ids: at most %d per request", max))
		return
	}
	t, conflict := o.s.createDeletion(body.DistinctIds, string(body.ComplianceType))
	if conflict != nil {
		var e gen.ErrorResponse_Error
		_ = e.FromConflictError(*conflict)
		status := gen.ErrorResponseStatus("error")
		writeJSON(w, http.StatusConflict, gen.ErrorResponse{Status: &status, Error: &e})
		return
	}
	o.created(w, t)
}

func (o operations) CheckRetrieval(w http.ResponseWriter, _ *http.Request, id gen.TrackingId, _ gen.CheckRetrievalParams) {
	o.check(w, Retrieval, id)
}

func (o operations) CheckDeletion(w http.ResponseWriter, _ *http.Request, id gen.TrackingId, _ gen.CheckDeletionParams) {
	o.check(w, Deletion, id)
}

func (o operations) CancelDeletion(w http.ResponseWriter, _ *http.Request, id gen.TrackingId, _ gen.CancelDeletionParams) {
	s := o.s
	s.mu.Lock()
	t, ok := s.tasks[id]
	if !ok || t.Kind != Deletion {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "No deletion task with this id")
		return
	}
	s.settle(t)
	status := t.Status
	if cancellable(status) {
		s.setStatus(t, StatusRevoked, s.cfg.now())
	}
	s.mu.Unlock()
	if !cancellable(status) {
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("The task is %s and can no longer be cancelled", status))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// check answers a status check, then advances the task if the schedule is
// StepPerPoll, so successive checks see each state in turn.
func (o operations) check(w http.ResponseWriter, kind Kind, id string) {
	s := o.s
	s.mu.Lock()
	t, ok := s.tasks[id]
	if !ok || t.Kind != kind {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, fmt.Sprintf("No %s task with this id", kind))
		return
	}
	s.settle(t)
	t.Checks++
	obj := s.taskObject(t, false)
	if s.cfg.schedule.mode == modeStepPerPoll {
		if n := next(t.Status); n != t.Status {
			s.setStatus(t, n, s.cfg.now())
		}
	}
	s.mu.Unlock()
	status := gen.TaskStatusResponseStatus("ok")
	writeJSON(w, http.StatusOK, gen.TaskStatusResponse{Status: &status, Results: obj})
}

// created writes a create's answer in the configured shape.
func (o operations) created(w http.ResponseWriter, t *task) {
	s := o.s
	var results gen.CreateTaskResponse_Results
	if s.cfg.createShape == CreateArray {
		s.mu.Lock()
		obj := s.taskObject(t, true)
		s.mu.Unlock()
		_ = results.FromCreateTaskResponseResults1([]gen.Task{*obj})
	} else {
		_ = results.FromCreateTaskResult(gen.CreateTaskResult{TaskId: &t.ID})
	}
	status := gen.CreateTaskResponseStatus("ok")
	writeJSON(w, s.cfg.createStatus, gen.CreateTaskResponse{Status: &status, Results: &results})
}

// taskObject renders t as the document's Task. asCreated uses the spelling
// of the array-shaped create answer (lower-case compliance type, an id
// count instead of the ids). Called with s.mu held.
func (s *Server) taskObject(t *task, asCreated bool) *gen.Task {
	id, status := t.ID, gen.TaskStatus(t.Status)
	ct := t.ComplianceType
	date := mixpanelTime(t.Requested)
	pid, user := s.cfg.projectID, s.cfg.requester
	obj := &gen.Task{
		TrackingId: &id, Status: &status, ComplianceType: &ct,
		ProjectId: &pid, DateRequested: &date, RequestingUser: &user,
	}
	if t.DisclosureType != "" {
		dt := strings.ToUpper(t.DisclosureType)
		obj.DisclosureType = &dt
	}
	if asCreated {
		lower := strings.ToLower(ct)
		obj.ComplianceType = &lower
		n := len(t.DistinctIDs)
		obj.DistinctIdCount = &n
		return obj
	}
	ids := slices.Clone(t.DistinctIDs)
	obj.DistinctIds = &ids
	if t.Kind == Retrieval {
		// An empty string until the export is ready, as Mixpanel shows it.
		link := t.DownloadURL
		switch s.cfg.linkField {
		case LinkResult:
			obj.Result = &link
		case LinkResults:
			obj.Results = &link
		default:
			obj.DownloadUrl = &link
		}
	}
	return obj
}

// create files a task.
func (s *Server) create(kind Kind, ids []string, compliance, disclosure string) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createLocked(kind, ids, compliance, disclosure)
}

func (s *Server) createLocked(kind Kind, ids []string, compliance, disclosure string) *task {
	s.seq++
	now := s.cfg.now()
	t := &task{Task: Task{
		ID:             fmt.Sprintf("%s-%04d-%s", kind[:3], s.seq, randomHex(4)),
		Kind:           kind,
		Status:         StatusPending,
		DistinctIDs:    slices.Clone(ids),
		ComplianceType: compliance,
		DisclosureType: disclosure,
		Requested:      now,
	}, since: now, sig: randomHex(16)}
	s.tasks[t.ID] = t
	s.order = append(s.order, t.ID)
	return t
}

// createDeletion files a deletion unless some of its ids are covered by a
// deletion still running, in which case nothing is filed and the conflict
// names those ids and tasks.
func (s *Server) createDeletion(ids []string, compliance string) (*task, *gen.ConflictError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var conflictIDs, taskIDs []string
	seen := map[string]bool{}
	for _, tid := range s.order {
		t := s.tasks[tid]
		if t.Kind != Deletion {
			continue
		}
		s.settle(t)
		if terminal(t.Status) {
			continue
		}
		hit := false
		for _, id := range t.DistinctIDs {
			if want[id] && !seen[id] {
				seen[id], hit = true, true
				conflictIDs = append(conflictIDs, id)
			} else if want[id] {
				hit = true
			}
		}
		if hit {
			taskIDs = append(taskIDs, t.ID)
		}
	}
	if len(conflictIDs) > 0 {
		return nil, &gen.ConflictError{ConflictingDistinctIds: conflictIDs, ConflictingTaskIds: &taskIDs}
	}
	return s.createLocked(Deletion, ids, compliance, ""), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
