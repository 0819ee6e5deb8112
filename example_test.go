package mpgdpr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/privacykit/mpgdpr"
)

// exampleServer stands in for Mixpanel: examples must run without an account.
func exampleServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost:
			_, _ = io.WriteString(w, `{"status":"ok","results":{"task_id":"1584"}}`)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = io.WriteString(w, `{"status":"error","error":"task has started"}`)
		default:
			_, _ = io.WriteString(w, `{"status":"ok","results":{"status":"SUCCESS","result":"https://storage.example.com/export.zip","distinct_ids":["user-1"]}}`)
		}
	}))
}

func ExampleNew() {
	// A project with EU data residency. The tokens come from your secret store.
	c, err := mpgdpr.New("oauth-token", "project-token", mpgdpr.WithRegion(mpgdpr.RegionEU))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.BaseURL())
	// Output: https://eu.mixpanel.com/api/app
}

func ExampleClient_CreateDeletion() {
	srv := exampleServer()
	defer srv.Close()
	c, err := mpgdpr.New("oauth-token", "project-token", mpgdpr.WithBaseURL(srv.URL+"/api/app"))
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.CreateDeletion(context.Background(), mpgdpr.DeletionRequest{
		DistinctIDs:    []string{"user-1", "user-2"},
		ComplianceType: mpgdpr.GDPR,
	})
	if errors.Is(err, mpgdpr.ErrOutcomeUnknown) {
		log.Fatal("the deletion may have been filed: check before resubmitting: ", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deletion task", id)
	// Output: deletion task 1584
}

func ExampleClient_CheckRetrieval() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := mpgdpr.New("oauth-token", "project-token", mpgdpr.WithBaseURL(srv.URL+"/api/app"))
	ctx := context.Background()
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{
		DistinctIDs:    []string{"user-1"},
		ComplianceType: mpgdpr.CCPA,
		DisclosureType: mpgdpr.DisclosureData,
	})
	if err != nil {
		log.Fatal(err)
	}
	task, err := c.CheckRetrieval(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(task.Status, task.Status.Terminal(), task.DownloadURL)
	// Output: SUCCESS true https://storage.example.com/export.zip
}

func ExampleError() {
	srv := exampleServer()
	defer srv.Close()
	c, _ := mpgdpr.New("oauth-token", "project-token", mpgdpr.WithBaseURL(srv.URL+"/api/app"))
	err := c.CancelDeletion(context.Background(), "1584")
	var apiErr *mpgdpr.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Message)
	}
	fmt.Println(errors.Is(err, mpgdpr.ErrCannotCancel))
	// Output:
	// 405 task has started
	// true
}
