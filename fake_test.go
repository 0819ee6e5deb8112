package mpgdpr_test

// The client's operations run against mpgdprtest's fake with validation on
// both sides: the fake checks every request and its own answers against
// the merged document, and contract's strict transport checks the same
// traffic from the client's side. Every test ends with 0 violations.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/contract"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/gen"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

const (
	fakeOAuth   = "oauth-SENTINEL-c0ffee42"
	fakeProject = "project-SENTINEL-7e57ab1e"
	fakeSecret  = "secret-SENTINEL-5ea1ed00"
)

var fakeRetries = mpgdpr.RetryPolicy{MaxAttempts: 6, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxElapsed: 10 * time.Second, MaxRetryAfter: 60 * time.Millisecond}

// throughFake starts a fake and returns a client that reaches it through a
// strict contract transport. At cleanup, any violation either side saw
// fails the test.
func throughFake(t *testing.T, opts []mpgdprtest.Option, copts ...mpgdpr.Option) (*mpgdprtest.Server, *mpgdpr.Client, *contract.Transport) {
	t.Helper()
	fake := mpgdprtest.NewServer(append([]mpgdprtest.Option{
		mpgdprtest.WithTokens(fakeOAuth, fakeProject), mpgdprtest.WithAPISecret(fakeSecret),
	}, opts...)...)
	t.Cleanup(fake.Close)
	tr, err := contract.NewTransport(nil, contract.Strict(), contract.WithBaseURL(fake.URL()), contract.RedactValues(fakeSecret))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fake.AssertNoViolations(t)
		for _, v := range tr.Violations() {
			t.Errorf("contract transport: %s", v)
		}
	})
	base := []mpgdpr.Option{
		mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil), mpgdpr.WithRetryPolicy(fakeRetries),
		mpgdpr.WithAPISecret(fakeSecret), mpgdpr.WithHTTPClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}),
	}
	c, err := mpgdpr.New(fakeOAuth, fakeProject, append(base, copts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return fake, c, tr
}

// waitDone checks a task until it ends, returning the statuses seen.
func waitDone(t *testing.T, check func() (*mpgdpr.Task, error)) (*mpgdpr.Task, []mpgdpr.Status) {
	t.Helper()
	var seen []mpgdpr.Status
	for range 10 {
		tk, err := check()
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, tk.Status)
		if tk.Status.Terminal() {
			return tk, seen
		}
	}
	t.Fatalf("task never ended: %v", seen)
	return nil, nil
}

var lifecycle = []mpgdpr.Status{mpgdpr.StatusPending, mpgdpr.StatusStaging, mpgdpr.StatusStarted, mpgdpr.StatusSuccess}

// TestFakeRetrieval: every kind of retrieval through to its export, which
// DownloadExport fetches from the other host without credentials and
// export.Open decrypts with the API secret.
func TestFakeRetrieval(t *testing.T) {
	fake, c, _ := throughFake(t, nil)
	ctx := context.Background()
	reqs := []mpgdpr.RetrievalRequest{
		{DistinctIDs: []string{"alice"}, ComplianceType: mpgdpr.GDPR},
		{DistinctIDs: []string{"bob", "carol"}, ComplianceType: mpgdpr.CCPA},
		{DistinctIDs: []string{"dave"}, ComplianceType: mpgdpr.CCPA, DisclosureType: mpgdpr.DisclosureData},
		{DistinctIDs: []string{"erin"}, ComplianceType: mpgdpr.CCPA, DisclosureType: mpgdpr.DisclosureCategories},
		{DistinctIDs: []string{"frank", "ü/ñ"}, ComplianceType: mpgdpr.CCPA, DisclosureType: mpgdpr.DisclosureSources},
	}
	for _, r := range reqs {
		id, err := c.CreateRetrieval(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		tk, seen := waitDone(t, func() (*mpgdpr.Task, error) { return c.CheckRetrieval(ctx, id) })
		if !slices.Equal(seen, lifecycle) || tk.TrackingID != id || !slices.Equal(tk.DistinctIDs, r.DistinctIDs) || tk.ComplianceType != string(r.ComplianceType) {
			t.Errorf("%v: saw %v, ended as %+v", r, seen, tk)
		}
		var buf bytes.Buffer
		n, err := c.DownloadExport(ctx, tk, &buf)
		if err != nil || n != int64(buf.Len()) {
			t.Fatalf("DownloadExport: %d bytes, %v", n, err)
		}
		a, err := export.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), fakeSecret)
		if err != nil {
			t.Fatal(err)
		}
		want := mpgdprtest.ExportFiles(r.DistinctIDs...)
		if len(a.Files()) != len(want) {
			t.Errorf("%d files in the export, want %d", len(a.Files()), len(want))
		}
		if err := a.Walk(func(fi export.FileInfo, rd io.Reader) error {
			got, err := io.ReadAll(rd)
			if err == nil && !bytes.Equal(got, want[fi.Name]) {
				t.Errorf("%s differs", fi.Name)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// DownloadExportFile too, through the same fake.
	id, _ := c.CreateRetrieval(ctx, reqs[0])
	tk, _ := waitDone(t, func() (*mpgdpr.Task, error) { return c.CheckRetrieval(ctx, id) })
	path := filepath.Join(t.TempDir(), "export.zip")
	if _, err := c.DownloadExportFile(ctx, tk, path); err != nil {
		t.Fatal(err)
	}
	if a, err := export.OpenFile(path, fakeSecret); err != nil {
		t.Error(err)
	} else {
		a.Close()
	}

	link, _ := url.Parse(tk.DownloadURL)
	api, _ := url.Parse(c.BaseURL())
	if link.Host == api.Host {
		t.Errorf("export link on the API's host %s", api.Host)
	}
	downloads := 0
	for _, r := range fake.Requests() {
		if r.Op != mpgdprtest.OpDownload {
			continue
		}
		downloads++
		if r.Bearer != mpgdprtest.CredentialAbsent || r.ProjectToken != mpgdprtest.CredentialAbsent {
			t.Errorf("a credential reached the download host: %+v", r)
		}
	}
	if downloads != len(reqs)+1 {
		t.Errorf("%d downloads recorded, want %d", downloads, len(reqs)+1)
	}
}

// TestFakeDeletion: create, check, cancel (204 then REVOKED), 405 once
// started, 409 for ids a running deletion covers, and the run to SUCCESS.
func TestFakeDeletion(t *testing.T) {
	fake, c, _ := throughFake(t, []mpgdprtest.Option{mpgdprtest.WithSchedule(mpgdprtest.Manual())})
	ctx := context.Background()
	del := func(ids ...string) (string, error) {
		return c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: ids, ComplianceType: mpgdpr.GDPR})
	}
	a, err := del("a1", "a2")
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := c.CheckDeletion(ctx, a); err != nil || tk.Status != mpgdpr.StatusPending || !slices.Equal(tk.DistinctIDs, []string{"a1", "a2"}) {
		t.Fatalf("CheckDeletion = %+v, %v", tk, err)
	}
	_ = fake.Advance(a) // STAGING: still cancellable
	if err := c.CancelDeletion(ctx, a); err != nil {
		t.Fatal(err)
	}
	if tk, err := c.CheckDeletion(ctx, a); err != nil || tk.Status != mpgdpr.StatusRevoked {
		t.Fatalf("after cancel: %+v, %v", tk, err)
	}

	b, err := del("a1", "b1")
	if err != nil {
		t.Fatalf("ids of a cancelled deletion: %v", err)
	}
	_, err = del("b1", "c1")
	var e *mpgdpr.Error
	if !errors.As(err, &e) || !errors.Is(err, mpgdpr.ErrConflict) || !slices.Equal(e.ConflictingDistinctIDs, []string{"b1"}) || !slices.Equal(e.ConflictingTaskIDs, []string{b}) {
		t.Fatalf("overlap: %v", err)
	}
	_ = fake.Advance(b)
	_ = fake.Advance(b) // STARTED
	if err := c.CancelDeletion(ctx, b); !errors.Is(err, mpgdpr.ErrCannotCancel) {
		t.Errorf("cancel once started: %v", err)
	}
	_ = fake.Advance(b)
	if tk, err := c.CheckDeletion(ctx, b); err != nil || tk.Status != mpgdpr.StatusSuccess {
		t.Errorf("finished deletion: %+v, %v", tk, err)
	}
	if _, err := del("b1", "c1"); err != nil {
		t.Errorf("after the deletion ended: %v", err)
	}
}

// TestFakeErrors: the documented error answers reach the caller as the
// right errors, and are themselves valid answers.
func TestFakeErrors(t *testing.T) {
	fake, c, _ := throughFake(t, []mpgdprtest.Option{mpgdprtest.WithMaxIDs(0, 2)})
	ctx := context.Background()
	if _, err := c.CheckRetrieval(ctx, "no-such-task"); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("unknown task: %v", err)
	}
	if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a", "b", "c"}, ComplianceType: mpgdpr.GDPR}); !errors.Is(err, mpgdpr.ErrBadRequest) {
		t.Errorf("over the project's id limit: %v", err)
	}
	tr, _ := contract.NewTransport(nil, contract.WithBaseURL(fake.URL()))
	for _, tc := range []struct {
		oauth, project string
		want           error
	}{
		{"oauth-wrong-token", fakeProject, mpgdpr.ErrUnauthorized},
		{fakeOAuth, "project-wrong-token", mpgdpr.ErrForbidden},
	} {
		other, err := mpgdpr.New(tc.oauth, tc.project, mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil), mpgdpr.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		if err := other.CancelDeletion(ctx, "any"); !errors.Is(err, tc.want) {
			t.Errorf("tokens %s/%s: %v, want %v", tc.oauth, tc.project, err, tc.want)
		}
	}
	if vs := tr.Violations(); len(vs) != 0 {
		t.Errorf("401/403 answers: %v", vs)
	}
}

// TestFakeIDLimits: the client's default limits are the document's: a
// full request of each kind is valid.
func TestFakeIDLimits(t *testing.T) {
	_, c, _ := throughFake(t, nil)
	ctx := context.Background()
	retr, del := c.MaxIDsPerRequest()
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "person-" + time.Duration(i).String()
		}
		return out
	}
	if _, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: ids(retr), ComplianceType: mpgdpr.GDPR}); err != nil {
		t.Errorf("%d ids in a retrieval: %v", retr, err)
	}
	if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: ids(del), ComplianceType: mpgdpr.GDPR}); err != nil {
		t.Errorf("%d ids in a deletion: %v", del, err)
	}
	if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: ids(del + 1), ComplianceType: mpgdpr.GDPR}); !errors.Is(err, mpgdpr.ErrInvalidInput) {
		t.Errorf("%d ids in a deletion: %v, want refused before sending", del+1, err)
	}
}

// TestFakeRetries: a rate limit, 503s, a reset connection and a cut
// download (resumed with a Range request) are all retried to success,
// with no violation.
func TestFakeRetries(t *testing.T) {
	fake, c, _ := throughFake(t, []mpgdprtest.Option{mpgdprtest.WithRateLimit(25)})
	ctx := context.Background()
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"r1", "r2", "r3"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	fake.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckRetrieval, Status: http.StatusServiceUnavailable, RetryAfter: "0", Times: 2})
	fake.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckRetrieval, Reset: mpgdprtest.ResetAfterBody})
	fake.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpDownload, Truncate: 100})
	tk, _ := waitDone(t, func() (*mpgdpr.Task, error) { return c.CheckRetrieval(ctx, id) })
	var buf bytes.Buffer
	if _, err := c.DownloadExport(ctx, tk, &buf); err != nil {
		t.Fatalf("download cut after 100 bytes: %v", err)
	}
	if _, err := export.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), fakeSecret); err != nil {
		t.Errorf("resumed export: %v", err)
	}
	counts := map[int]int{}
	faults := map[string]int{}
	for _, r := range fake.Requests() {
		counts[r.Status]++
		faults[r.Fault]++
	}
	if counts[http.StatusTooManyRequests] == 0 || counts[http.StatusPartialContent] != 1 || faults["status"] != 2 || faults["reset-after-body"] != 1 || faults["truncate"] != 1 || fake.FaultsLeft() != 0 {
		t.Errorf("statuses %v, faults %v, %d left", counts, faults, fake.FaultsLeft())
	}
	t.Logf("answers by status: %v; faults: %v", counts, faults)
}

// TestFakeOutcomeUnknown: a create whose answer is lost is reported as
// ErrOutcomeUnknown, and resubmitting it is answered 409 naming the task
// that was created after all, the documented way to find it.
func TestFakeOutcomeUnknown(t *testing.T) {
	fake, c, _ := throughFake(t, nil)
	ctx := context.Background()
	fake.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Reset: mpgdprtest.ResetAfterHandling})
	req := mpgdpr.DeletionRequest{DistinctIDs: []string{"x"}, ComplianceType: mpgdpr.CCPA}
	if _, err := c.CreateDeletion(ctx, req); !errors.Is(err, mpgdpr.ErrOutcomeUnknown) {
		t.Fatalf("lost answer: %v", err)
	}
	var e *mpgdpr.Error
	if _, err := c.CreateDeletion(ctx, req); !errors.As(err, &e) || len(e.ConflictingTaskIDs) != 1 || e.ConflictingTaskIDs[0] != fake.Tasks()[0].ID {
		t.Errorf("resubmission: %v", err)
	}
}

// TestFakeShapes: the other documented answer shapes (a 201 with an array
// of tasks; the link under result or results) decode and are valid.
func TestFakeShapes(t *testing.T) {
	for _, field := range []string{mpgdprtest.LinkResult, mpgdprtest.LinkResults, mpgdprtest.LinkDownloadURL} {
		t.Run(field, func(t *testing.T) {
			_, c, _ := throughFake(t, []mpgdprtest.Option{
				mpgdprtest.WithCreateResponse(http.StatusCreated, mpgdprtest.CreateArray), mpgdprtest.WithLinkField(field),
			})
			ctx := context.Background()
			id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.CCPA, DisclosureType: mpgdpr.DisclosureData})
			if err != nil {
				t.Fatal(err)
			}
			tk, _ := waitDone(t, func() (*mpgdpr.Task, error) { return c.CheckRetrieval(ctx, id) })
			if tk.DownloadURL == "" {
				t.Errorf("no link found under %s", field)
			}
			if _, err := c.DownloadExport(ctx, tk, io.Discard); err != nil {
				t.Error(err)
			}
			if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR}); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestFakeRaw: the generated client behind Raw goes through the same auth
// and pipeline, and its requests are valid too.
func TestFakeRaw(t *testing.T) {
	_, c, _ := throughFake(t, nil)
	ctx := context.Background()
	r, err := c.Raw().CreateDeletionWithResponse(ctx, &gen.CreateDeletionParams{}, gen.CreateDeletionRequest{DistinctIds: []string{"z"}, ComplianceType: gen.ComplianceType("GDPR")})
	if err != nil || r.JSON200 == nil {
		t.Fatalf("raw create: %v", err)
	}
	created, err := r.JSON200.Results.AsCreateTaskResult()
	if err != nil || created.TaskId == nil {
		t.Fatalf("raw create answer %s: %v", r.Body, err)
	}
	s, err := c.Raw().CheckDeletionWithResponse(ctx, *created.TaskId, &gen.CheckDeletionParams{})
	if err != nil || s.JSON200 == nil || s.JSON200.Results == nil || *s.JSON200.Results.Status != gen.TaskStatus("PENDING") {
		t.Errorf("raw check: %v %s", err, s.Body)
	}
}

// TestFakeNoSecretLeaves: with the contract transport in the path, no
// credential or the API secret shows in errors, even for failed calls.
func TestFakeNoSecretLeaves(t *testing.T) {
	fake, c, tr := throughFake(t, nil)
	ctx := context.Background()
	fake.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Reset: mpgdprtest.ResetBeforeBody})
	_, err1 := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	_, err2 := c.CheckRetrieval(ctx, "missing")
	for _, s := range []string{errString(err1), errString(err2), tr.Report()} {
		for _, secret := range []string{fakeOAuth, fakeProject, fakeSecret} {
			if bytes.Contains([]byte(s), []byte(secret)) {
				t.Errorf("a secret shows in %q", s)
			}
		}
	}
	if err1 == nil || err2 == nil {
		t.Errorf("errors expected: %v, %v", err1, err2)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestFakeBatches: DeleteAll and RetrieveAll split, resubmit around a 409
// and account for every id, with every request valid.
func TestFakeBatches(t *testing.T) {
	fake, c, _ := throughFake(t, []mpgdprtest.Option{mpgdprtest.WithSchedule(mpgdprtest.Manual())})
	ctx := context.Background()
	ids := make([]string, 4500)
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
	}
	running, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"user-7", "user-2100"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.DeleteAll(ctx, append(ids, "user-3"), mpgdpr.GDPR)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, bt := range res.Tasks {
		accepted += len(bt.DistinctIDs)
	}
	var conflicted []string
	for _, cf := range res.Conflicts {
		conflicted = append(conflicted, cf.DistinctIDs...)
		if !slices.Equal(cf.TaskIDs, []string{running}) {
			t.Errorf("conflict names tasks %v, want %s", cf.TaskIDs, running)
		}
	}
	if accepted != 4498 || !slices.Equal(conflicted, []string{"user-7", "user-2100"}) || !slices.Equal(res.Duplicates, []string{"user-3"}) || len(res.Unknown)+len(res.Unsent) != 0 {
		t.Errorf("DeleteAll: %d accepted, conflicts %v, duplicates %v, unknown %d, unsent %d", accepted, conflicted, res.Duplicates, len(res.Unknown), len(res.Unsent))
	}

	res, err = c.RetrieveAll(ctx, ids[:4001], mpgdpr.CCPA, mpgdpr.DisclosureCategories)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tasks) != 3 || len(res.Tasks[0].DistinctIDs) != 2000 || len(res.Tasks[2].DistinctIDs) != 1 {
		t.Errorf("RetrieveAll made %d tasks", len(res.Tasks))
	}
	retrievals := 0
	for _, tk := range fake.Tasks() {
		if tk.Kind == mpgdprtest.Retrieval {
			retrievals++
			if tk.DisclosureType != "Categories" || tk.ComplianceType != "CCPA" {
				t.Errorf("retrieval task %s: %s/%s", tk.ID, tk.ComplianceType, tk.DisclosureType)
			}
		}
	}
	if retrievals != 3 {
		t.Errorf("%d retrieval tasks on the fake", retrievals)
	}
}
