package mpgdpr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
)

// Credentials of realistic shape. (Words such as "project" would also occur
// in the answers, e.g. in "project_id", and the wrapper would spend time
// redacting them.)
const (
	benchOAuth   = "Zm9vYmFyLW9hdXRoLXRva2VuLWZvci1iZW5jaG1hcmtzLTAwMDAwMDAx"
	benchProject = "3f9c2a1b7d4e6f8091a2b3c4d5e6f708"
)

// benchHandler answers like Mixpanel, with bodies of realistic size.
func benchHandler() http.Handler {
	created := []byte(`{"status":"ok","results":{"task_id":"2a6f5b1c-0000-4000-8000-000000000001"}}`)
	status := []byte(`{"status":"ok","results":{"tracking_id":"2a6f5b1c","status":"PENDING","requesting_user":"dpo@example.com","compliance_type":"GDPR","project_id":1978118,"date_requested":"2020-03-09T22:28:55.078315","distinct_ids":["user-1","user-2","user-3"]}}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			_, _ = w.Write(created)
			return
		}
		_, _ = w.Write(status)
	})
}

// rawCreate is the floor: what a careful hand-written call does.
func rawCreate(ctx context.Context, hc *http.Client, base, oauth, project string, ids []string) (string, error) {
	body, err := json.Marshal(map[string]any{"distinct_ids": ids, "compliance_type": "GDPR"})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/data-deletions/v3.0?token="+url.QueryEscape(project), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+oauth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var out struct {
		Results struct {
			TaskID string `json:"task_id"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	return out.Results.TaskID, nil
}

func rawCheck(ctx context.Context, hc *http.Client, base, oauth, project, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/data-deletions/v3.0/"+url.PathEscape(id)+"?token="+url.QueryEscape(project), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+oauth)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	// The same fields the wrapper returns, with the same date parsing.
	var out struct {
		Results struct {
			TrackingID     string   `json:"tracking_id"`
			Status         string   `json:"status"`
			RequestingUser string   `json:"requesting_user"`
			ComplianceType string   `json:"compliance_type"`
			ProjectID      int64    `json:"project_id"`
			DateRequested  string   `json:"date_requested"`
			DistinctIDs    []string `json:"distinct_ids"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if _, err := time.Parse("2006-01-02T15:04:05.999999999", out.Results.DateRequested); err != nil {
		return "", err
	}
	return out.Results.Status, nil
}

// BenchmarkCall compares each wrapper call with the raw floor on the same
// loopback handler; `make bench` reports the ratio.
func BenchmarkCall(b *testing.B) {
	srv := httptest.NewServer(benchHandler())
	defer srv.Close()
	base := srv.URL + "/api/app"
	hc := srv.Client()
	c, err := mpgdpr.New(benchOAuth, benchProject, mpgdpr.WithBaseURL(base), mpgdpr.WithHTTPClient(hc), mpgdpr.WithRateLimiter(nil))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := []string{"user-1", "user-2", "user-3"}
	b.Run("CreateDeletion/wrapper", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: ids, ComplianceType: mpgdpr.GDPR}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CreateDeletion/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rawCreate(ctx, hc, base, benchOAuth, benchProject, ids); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckDeletion/wrapper", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.CheckDeletion(ctx, "2a6f5b1c"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckDeletion/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rawCheck(ctx, hc, base, benchOAuth, benchProject, "2a6f5b1c"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
