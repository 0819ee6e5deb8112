package mpgdpr

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// TestVerbatimDistinctIDs: an ID holding a tab, a CR or a zero-width space
// is refused by default and, with WithVerbatimDistinctIDs, sent byte for
// byte; blank, non-UTF-8 and duplicate IDs are refused either way. Before
// the option, such an ID could never be sent.
func TestVerbatimDistinctIDs(t *testing.T) {
	odd := []string{"tab\there", "crlf\r", "zero\u200bwidth", "\x01ctl"}
	for _, id := range odd {
		if err := ValidateDistinctID(id); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ValidateDistinctID(%q) = %v", id, err)
		}
		if err := ValidateVerbatimDistinctID(id); err != nil {
			t.Errorf("ValidateVerbatimDistinctID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", " \t", "\r\n", "bad\xff"} {
		if err := ValidateVerbatimDistinctID(id); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ValidateVerbatimDistinctID(%q) = %v, want a refusal", id, err)
		}
	}

	srv := newBatchServer(t, accept)
	ctx := context.Background()
	strict := srv.client(t)
	if _, err := strict.CreateDeletion(ctx, DeletionRequest{DistinctIDs: odd[:1], ComplianceType: GDPR}); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("default client: %v", err)
	}
	if res, err := strict.DeleteAll(ctx, odd, GDPR); !errors.Is(err, ErrInvalidInput) || len(res.Unsent) != len(odd) {
		t.Fatalf("default client, batch: %v", err)
	}
	if n := len(srv.sent()); n != 0 {
		t.Fatalf("%d requests sent by refused calls", n)
	}

	c := srv.client(t, WithVerbatimDistinctIDs())
	if _, err := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: odd, ComplianceType: GDPR}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RetrieveAll(ctx, odd, GDPR, ""); err != nil {
		t.Fatal(err)
	}
	sent := srv.sent()
	if len(sent) != 2 || !slices.Equal(sent[0], odd) || !slices.Equal(sent[1], odd) {
		t.Fatalf("sent %q, want %q twice", sent, odd)
	}
	// Byte for byte on the wire too: JSON escapes the controls, and
	// decoding the body gives the same bytes back.
	var body struct {
		IDs []string `json:"distinct_ids"`
	}
	if err := json.Unmarshal(srv.requests()[0].Body, &body); err != nil || !slices.Equal(body.IDs, odd) {
		t.Fatalf("body %s", srv.requests()[0].Body)
	}
	for _, bad := range [][]string{{"ok", " \t"}, {"ok", "bad\xff"}, {"tab\there", "tab\there"}} {
		if _, err := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: bad, ComplianceType: GDPR}); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("verbatim client, %q: %v", bad, err)
		}
	}
	if res, err := c.DeleteAll(ctx, []string{"ok", "\t"}, GDPR); !errors.Is(err, ErrInvalidInput) || len(res.Unsent) != 2 {
		t.Errorf("verbatim client, batch with a blank ID: %v", err)
	}
	if n := len(srv.sent()); n != 2 {
		t.Errorf("%d creates, want 2: a refused call sent one", n)
	}
}
