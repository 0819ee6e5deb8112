package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker"
)

// OpenDSR (https://github.com/opengdpr/OpenDSR, specification.md) on the
// same server, under /opendsr/. A subject request is a worker request in
// every configured project, its subject_request_id the reference.

// OpenDSRVersion is the OpenDSR version this API speaks, the one its
// notices carry (worker.OpenDSRVersion).
const OpenDSRVersion = worker.OpenDSRVersion

// OpenDSRIdentityType is the identity type taken for a Mixpanel distinct
// ID: the spec has none for an analytics id, and controller_customer_id
// (the controller's own id of the person) is what a distinct ID usually
// is. Only the raw format is accepted: Mixpanel matches IDs as they are.
const OpenDSRIdentityType = "controller_customer_id"

// controllerID is the caller's identity in OpenDSR answers: its key's name.
func controllerID(ctx context.Context) string {
	if k, ok := ctx.Value(keyOfRequest).(*Key); ok {
		return k.Name
	}
	return ""
}

// OpendsrCertificate serves the certificate of WithOpenDSRCertificatePEM.
func (h *handlers) OpendsrCertificate(context.Context, OpendsrCertificateRequestObject) (OpendsrCertificateResponseObject, error) {
	if len(h.s.o.certPEM) == 0 {
		return nil, newProblem(http.StatusNotFound, ProblemNotFound, "this processor signs no OpenDSR callback")
	}
	return OpendsrCertificate200ApplicationxPemFileResponse{Body: bytes.NewReader(h.s.o.certPEM), ContentLength: int64(len(h.s.o.certPEM))}, nil
}

// OpendsrDiscovery answers what this processor supports (section 6).
func (h *handlers) OpendsrDiscovery(ctx context.Context, _ OpendsrDiscoveryRequestObject) (OpendsrDiscoveryResponseObject, error) {
	d := OpenDSRDiscovery{
		ApiVersion:                   OpenDSRVersion,
		SupportedIdentities:          []OpenDSRIdentity{{IdentityType: OpenDSRIdentityType, IdentityFormat: "raw"}},
		SupportedSubjectRequestTypes: []string{"erasure", "access", "portability"},
	}
	if h.s.o.certURL != "" {
		d.ProcessorCertificate = &h.s.o.certURL
	}
	return OpendsrDiscovery200JSONResponse(d), nil
}

// OpendsrCreate takes a subject request (section 7).
func (h *handlers) OpendsrCreate(ctx context.Context, req OpendsrCreateRequestObject) (OpendsrCreateResponseObject, error) {
	b := req.Body
	r := worker.Request{
		Reference:      b.SubjectRequestId.String(),
		Kind:           worker.Retrieval,
		ComplianceType: mpgdpr.GDPR,
		AllProjects:    true,
		ReceivedAt:     b.SubmittedTime,
	}
	if b.Regulation != nil {
		r.ComplianceType = mpgdpr.ComplianceType(strings.ToUpper(string(*b.Regulation)))
	}
	if b.SubjectRequestType == "erasure" {
		r.Kind = worker.Deletion
	}
	for _, id := range b.SubjectIdentities {
		r.DistinctIDs = append(r.DistinctIDs, id.IdentityValue)
	}
	if u := b.StatusCallbackUrls; u != nil && len(*u) > 0 {
		r.CallbackURL, r.CallbackFormat = (*u)[0], worker.CallbackOpenDSR
	}
	res, err := h.s.svc.Enqueue(ctx, r)
	if err != nil {
		return nil, serviceProblem(err)
	}
	raw, _ := ctx.Value(rawBody).([]byte)
	return OpendsrCreate201JSONResponse{
		ControllerId:           controllerID(ctx),
		ExpectedCompletionTime: res.DeadlineBy,
		ReceivedTime:           res.ReceivedAt,
		EncodedRequest:         base64.StdEncoding.EncodeToString(withoutIdentities(raw)),
		SubjectRequestId:       r.Reference,
	}, nil
}

// opendsrStatus maps a worker request state to OpenDSR's (section 8).
// Failed and unknown are not ends OpenDSR knows: the request still needs
// the processor's attention, so it stays in_progress.
func opendsrStatus(state string) OpenDSRStatusRequestStatus {
	switch state {
	case worker.RequestReceived:
		return "pending"
	case worker.StateDone:
		return "completed"
	case worker.StateCancelled:
		return "cancelled"
	}
	return "in_progress"
}

// OpendsrStatus reports a subject request (section 8).
func (h *handlers) OpendsrStatus(ctx context.Context, req OpendsrStatusRequestObject) (OpendsrStatusResponseObject, error) {
	rs, err := h.s.svc.RequestStatus(ctx, req.SubjectRequestId.String())
	if err != nil {
		return nil, serviceProblem(err)
	}
	v := OpenDSRVersion
	return OpendsrStatus200JSONResponse{
		ControllerId:           controllerID(ctx),
		ExpectedCompletionTime: rs.DeadlineBy,
		SubjectRequestId:       rs.Reference,
		RequestStatus:          opendsrStatus(rs.State),
		ApiVersion:             &v,
	}, nil
}

// OpendsrCancel cancels a subject request (section 9).
func (h *handlers) OpendsrCancel(ctx context.Context, req OpendsrCancelRequestObject) (OpendsrCancelResponseObject, error) {
	ref := req.SubjectRequestId.String()
	received := time.Now().UTC().Truncate(time.Second)
	if _, err := h.s.svc.Cancel(ctx, ref); err != nil {
		return nil, serviceProblem(err)
	}
	v := OpenDSRVersion
	return OpendsrCancel202JSONResponse{ControllerId: controllerID(ctx), ReceivedTime: received, SubjectRequestId: ref, ApiVersion: &v}, nil
}

// withoutIdentities is an OpenDSR request body with every identity_value
// replaced by "redacted". The spec asks for the body as received in
// encoded_request; this API never answers with a distinct ID, so it gives
// the body re-encoded without them.
func withoutIdentities(raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	if ids, ok := m["subject_identities"].([]any); ok {
		for _, id := range ids {
			if o, ok := id.(map[string]any); ok {
				if _, ok := o["identity_value"]; ok {
					o["identity_value"] = "redacted"
				}
			}
		}
	}
	out, _ := json.Marshal(m)
	return out
}
