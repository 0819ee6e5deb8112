package api_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/api"
	"github.com/privacykit/mpgdpr/worker/webhook"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// specExample reads an example of OpenDSR's specification (testdata/README.md).
func specExample(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// sameFields fails t unless got has every field of the spec's example but
// those named optional, and no other.
func sameFields(t *testing.T, what string, got, example map[string]any, optional ...string) {
	t.Helper()
	for k := range example {
		if _, ok := got[k]; !ok && !contains(optional, k) {
			t.Errorf("%s lacks %s: %v", what, k, got)
		}
	}
	for k := range got {
		if _, ok := example[k]; !ok {
			t.Errorf("%s has %s, which the spec's example has not", what, k)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// wantOpenDSRError checks an error in OpenDSR's form (section 7.6).
func wantOpenDSRError(t *testing.T, r *response, status int) map[string]any {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: %s, want %d: %s", r.Request.Method, r.Request.URL.Path, r.Status, status, r.body)
	}
	e, _ := r.json(t)["error"].(map[string]any)
	if e == nil || e["code"] != float64(status) {
		t.Fatalf("not an OpenDSR error of code %d: %s", status, r.body)
	}
	return e
}

func TestOpenDSROnEachDriver(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		svc, secrets := realWorker(t, d)
		s := serve(t, svc)
		req := specExample(t, "opendsr_request.json")

		// The example as the spec gives it names the person by email,
		// which a Mixpanel distinct ID is not.
		e := wantOpenDSRError(t, s.do("POST", "/opendsr/requests", fileSecret, req), 400)
		if strings.Contains(e["message"].(string)+s.bodies[len(s.bodies)-1], "johndoe@example.com") {
			t.Error("the error quotes the identity")
		}
		// The example has no regulation, which means gdpr (OpenGDPR 1.0).
		errs, _ := e["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["message"] != "/subject_identities/0/identity_type" || errs[0].(map[string]any)["reason"] != "enum" {
			t.Errorf("errors %v, want enum at /subject_identities/0/identity_type", errs)
		}

		ids := req["subject_identities"].([]any)
		ids[0].(map[string]any)["identity_type"] = api.OpenDSRIdentityType
		ids[0].(map[string]any)["identity_value"] = personIDs[0]
		body, _ := json.Marshal(req)
		r := s.do("POST", "/opendsr/requests", fileSecret, string(body))
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("create: %s: %s", r.Status, r.body)
		}
		created := r.json(t)
		// processor_signature: not given, the API does not sign (yet).
		sameFields(t, "the create answer", created, map[string]any{"controller_id": 0, "expected_completion_time": 0, "received_time": 0, "encoded_request": 0, "subject_request_id": 0})
		if created["controller_id"] != "filer" || created["subject_request_id"] != "a7551968-d5d6-44b2-9831-815ac9017798" {
			t.Errorf("create answered %v", created)
		}
		// encoded_request is the request without its identities' values.
		var enc map[string]any
		if b, _ := base64.StdEncoding.DecodeString(created["encoded_request"].(string)); json.Unmarshal(b, &enc) != nil {
			t.Errorf("encoded_request is not base64 JSON: %v", created["encoded_request"])
		}
		req["subject_identities"].([]any)[0].(map[string]any)["identity_value"] = "redacted"
		if a, b := mustJSON(t, enc), mustJSON(t, req); a != b {
			t.Errorf("encoded_request is\n%s\nwant\n%s", a, b)
		}
		if r := s.do("POST", "/opendsr/requests", fileSecret, string(body)); r.StatusCode != http.StatusCreated {
			t.Errorf("the same request again: %s: %s", r.Status, r.body)
		}

		rs, err := svc.RequestStatus(t.Context(), "a7551968-d5d6-44b2-9831-815ac9017798")
		if err != nil {
			t.Fatal(err)
		}
		if rs.Kind != worker.Deletion || len(rs.Items) != 2 {
			t.Errorf("the worker holds %+v, want a deletion in alpha and beta", rs)
		}

		r = s.do("GET", "/opendsr/requests/a7551968-d5d6-44b2-9831-815ac9017798", readSecret, nil)
		if r.StatusCode != 200 {
			t.Fatalf("status: %s: %s", r.Status, r.body)
		}
		st := r.json(t)
		sameFields(t, "the status answer", st, specExample(t, "opendsr_status_response.json"), "results_url", "results_count")
		if st["request_status"] != "pending" || st["api_version"] != api.OpenDSRVersion || st["controller_id"] != "reader" {
			t.Errorf("status %v", st)
		}
		wantOpenDSRError(t, s.do("GET", "/opendsr/requests/0b5e7d6c-2f1a-4c3b-9d8e-7f6a5b4c3d2e", readSecret, nil), 404)
		wantOpenDSRError(t, s.do("GET", "/opendsr/requests/not-a-uuid", readSecret, nil), 400)
		s.noLeaks(secrets...)
	})
}

func TestOpenDSRCancel(t *testing.T) {
	svc := &fakeService{cancel: func(ref string) (*worker.CancelResult, error) {
		switch ref {
		case "a7551968-d5d6-44b2-9831-815ac9017798":
			return &worker.CancelResult{Reference: ref, Items: []worker.CancelItem{{Project: "alpha", State: "cancelled", Outcome: "cancelled"}}}, nil
		case "0b5e7d6c-2f1a-4c3b-9d8e-7f6a5b4c3d2e":
			return nil, worker.ErrNotCancellable
		}
		return nil, worker.ErrUnknownReference
	}}
	s := serve(t, svc)
	r := s.do("DELETE", "/opendsr/requests/a7551968-d5d6-44b2-9831-815ac9017798", fileSecret, nil)
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: %s: %s", r.Status, r.body)
	}
	got := r.json(t)
	sameFields(t, "the cancel answer", got, specExample(t, "opendsr_cancel_response.json"))
	if got["subject_request_id"] != "a7551968-d5d6-44b2-9831-815ac9017798" || got["controller_id"] != "filer" {
		t.Errorf("cancel answered %v", got)
	}
	wantOpenDSRError(t, s.do("DELETE", "/opendsr/requests/0b5e7d6c-2f1a-4c3b-9d8e-7f6a5b4c3d2e", fileSecret, nil), 409)
	wantOpenDSRError(t, s.do("DELETE", "/opendsr/requests/1c5e7d6c-2f1a-4c3b-9d8e-7f6a5b4c3d2e", fileSecret, nil), 404)
	wantOpenDSRError(t, s.do("DELETE", "/opendsr/requests/1c5e7d6c-2f1a-4c3b-9d8e-7f6a5b4c3d2e", readSecret, nil), 403)
}

func TestOpenDSRDiscovery(t *testing.T) {
	s := serve(t, &fakeService{}, api.WithOpenDSRCertificate("https://processor.example/cert.pem"))
	r := s.do("GET", "/opendsr/discovery", "", nil)
	var d struct {
		APIVersion string `json:"api_version"`
		Identities []struct {
			Type   string `json:"identity_type"`
			Format string `json:"identity_format"`
		} `json:"supported_identities"`
		Types []string `json:"supported_subject_request_types"`
		Cert  string   `json:"processor_certificate"`
	}
	if err := json.Unmarshal(r.body, &d); err != nil || r.StatusCode != 200 {
		t.Fatalf("discovery: %s: %s", r.Status, r.body)
	}
	if d.APIVersion != api.OpenDSRVersion || len(d.Identities) != 1 || d.Identities[0].Type != "controller_customer_id" || d.Identities[0].Format != "raw" ||
		strings.Join(d.Types, ",") != "erasure,access,portability" || d.Cert != "https://processor.example/cert.pem" {
		t.Errorf("discovery %s", r.body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpenDSRSigned: with a key, every OpenDSR answer carries the
// processor domain and an RSA signature of its body that the certificate's
// key verifies (sections 7.4, 8.3); other answers are not signed.
func TestOpenDSRSigned(t *testing.T) {
	keyFile, _ := workertest.OpenDSRFiles(t)
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, &fakeService{}, api.WithOpenDSRSigning(key, "processor.example"))
	for _, path := range []string{"/opendsr/discovery", "/opendsr/requests/1c5e7d6c-2f1a-4c3b-9d8e-7f6a5b4c3d2e"} {
		r := s.do("GET", path, readSecret, nil)
		if r.Header.Get(webhook.OpenDSRDomainHeader) != "processor.example" {
			t.Errorf("%s: domain header %q", path, r.Header.Get(webhook.OpenDSRDomainHeader))
		}
		if err := webhook.VerifyOpenDSR(&key.PublicKey, r.Header.Get(webhook.OpenDSRSignatureHeader), r.body); err != nil {
			t.Errorf("%s (%s): signature: %v", path, r.Status, err)
		}
	}
	if r := s.do("GET", "/healthz", "", nil); r.Header.Get(webhook.OpenDSRSignatureHeader) != "" {
		t.Error("a non-OpenDSR answer is signed")
	}
}

// TestOpenDSRCertificate: the certificate that checks OpenDSR callbacks is
// served, openly, where discovery says; without one, 404.
func TestOpenDSRCertificate(t *testing.T) {
	const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	s := serve(t, &fakeService{}, api.WithOpenDSRCertificatePEM([]byte(pem), "https://processor.example/opendsr/certificate"))
	r := s.do("GET", "/opendsr/certificate", "", nil)
	if r.StatusCode != 200 || string(r.body) != pem || r.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Errorf("certificate: %s %q %s", r.Status, r.body, r.Header.Get("Content-Type"))
	}
	if d := s.do("GET", "/opendsr/discovery", "", nil).json(t); d["processor_certificate"] != "https://processor.example/opendsr/certificate" {
		t.Errorf("discovery names %v", d["processor_certificate"])
	}
	if r := serve(t, &fakeService{}).do("GET", "/opendsr/certificate", "", nil); r.StatusCode != 404 {
		t.Errorf("no certificate configured: %s", r.Status)
	}
}
