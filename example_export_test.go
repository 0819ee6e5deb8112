package mpgdpr_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// Getting the export: wait for the retrieval, download it, open it with the
// project's API secret and list its files. The fake server stands in for
// Mixpanel; against the real service, drop WithBaseURL and the fast policies.
func ExampleClient_DownloadExport() {
	fake := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("api-secret"))
	defer fake.Close()
	c, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(),
		mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{
		DistinctIDs: []string{"user-1"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		log.Fatal(err)
	}
	task, err := c.WaitRetrieval(ctx, id, mpgdpr.WithPollInterval(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer // or c.DownloadExportFile(ctx, task, "export.zip")
	if _, err := c.DownloadExport(ctx, task, &buf, mpgdpr.WithMaxExportBytes(1<<30)); err != nil {
		log.Fatal(err)
	}
	archive, err := export.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "api-secret")
	if err != nil {
		log.Fatal(err) // export.ErrWrongSecret if the secret is wrong
	}
	for _, f := range archive.Files() {
		fmt.Println(f.Name)
	}
	// Output:
	// events/user-1.json
	// profiles/user-1.json
}
