package mpgdpr

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestVersionIsSemver(t *testing.T) {
	// Semantic versioning 2.0.0, without the tag's "v".
	re := regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	if !re.MatchString(Version) {
		t.Fatalf("Version %q is not a semantic version", Version)
	}
}

func TestDefaultUserAgentNamesVersion(t *testing.T) {
	uas := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uas <- r.Header.Get("User-Agent")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok","results":{"status":"PENDING"}}`))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{nil, "mpgdpr-go/" + Version},
		{[]Option{WithUserAgent("my-tool/2")}, "my-tool/2"},
	} {
		c, err := New(testOAuth, testProject, append([]Option{WithBaseURL(srv.URL), WithRateLimiter(nil)}, tc.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CheckDeletion(context.Background(), "t1"); err != nil {
			t.Fatal(err)
		}
		if got := <-uas; got != tc.want {
			t.Errorf("User-Agent %q, want %q", got, tc.want)
		}
	}
}
