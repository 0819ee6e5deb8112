package contract_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/contract"
	"github.com/privacykit/mpgdpr/gen"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// Validate the client's traffic as it happens. Against the real Mixpanel,
// leave out WithBaseURL: the document's three regional hosts are checked
// by default. Here a fake stands in for Mixpanel.
func ExampleNewTransport() {
	fake := mpgdprtest.NewServer()
	defer fake.Close()

	tr, err := contract.NewTransport(http.DefaultTransport, contract.Strict(), contract.WithBaseURL(fake.URL()))
	if err != nil {
		log.Fatal(err)
	}
	client, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(),
		mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil),
		mpgdpr.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := client.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"user-1"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.CancelDeletion(ctx, id); err != nil {
		log.Fatal(err)
	}

	// A request the document forbids is stopped before it is sent.
	raw, _ := gen.NewClientWithResponses(fake.URL(), gen.WithHTTPClient(&http.Client{Transport: tr}),
		gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+fake.OAuthToken())
			return nil
		}))
	_, err = raw.CreateDeletionWithResponse(ctx, &gen.CreateDeletionParams{Token: fake.ProjectToken()},
		gen.CreateDeletionRequest{DistinctIds: []string{"user-2"}, ComplianceType: "HIPAA"})
	var ve *contract.ViolationError
	if errors.As(err, &ve) {
		for _, v := range ve.Violations {
			fmt.Println(v.Kind, v.Op+":", v.Reason)
		}
	}
	fmt.Println(len(tr.Violations()), "violation(s);", len(fake.Requests()), "request(s) reached the server")
	// Output:
	// request createDeletion: request body has an error: doesn't match schema #/components/schemas/CreateDeletionRequest: Error at "/compliance_type": value is not one of the allowed values ["GDPR","CCPA"]
	// 1 violation(s); 2 request(s) reached the server
}
