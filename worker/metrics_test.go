package worker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMixpanelOperation(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/api/app/data-deletions/v3.0/", "create_deletion"},
		{"GET", "/api/app/data-deletions/v3.0/3f1b0c", "check_deletion"},
		{"DELETE", "/api/app/data-deletions/v3.0/3f1b0c", "cancel_deletion"},
		{"POST", "/api/app/data-retrievals/v3.0", "create_retrieval"},
		{"GET", "/api/app/data-retrievals/v3.0/3f1b0c", "check_retrieval"},
		{"GET", "/exports/3f1b0c.zip", "download_export"},
		{"PUT", "/elsewhere", "other"},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		if got := mixpanelOperation(r); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.path, got, c.want)
		}
	}
}

// The counting transport counts by project, operation and code, 429s
// apart, and wraps the given client's transport.
func TestMetricsCountCalls(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	m := NewMetrics(nil)
	hc := m.httpClient(&http.Client{}, "web")
	for _, req := range []struct{ method, path string }{{"POST", "/api/app/data-deletions/v3.0/"}, {"GET", "/api/app/data-deletions/v3.0/t1"}, {"GET", "/api/app/data-deletions/v3.0/t2"}} {
		r, _ := http.NewRequest(req.method, srv.URL+req.path, nil)
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := testutil.ToFloat64(m.calls.WithLabelValues("web", "check_deletion", "200")); n != 2 {
		t.Errorf("check_deletion 200: %v", n)
	}
	if n := testutil.ToFloat64(m.rateLimited.WithLabelValues("web", "create_deletion")); n != 1 {
		t.Errorf("429s: %v", n)
	}
	// Without a source, the database gauges say so.
	if err := testutil.CollectAndCompare(dbCollector{m}, strings.NewReader("# HELP mpgdpr_database_up 1 if the last scrape could read the worker's database, else 0.\n# TYPE mpgdpr_database_up gauge\nmpgdpr_database_up 0\n"), "mpgdpr_database_up"); err != nil {
		t.Error(err)
	}
	if (*Metrics)(nil).httpClient(nil, "web") != nil {
		t.Error("no metrics changed the client")
	}
}
