package worker

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/webhook"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/privacykit/mpgdpr/worker/workertest"
	"github.com/riverqueue/river"
)

// testCallbackKey is the signing key of callback tests (32 bytes).
const testCallbackKey = "cb-key-0123456789abcdef0123456789"

// receiver is a loopback callback receiver: it records every notice and
// answers as answer says for the n-th (from 1).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	stray  int // requests to any other path (a redirect followed)
	answer func(n int, w http.ResponseWriter)
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hook" {
			rc.mu.Lock()
			rc.stray++
			rc.mu.Unlock()
			return
		}
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Header.Clone(), b})
		n := len(rc.got)
		rc.mu.Unlock()
		if rc.answer == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		rc.answer(n, w)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) notices() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// hostPort is the receiver's 127.0.0.1:port.
func (rc *receiver) hostPort() string { return strings.TrimPrefix(rc.srv.URL, "http://") }

// callbackSettings is the [callbacks] section of a test configuration, as
// a TOML inline table: the key in a file of its own, fast retries.
func callbackSettings(t testing.TB, allow []string, more string) string {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "callback.key")
	if err := os.WriteFile(keyFile, []byte(testCallbackKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := make([]string, len(allow))
	for i, a := range allow {
		q[i] = fmt.Sprintf("%q", a)
	}
	s := fmt.Sprintf(`{ key_file = %q, allow = [%s], timeout = "400ms", retry_min = "20ms", retry_max = "80ms"`, keyFile, strings.Join(q, ", "))
	if more != "" {
		s += ", " + more
	}
	return s + " }"
}

// newCallbackEnv is newDriverEnv with a [callbacks] section.
func newCallbackEnv(t testing.TB, d workertest.Driver, fakes map[string]*mpgdprtest.Server, callbacks string, opts ...Option) *testEnv {
	t.Helper()
	return newConfiguredEnv(t, d, fakes, []workertest.Option{workertest.With("callbacks", callbacks)}, opts...)
}

func oneFake(t testing.TB) map[string]*mpgdprtest.Server {
	us := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("secret-us"))
	t.Cleanup(us.Close)
	t.Cleanup(func() { us.AssertNoViolations(t) })
	return map[string]*mpgdprtest.Server{"us": us}
}

// cbStatus is the env's callbackStatus of ref.
func (e *testEnv) cbStatus(ref string) *CallbackStatus {
	e.t.Helper()
	var cs *CallbackStatus
	var err error
	if e.w != nil {
		cs, err = e.w.callbackStatus(context.Background(), e.q, ref)
	} else {
		cs, err = e.pw.callbackStatus(context.Background(), e.q, ref)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func (e *testEnv) idHasher() *evidence.IDHasher {
	if e.w != nil {
		return e.w.ids
	}
	return e.pw.ids
}

// events lists ref's events named like callback_*, as "event: detail".
func (e *testEnv) callbackEvents(ref string) []string {
	e.t.Helper()
	var out []string
	if err := collect(context.Background(), e.q, `SELECT event, detail FROM mpgdpr_event WHERE reference = ? AND event LIKE 'callback%' ORDER BY id`, []any{ref}, func(r rowScanner) error {
		var ev, d string
		if err := r.Scan(&ev, &d); err != nil {
			return err
		}
		out = append(out, ev+": "+d)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// A request with a callback URL that reaches done delivers one notice,
// signed, which webhook.Verify accepts; the metrics count it, and the
// record still verifies.
func TestCallbackDelivered(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		rc := newReceiver(t, nil)
		m := NewMetrics(nil)
		fakes := oneFake(t)
		e := newCallbackEnv(t, d, fakes, callbackSettings(t, []string{"http://" + rc.hostPort()}, ""), WithMetrics(m))
		ctx := context.Background()
		hook := rc.srv.URL + "/hook?token=receiver-secret-q"
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "CB-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"cb-user-1"}, Projects: []string{"us"}, CallbackURL: hook}); err != nil {
			t.Fatal(err)
		}
		if cs := e.cbStatus("CB-1"); cs == nil || cs.State != CallbackNone {
			t.Fatalf("before the end: %+v", cs)
		}
		e.start()
		waitFor(t, "the notice delivered", func() bool { return e.cbStatus("CB-1").State == CallbackDelivered })
		got := rc.notices()
		if len(got) != 1 {
			t.Fatalf("%d notices, want 1", len(got))
		}
		n := got[0]
		if err := webhook.Verify([]byte(testCallbackKey), n.header.Get(webhook.SignatureHeader), n.body, time.Minute, time.Now()); err != nil {
			t.Fatalf("signature: %v (header %q)", err, n.header.Get(webhook.SignatureHeader))
		}
		if ct := n.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var body notice
		if err := json.Unmarshal(n.body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Reference != "CB-1" || body.State != StateDone || body.Type != noticeEnded || body.Kind != "deletion" || body.ComplianceType != "GDPR" ||
			body.CompletedAt == nil || body.Due == "" || body.DeliveryID == "" || body.DeliveryID != n.header.Get(webhook.DeliveryHeader) {
			t.Errorf("notice %s", n.body)
		}
		if strings.Contains(string(n.body), "cb-user-1") {
			t.Error("the notice holds a distinct ID")
		}
		cs := e.cbStatus("CB-1")
		if cs.Attempts != 1 || cs.DeliveredAt == nil || cs.LastError != "" {
			t.Errorf("status %+v", cs)
		}
		evs := e.callbackEvents("CB-1")
		if len(evs) != 1 || !strings.HasPrefix(evs[0], workerdb.EventCallbackSent+": "+body.DeliveryID+" request.ended attempt 1: status 204") {
			t.Errorf("events %q", evs)
		}

		// The metrics, scraped over HTTP.
		scrape := scrapeMetrics(t, m)
		for _, want := range []string{
			`mpgdpr_callback_attempts_total{outcome="delivered"} 1`,
			`mpgdpr_requests{kind="deletion",state="done"} 1`,
			`mpgdpr_items{kind="deletion",project="us",state="done"} 1`,
			`mpgdpr_callbacks{state="delivered"} 1`,
			`mpgdpr_mixpanel_requests_total{code="200",operation="create_deletion",project="us"} 1`,
			`mpgdpr_open_requests_by_deadline{state="on_time"} 0`,
			`mpgdpr_open_tasks{project="us"} 0`,
			`mpgdpr_database_up 1`,
		} {
			if !strings.Contains(scrape, want+"\n") {
				t.Errorf("scrape has no %s", want)
			}
		}
		if !strings.Contains(scrape, `mpgdpr_mixpanel_requests_total{code="200",operation="check_deletion",project="us"}`) {
			t.Error("no check_deletion counted")
		}
		for _, secret := range []string{"CB-1", "cb-user-1", body.DeliveryID, "receiver-secret-q"} {
			if strings.Contains(scrape, secret) {
				t.Errorf("the scrape holds %q", secret)
			}
		}
		for _, ev := range evs {
			workertest.NoSecrets(t, "callback events", ev, testCallbackKey, "receiver-secret-q")
		}
		_ = e.svc.Stop(ctx)
		verified(t, e, e.idHasher())
	})
}

func scrapeMetrics(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// A receiver that takes the notice but answers too late, then answers 500,
// then redirects, then accepts: four attempts of one notice, each an
// event, each with the same delivery id and body; the redirect is not
// followed; neither the key nor the URL's query reaches an event, the log
// or a table.
func TestCallbackRetries(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		rc := newReceiver(t, func(n int, w http.ResponseWriter) {
			switch n {
			case 1:
				time.Sleep(time.Second) // past the 400ms timeout: accepted, answer lost
				w.WriteHeader(http.StatusOK)
			case 2:
				w.WriteHeader(http.StatusInternalServerError)
			case 3:
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(http.StatusFound)
			default:
				w.WriteHeader(http.StatusOK)
			}
		})
		var logs lockedBuffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		m := NewMetrics(nil)
		fakes := oneFake(t)
		e := newCallbackEnv(t, d, fakes, callbackSettings(t, []string{"http://" + rc.hostPort()}, ""), WithMetrics(m), WithLogger(logger),
			WithRiverConfig(func(c *river.Config) { testRiverConfig(c); c.Logger = logger }))
		ctx := context.Background()
		hook := rc.srv.URL + "/hook?token=receiver-secret-q"
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "CB-2", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"cb-user-2"}, Projects: []string{"us"}, CallbackURL: hook}); err != nil {
			t.Fatal(err)
		}
		e.start()
		waitFor(t, "the notice delivered", func() bool { return e.cbStatus("CB-2").State == CallbackDelivered })
		got := rc.notices()
		if len(got) != 4 {
			t.Fatalf("%d attempts reached the receiver, want 4", len(got))
		}
		id := got[0].header.Get(webhook.DeliveryHeader)
		for i, n := range got {
			if n.header.Get(webhook.DeliveryHeader) != id || string(n.body) != string(got[0].body) {
				t.Errorf("attempt %d: delivery %q body %s; first %q %s", i+1, n.header.Get(webhook.DeliveryHeader), n.body, id, got[0].body)
			}
			if err := webhook.Verify([]byte(testCallbackKey), n.header.Get(webhook.SignatureHeader), n.body, time.Minute, time.Now()); err != nil {
				t.Errorf("attempt %d: %v", i+1, err)
			}
		}
		rc.mu.Lock()
		stray := rc.stray
		rc.mu.Unlock()
		if stray != 0 {
			t.Errorf("the redirect was followed (%d requests elsewhere)", stray)
		}
		evs := e.callbackEvents("CB-2")
		want := []string{
			workerdb.EventCallbackFailed + ": " + id + " request.ended attempt 1: timeout",
			workerdb.EventCallbackFailed + ": " + id + " request.ended attempt 2: status 500",
			workerdb.EventCallbackFailed + ": " + id + " request.ended attempt 3: redirect not followed (status 302)",
			workerdb.EventCallbackSent + ": " + id + " request.ended attempt 4: status 200",
		}
		if !slices.Equal(evs, want) {
			t.Errorf("events\n%q\nwant\n%q", evs, want)
		}
		if cs := e.cbStatus("CB-2"); cs.Attempts != 4 || cs.State != CallbackDelivered {
			t.Errorf("status %+v", cs)
		}
		if s := scrapeMetrics(t, m); !strings.Contains(s, `mpgdpr_callback_attempts_total{outcome="failed"} 3`+"\n") {
			t.Errorf("failures not counted:\n%s", s)
		}
		_ = e.svc.Stop(ctx)
		blob := e.dumpTables(ctx) + logs.String()
		if !strings.Contains(blob, "status 500") || !strings.Contains(blob, "receiver-secret-q") {
			t.Fatal("the failures or the URL never reached the record: the test proves nothing")
		}
		workertest.NoSecrets(t, "the database or the log", blob, testCallbackKey)
		// The URL is kept in its request's row, and nowhere else.
		var rest strings.Builder
		for _, line := range strings.Split(blob, "\n") {
			if !strings.HasPrefix(line, "mpgdpr_request ") {
				rest.WriteString(line + "\n")
			}
		}
		workertest.NoSecrets(t, "the database (but mpgdpr_request) or the log", rest.String(), "receiver-secret-q")
		verified(t, e, e.idHasher())
	})
}

// A receiver that never accepts: the notice is given up after
// give_up_after, with an event, and is not attempted again.
func TestCallbackGivenUp(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		rc := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
		m := NewMetrics(nil)
		e := newCallbackEnv(t, d, oneFake(t), callbackSettings(t, []string{"http://" + rc.hostPort()}, `give_up_after = "1s"`), WithMetrics(m))
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "CB-3", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"cb-user-3"}, Projects: []string{"us"}, CallbackURL: rc.srv.URL + "/hook"}); err != nil {
			t.Fatal(err)
		}
		e.start()
		waitFor(t, "the notice given up", func() bool { return e.cbStatus("CB-3").State == CallbackGivenUp })
		cs := e.cbStatus("CB-3")
		if cs.Attempts < 1 || cs.LastError != "status 503" || cs.DeliveredAt != nil {
			t.Errorf("status %+v", cs)
		}
		evs := e.callbackEvents("CB-3")
		if len(evs) != cs.Attempts+1 || !strings.HasPrefix(evs[len(evs)-1], workerdb.EventCallbackGivenUp+": ") {
			t.Errorf("%d attempts, events %q", cs.Attempts, evs)
		}
		n := len(rc.notices())
		if n != cs.Attempts {
			t.Errorf("receiver saw %d attempts, status says %d", n, cs.Attempts)
		}
		time.Sleep(300 * time.Millisecond) // several retry intervals: none may come
		if len(rc.notices()) != n {
			t.Error("attempted again after giving up")
		}
		if s := scrapeMetrics(t, m); !strings.Contains(s, `mpgdpr_callback_attempts_total{outcome="given_up"} 1`+"\n") || !strings.Contains(s, `mpgdpr_callbacks{state="given_up"} 1`+"\n") {
			t.Errorf("given up not counted:\n%s", s)
		}
	})
}

// Callback URLs are checked at intake: nothing is stored for one refused.
func TestCallbackRefusedAtIntake(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		e := newCallbackEnv(t, d, oneFake(t), callbackSettings(t, []string{"hooks.example.com", "*.corp.example", "http://127.0.0.1:9000"}, ""))
		ctx := context.Background()
		for _, u := range []string{
			"https://evil.example.net/hook",       // not listed
			"http://hooks.example.com/hook",       // listed for https only
			"https://hooks.example.com:8443/hook", // another port
			"https://corp.example/hook",           // a wildcard covers names below only
			"https://10.0.0.1/hook",               // an IP never matches a name entry
			"http://127.0.0.1:9001/hook",          // another port
			"https://user:pw@hooks.example.com/",  // user info
		} {
			_, err := e.svc.Enqueue(ctx, Request{Reference: "CB-R", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"x"}, Projects: []string{"us"}, CallbackURL: u})
			var re *RequestError
			if !errors.Is(err, ErrInvalidRequest) || !errors.As(err, &re) || !strings.HasPrefix(re.Field, "callback") {
				t.Errorf("%s: %v", u, err)
			}
			if strings.Contains(fmt.Sprint(err), "pw@") {
				t.Errorf("%s: the error quotes the user info: %v", u, err)
			}
		}
		_, err := e.svc.Enqueue(ctx, Request{Reference: "CB-R", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"x"}, Projects: []string{"us"},
			CallbackURL: "https://hooks.example.com/hook", CallbackFormat: CallbackOpenDSR})
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("OpenDSR without its key: %v", err)
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_request`); n != 0 {
			t.Fatalf("%d requests stored", n)
		}
		for _, u := range []string{"https://hooks.example.com/hook?x=1", "https://a.corp.example/h", "https://a.b.corp.example:443/h", "http://127.0.0.1:9000/h", "https://127.0.0.1:9000/h"} {
			if err := e.cfg.checkCallback(u, CallbackMpgdpr); err != nil {
				t.Errorf("%s refused: %v", u, err)
			}
		}
	})
}

func TestCallbackNotConfigured(t *testing.T) {
	cfg, err := ParseConfig("[[project]]\nname = \"us\"\noauth_token_env = \"A\"\nproject_token_env = \"B\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.checkCallback("https://hooks.example.com/", ""); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("no [callbacks]: %v", err)
	}
	for _, bad := range []string{
		`[callbacks]` + "\nkey = \"" + testCallbackKey + "\"\n",
		"[callbacks]\nallow = [\"hooks.example.com\"]\n",
		"[callbacks]\nkey_env = \"K\"\nkey_file = \"k\"\n",
		"[callbacks]\nkey_env = \"K\"\nallow = [\"*.com\"]\n",
		"[callbacks]\nkey_env = \"K\"\nallow = [\"hooks.example.com/path\"]\n",
		"[callbacks]\nkey_env = \"K\"\nopendsr_key_file = \"k.pem\"\n",
	} {
		_, err := ParseConfig(bad + "[[project]]\nname = \"us\"\noauth_token_env = \"A\"\nproject_token_env = \"B\"\n")
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%q: %v", bad, err)
		}
		if strings.Contains(fmt.Sprint(err), testCallbackKey) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

// A listed name that resolves to a loopback address is refused when the
// connection is made, unless the address is listed too.
func TestCallbackDialChecksResolvedAddress(t *testing.T) {
	rc := newReceiver(t, nil)
	_, port, _ := strings.Cut(rc.hostPort(), ":")
	hook := "http://localhost:" + port + "/hook"
	post := func(allow ...string) error {
		cfg, err := ParseConfig(fmt.Sprintf("[callbacks]\nkey_env = \"K\"\nallow = [%q%s]\ntimeout = \"2s\"\n[[project]]\nname = \"us\"\noauth_token_env = \"A\"\nproject_token_env = \"B\"\n",
			allow[0], strings.Repeat(", \"127.0.0.1:"+port+"\"", len(allow)-1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.checkCallback(hook, ""); err != nil {
			t.Fatalf("intake: %v", err)
		}
		ctx := context.WithValue(context.Background(), schemeKey{}, "http")
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hook, strings.NewReader("{}"))
		resp, err := cfg.Callbacks.httpClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	err := post("http://localhost:" + port)
	if !errors.Is(err, errAddressRefused) {
		t.Fatalf("a name resolving to loopback: %v", err)
	}
	if c := errorClass(err); !strings.HasPrefix(c, "address not allowed") {
		t.Errorf("class %q", c)
	}
	if len(rc.notices()) != 0 {
		t.Fatal("the refused address was reached")
	}
	if err := post("http://localhost:"+port, "listed"); err != nil {
		t.Fatalf("with 127.0.0.1:%s listed: %v", port, err)
	}
	if len(rc.notices()) != 1 {
		t.Fatalf("%d notices", len(rc.notices()))
	}
}

func TestAllowEntries(t *testing.T) {
	c := CallbackConfig{KeyEnv: "K", Allow: []string{"hooks.example.com", "*.corp.example", "http://[::1]:8080", "10.1.2.3"}}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://hooks.example.com/x", true},
		{"https://HOOKS.example.com:443/x", true},
		{"https://hooks.example.com:444/x", false},
		{"https://x.hooks.example.com/x", false},
		{"https://a.corp.example/x", true},
		{"https://corp.example/x", false},
		{"https://acorp.example/x", false},
		{"http://[::1]:8080/x", true},
		{"https://[::1]:8080/x", true},
		{"http://[::1]:8081/x", false},
		{"https://10.1.2.3/x", true},
		{"http://10.1.2.3/x", false},
	} {
		u, _ := url.Parse(tc.url)
		if _, ok := c.allowed(u); ok != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.url, ok, tc.want)
		}
	}
	for _, tc := range []struct {
		addr, port string
		want       bool
	}{
		{"93.184.215.14", "443", true},
		{"127.0.0.1", "443", false},
		{"10.1.2.3", "443", true}, // listed, default port
		{"10.1.2.3", "8443", false},
		{"10.1.2.4", "443", false},
		{"192.168.1.1", "443", false},
		{"169.254.169.254", "80", false},
		{"100.64.0.1", "443", false},
		{"0.0.0.0", "443", false},
		{"::1", "8080", true},
		{"::ffff:127.0.0.1", "443", false},
		{"fe80::1", "443", false},
		{"fd00::1", "443", false},
		{"224.0.0.1", "443", false},
		{"2606:4700::1", "443", true},
	} {
		a, err := netipParse(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.dialAllowed(a, tc.port, "https"); got != tc.want {
			t.Errorf("%s:%s: %v, want %v", tc.addr, tc.port, got, tc.want)
		}
	}
}

func TestCallbackBackoff(t *testing.T) {
	c := CallbackConfig{KeyEnv: "K"}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for a := 1; a <= 12; a++ {
		got = append(got, c.backoff(a))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, 64 * time.Minute, 128 * time.Minute, 256 * time.Minute, 6 * time.Hour, 6 * time.Hour}
	if !slices.Equal(got, want) {
		t.Errorf("backoff %v", got)
	}
	if c.backoff(10000) != 6*time.Hour {
		t.Error("no cap at a high attempt")
	}
}

// openDSRExample is the status callback body of OpenDSR 1.0's example
// (section 8.7): the keys a notice must have, and their types.
const openDSRExample = `{
    "controller_id":"example_controller_id",
    "expected_completion_time":"2018-11-01T15:00:01Z",
    "status_callback_url":"https://examplecontroller.com/opendsr_callbacks",
    "subject_request_id":"a7551968-d5d6-44b2-9831-815ac9017798",
    "request_status":"pending",
    "results_url":"https://exampleprocessor.com/secure/d188d4ba-12db-48a0-898c-cd0f8ba7b345",
    "results_count":340
}`

// A request asking for OpenDSR notices gets OpenDSR's status callback,
// signed with the processor's RSA key, verifiable with the certificate
// the worker serves.
func TestCallbackOpenDSR(t *testing.T) {
	rc := newReceiver(t, nil)
	keyFile, certFile := workertest.OpenDSRFiles(t)
	more := fmt.Sprintf(`opendsr_key_file = %q, opendsr_certificate_file = %q, opendsr_processor_domain = "opendsr.processor.test", opendsr_controller_id = "acme"`, keyFile, certFile)
	e := newCallbackEnv(t, workertest.SQLite, oneFake(t), callbackSettings(t, []string{"http://" + rc.hostPort()}, more))
	ctx := context.Background()
	const ref = "a7551968-d5d6-44b2-9831-815ac9017798"
	hook := rc.srv.URL + "/hook"
	if _, err := e.svc.Enqueue(ctx, Request{Reference: ref, Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"cb-user-4"}, Projects: []string{"us"},
		CallbackURL: hook, CallbackFormat: CallbackOpenDSR}); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitFor(t, "the notice delivered", func() bool { return e.cbStatus(ref).State == CallbackDelivered })
	got := rc.notices()
	if len(got) != 1 {
		t.Fatalf("%d notices", len(got))
	}
	n := got[0]
	certPEM, cert, err := e.cfg.OpenDSRCertificate()
	if err != nil || !strings.Contains(string(certPEM), "BEGIN CERTIFICATE") {
		t.Fatalf("certificate: %v", err)
	}
	if err := webhook.VerifyOpenDSR(cert.PublicKey.(*rsa.PublicKey), n.header.Get(webhook.OpenDSRSignatureHeader), n.body); err != nil {
		t.Fatalf("OpenDSR signature: %v", err)
	}
	if d := n.header.Get(webhook.OpenDSRDomainHeader); d != "opendsr.processor.test" {
		t.Errorf("domain header %q", d)
	}
	var body, example map[string]any
	if err := json.Unmarshal(n.body, &body); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(openDSRExample), &example); err != nil {
		t.Fatal(err)
	}
	for k, v := range example {
		if k == "results_url" || k == "results_count" { // optional: a deletion has no results
			continue
		}
		if fmt.Sprintf("%T", body[k]) != fmt.Sprintf("%T", v) {
			t.Errorf("%s: %v (%T), the spec's example has %T", k, body[k], body[k], v)
		}
	}
	if body["controller_id"] != "acme" || body["request_status"] != "completed" || body["subject_request_id"] != ref || body["status_callback_url"] != hook || body["api_version"] != "1.0" {
		t.Errorf("body %s", n.body)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(body["expected_completion_time"])); err != nil {
		t.Errorf("expected_completion_time: %v", err)
	}
	if n.header.Get(webhook.SignatureHeader) != "" {
		t.Error("an OpenDSR notice also carries the HMAC signature")
	}
}

func TestOpenDSRStatus(t *testing.T) {
	for state, want := range map[string]string{RequestReceived: "pending", RequestActive: "in_progress", StateDone: "completed", StateCancelled: "cancelled", StateFailed: "in_progress", StateUnknown: "in_progress"} {
		if got := openDSRStatus(state); got != want {
			t.Errorf("%s: %s, want %s", state, got, want)
		}
	}
}

func netipParse(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

// With [callbacks] progress, each item's change is a notice too, before
// the request's end; without it (the other tests), the end alone.
func TestCallbackProgress(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newCallbackEnv(t, workertest.SQLite, twoFakes(t), callbackSettings(t, []string{"http://" + rc.hostPort()}, "progress = true"))
	ctx := context.Background()
	if _, err := e.svc.Enqueue(ctx, Request{Reference: "CB-5", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"cb-user-5"}, AllProjects: true, CallbackURL: rc.srv.URL + "/hook"}); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitFor(t, "every notice delivered", func() bool {
		n := e.count(`SELECT COUNT(*) FROM mpgdpr_callback WHERE reference = 'CB-5' AND type = ?`, noticeEnded)
		return n == 1 && e.count(`SELECT COUNT(*) FROM mpgdpr_callback WHERE status <> ?`, CallbackDelivered) == 0
	})
	var types []string
	doneItems := map[string]bool{}
	for _, n := range rc.notices() {
		var b notice
		if err := json.Unmarshal(n.body, &b); err != nil {
			t.Fatal(err)
		}
		types = append(types, b.Type)
		if b.ItemState == StateDone { // the last item's is in the request's notice
			doneItems[b.Project] = true
		}
	}
	// Deliveries run in parallel: order is not promised, the set is.
	if len(types) < 3 || slices.Index(types, noticeEnded) < 0 || len(doneItems) != 2 {
		t.Errorf("notices %v; items done %v", types, doneItems)
	}
	if want := e.count(`SELECT COUNT(*) FROM mpgdpr_callback`); len(types) != want {
		t.Errorf("%d notices received, %d due", len(types), want)
	}
}

// End to end: a listed name that resolves to loopback is never reached;
// each attempt is recorded as refused.
func TestCallbackRefusedAddressRecorded(t *testing.T) {
	rc := newReceiver(t, nil)
	_, port, _ := strings.Cut(rc.hostPort(), ":")
	e := newCallbackEnv(t, workertest.SQLite, oneFake(t), callbackSettings(t, []string{"http://localhost:" + port}, ""))
	ctx := context.Background()
	if _, err := e.svc.Enqueue(ctx, Request{Reference: "CB-6", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"cb-user-6"}, Projects: []string{"us"}, CallbackURL: "http://localhost:" + port + "/hook"}); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitFor(t, "two refused attempts", func() bool { return e.cbStatus("CB-6").Attempts >= 2 })
	cs := e.cbStatus("CB-6")
	if cs.State != CallbackFailing || !strings.HasPrefix(cs.LastError, "address not allowed") {
		t.Errorf("status %+v", cs)
	}
	if evs := e.callbackEvents("CB-6"); len(evs) < 2 || !strings.Contains(evs[0], "attempt 1: address not allowed") {
		t.Errorf("events %q", evs)
	}
	if n := len(rc.notices()); n != 0 {
		t.Errorf("the receiver was reached %d times", n)
	}
}

// The signing key is read when a delivering worker starts (a missing one
// stops it, named, never quoted); an intake-only worker never reads it.
func TestCallbackKeyReadByDeliveringWorkersOnly(t *testing.T) {
	dir := t.TempDir()
	fakes := oneFake(t)
	cfg, err := LoadConfig(workertest.Config(t, dir, fakes, workertest.With("callbacks", `{ key_env = "MPGDPR_TEST_NO_SUCH_KEY_VAR", allow = ["hooks.example.com"] }`)))
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenSQLiteFile(filepath.Join(dir, "worker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	_, err = NewSQLite(ctx, db, cfg, testOptions()...)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "MPGDPR_TEST_NO_SUCH_KEY_VAR") {
		t.Fatalf("a delivering worker without its key: %v", err)
	}
	w, err := NewSQLite(ctx, db, cfg, testOptions(WithIntakeOnly())...)
	if err != nil {
		t.Fatalf("intake-only: %v", err)
	}
	if w.cb != nil {
		t.Error("an intake-only worker holds the signing key")
	}
	t.Setenv("MPGDPR_TEST_NO_SUCH_KEY_VAR", "k3y-v4lue")
	if _, err := NewSQLite(ctx, db, cfg, testOptions()...); err == nil || strings.Contains(err.Error(), "k3y-v4lue") || !strings.Contains(err.Error(), "shorter than 32") {
		t.Errorf("a short key: %v", err)
	}
}
