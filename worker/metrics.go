package worker

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Metrics exposes the worker in Prometheus's format (docs/METRICS.md), on
// a registry of its own (never the global one). Counters count what this
// process did: Mixpanel calls (with WithMetrics) and callback attempts.
// Gauges are read from the database at scrape time, within a timeout, so
// they describe every worker process sharing the database. No label holds
// a reference, a distinct ID, a task id or a URL: only project, kind,
// state, operation and code.
type Metrics struct {
	reg     *prometheus.Registry
	timeout time.Duration

	mu  sync.Mutex
	src metricsSource

	calls       *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	callbacks   *prometheus.CounterVec
}

// MetricsOption configures NewMetrics.
type MetricsOption func(*Metrics)

// WithScrapeTimeout bounds the database queries of one scrape (default
// 5s); a scrape that runs out reports mpgdpr_database_up 0.
func WithScrapeTimeout(d time.Duration) MetricsOption {
	return func(m *Metrics) { m.timeout = d }
}

// metricsSource is what the collector reads: a Worker of either driver.
type metricsSource interface {
	metricsSnapshot(ctx context.Context) (*metricsSnapshot, error)
}

// NewMetrics makes the metrics of svc (a Worker, or what Open returns). svc
// may be nil: then the worker made with WithMetrics(m) becomes the source.
func NewMetrics(svc Service, opts ...MetricsOption) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), timeout: 5 * time.Second}
	for _, o := range opts {
		o(m)
	}
	if s, ok := svc.(metricsSource); ok {
		m.src = s
	}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mpgdpr_mixpanel_requests_total",
		Help: "Requests this process sent to Mixpanel's GDPR API, by project, operation and HTTP status code (\"error\": no answer).",
	}, []string{"project", "operation", "code"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mpgdpr_mixpanel_rate_limited_total",
		Help: "Requests Mixpanel answered 429 Too Many Requests, by project and operation.",
	}, []string{"project", "operation"})
	m.callbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mpgdpr_callback_attempts_total",
		Help: "Callback delivery attempts this process made, by outcome: delivered, failed (will be retried) or given_up.",
	}, []string{"outcome"})
	for _, o := range []string{"delivered", "failed", "given_up"} {
		m.callbacks.WithLabelValues(o)
	}
	m.reg.MustRegister(m.calls, m.rateLimited, m.callbacks, dbCollector{m})
	return m
}

// Handler serves the metrics (promhttp, on the metrics' own registry).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the metrics' registry, to add collectors of your own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WithMetrics counts the worker's Mixpanel calls and callback attempts in
// m, and makes the worker m's source of gauges if m has none.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// attach makes w m's source unless it has one.
func (m *Metrics) attach(s metricsSource) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.src == nil {
		m.src = s
	}
}

func (m *Metrics) source() metricsSource {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.src
}

// callbackAttempt counts one delivery attempt.
func (m *Metrics) callbackAttempt(status string, givenUp bool) {
	if m == nil {
		return
	}
	switch {
	case status == CallbackDelivered:
		m.callbacks.WithLabelValues("delivered").Inc()
	case givenUp:
		m.callbacks.WithLabelValues("failed").Inc()
		m.callbacks.WithLabelValues("given_up").Inc()
	default:
		m.callbacks.WithLabelValues("failed").Inc()
	}
}

// httpClient is the client project's Mixpanel calls go through: hc (nil:
// the library's default, a 60-second timeout), its transport counted in m.
// Without m, hc unchanged.
func (m *Metrics) httpClient(hc *http.Client, project string) *http.Client {
	if m == nil {
		return hc
	}
	var c http.Client
	if hc != nil {
		c = *hc
	} else {
		c.Timeout = 60 * time.Second
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &countingTransport{base: base, m: m, project: project}
	return &c
}

// countingTransport counts each request by operation and status.
type countingTransport struct {
	base    http.RoundTripper
	m       *Metrics
	project string
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := mixpanelOperation(req)
	resp, err := t.base.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			t.m.rateLimited.WithLabelValues(t.project, op).Inc()
		}
	}
	t.m.calls.WithLabelValues(t.project, op, code).Inc()
	return resp, err
}

// mixpanelOperation names a call from its method and path (never the
// task id in it).
func mixpanelOperation(req *http.Request) string {
	p := strings.TrimSuffix(req.URL.Path, "/")
	deletion := strings.Contains(p, "/data-deletions/")
	retrieval := strings.Contains(p, "/data-retrievals/")
	create := strings.HasSuffix(p, "/v3.0")
	switch {
	case deletion && req.Method == http.MethodPost:
		return "create_deletion"
	case deletion && req.Method == http.MethodDelete:
		return "cancel_deletion"
	case deletion && !create:
		return "check_deletion"
	case retrieval && req.Method == http.MethodPost:
		return "create_retrieval"
	case retrieval && !create:
		return "check_retrieval"
	case req.Method == http.MethodGet && !deletion && !retrieval:
		return "download_export"
	}
	return "other"
}

// metricsSnapshot is what one scrape reads from the database.
type metricsSnapshot struct {
	requests  map[[2]string]int // (state, kind)
	items     map[[3]string]int // (project, kind, state)
	openTasks map[string]int
	budget    map[string]float64
	deadlines map[string]int    // open requests by deadline state
	callbacks map[string]int    // notices by delivery status
	jobs      map[[2]string]int // River jobs (kind, state), live states only
}

// dbCollector reads the gauges at scrape time.
type dbCollector struct{ m *Metrics }

var (
	descUp        = prometheus.NewDesc("mpgdpr_database_up", "1 if the last scrape could read the worker's database, else 0.", nil, nil)
	descRequests  = prometheus.NewDesc("mpgdpr_requests", "Requests by state and kind.", []string{"state", "kind"}, nil)
	descItems     = prometheus.NewDesc("mpgdpr_items", "Items (a request in one project) by project, kind and state.", []string{"project", "kind", "state"}, nil)
	descOpenTasks = prometheus.NewDesc("mpgdpr_open_tasks", "Mixpanel tasks followed and not yet ended, by project.", []string{"project"}, nil)
	descBudget    = prometheus.NewDesc("mpgdpr_budget_use_ratio", "Creates and polls sent in the last minute, across workers, over the project's budget (rate × 60).", []string{"project"}, nil)
	descDeadlines = prometheus.NewDesc("mpgdpr_open_requests_by_deadline", "Requests not yet ended, by statutory deadline state: on_time, at_risk, overdue.", []string{"state"}, nil)
	descCallbacks = prometheus.NewDesc("mpgdpr_callbacks", "Callback notices by delivery state: pending, delivered, failing, given_up.", []string{"state"}, nil)
	descJobs      = prometheus.NewDesc("mpgdpr_river_jobs", "River jobs not yet finished, by kind and state (queue depth).", []string{"kind", "state"}, nil)
)

func (c dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRequests, descItems, descOpenTasks, descBudget, descDeadlines, descCallbacks, descJobs} {
		ch <- d
	}
}

func (c dbCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.source()
	if src == nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.m.timeout)
	defer cancel()
	s, err := src.metricsSnapshot(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for k, n := range s.requests {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	for k, n := range s.items {
		ch <- prometheus.MustNewConstMetric(descItems, prometheus.GaugeValue, float64(n), k[0], k[1], k[2])
	}
	for p, n := range s.openTasks {
		ch <- prometheus.MustNewConstMetric(descOpenTasks, prometheus.GaugeValue, float64(n), p)
	}
	for p, r := range s.budget {
		ch <- prometheus.MustNewConstMetric(descBudget, prometheus.GaugeValue, r, p)
	}
	for st, n := range s.deadlines {
		ch <- prometheus.MustNewConstMetric(descDeadlines, prometheus.GaugeValue, float64(n), st)
	}
	for st, n := range s.callbacks {
		ch <- prometheus.MustNewConstMetric(descCallbacks, prometheus.GaugeValue, float64(n), st)
	}
	for k, n := range s.jobs {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// metricsSnapshot reads the gauges. Every configured project, state and
// kind is present, at 0 when nothing is there, so that series do not
// vanish.
func (w *Worker[TTx]) metricsSnapshot(ctx context.Context) (*metricsSnapshot, error) {
	s := &metricsSnapshot{
		requests: map[[2]string]int{}, items: map[[3]string]int{}, openTasks: map[string]int{},
		budget: map[string]float64{}, deadlines: map[string]int{}, callbacks: map[string]int{}, jobs: map[[2]string]int{},
	}
	kinds := []string{string(Deletion), string(Retrieval)}
	itemStates := []string{StateQueued, StateBatched, StateFiled, StateOpen, StateDone, StateFailed, StateUnknown, StateCancelled}
	for _, k := range kinds {
		for _, st := range RequestStates {
			s.requests[[2]string{st, k}] = 0
		}
		for _, p := range w.cfg.ProjectNames() {
			for _, st := range itemStates {
				s.items[[3]string{p, k, st}] = 0
			}
		}
	}
	for _, st := range []evidence.State{evidence.OnTime, evidence.AtRisk, evidence.Overdue} {
		s.deadlines[string(st)] = 0
	}
	for _, st := range []string{CallbackPending, CallbackDelivered, CallbackFailing, CallbackGivenUp} {
		s.callbacks[st] = 0
	}
	if err := collect(ctx, w.db, `SELECT state, kind, COUNT(*) FROM mpgdpr_request GROUP BY state, kind`, nil, func(r rowScanner) error {
		var st, k string
		var n int
		if err := r.Scan(&st, &k, &n); err != nil {
			return err
		}
		s.requests[[2]string{st, k}] = n
		return nil
	}); err != nil {
		return nil, err
	}
	if err := collect(ctx, w.db, `SELECT project, kind, state, COUNT(*) FROM mpgdpr_item GROUP BY project, kind, state`, nil, func(r rowScanner) error {
		var p, k, st string
		var n int
		if err := r.Scan(&p, &k, &st, &n); err != nil {
			return err
		}
		s.items[[3]string{p, k, st}] = n
		return nil
	}); err != nil {
		return nil, err
	}
	since := workerdb.FormatTime(time.Now().Add(-time.Minute))
	for _, name := range w.cfg.ProjectNames() {
		p, _ := w.cfg.Project(name)
		var open, creates, polls int
		if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_task WHERE project = ? AND done_at = ''`, name).Scan(&open); err != nil {
			return nil, err
		}
		if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_create c JOIN mpgdpr_batch b ON b.id = c.batch_id WHERE b.project = ? AND c.sent_at >= ?`, name, since).Scan(&creates); err != nil {
			return nil, err
		}
		if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_poll WHERE project = ? AND at >= ?`, name, since).Scan(&polls); err != nil {
			return nil, err
		}
		s.openTasks[name] = open
		if p.Rate > 0 {
			s.budget[name] = float64(creates+polls) / (p.Rate * 60)
		}
	}
	now := time.Now()
	if err := collect(ctx, w.db, `SELECT compliance_type, received_at, extension_reason, extension_notice_at FROM mpgdpr_request WHERE state IN (?, ?)`,
		[]any{RequestReceived, RequestActive}, func(r rowScanner) error {
			var ct, received, reason, notice string
			if err := r.Scan(&ct, &received, &reason, &notice); err != nil {
				return err
			}
			var ext *Extension
			if reason != "" {
				ext = &Extension{Reason: reason, NoticeAt: workerdb.ParseTime(notice)}
			}
			if st := requestDeadline(ct, workerdb.ParseTime(received), ext, time.Time{}, now).State; st != "" {
				s.deadlines[string(st)]++
			}
			return nil
		}); err != nil {
		return nil, err
	}
	if err := collect(ctx, w.db, `SELECT status, COUNT(*) FROM mpgdpr_callback GROUP BY status`, nil, func(r rowScanner) error {
		var st string
		var n int
		if err := r.Scan(&st, &n); err != nil {
			return err
		}
		s.callbacks[st] = n
		return nil
	}); err != nil {
		return nil, err
	}
	if err := collect(ctx, w.db, `SELECT kind, state, COUNT(*) FROM river_job WHERE kind LIKE 'mpgdpr_%' AND state IN ('available', 'pending', 'running', 'retryable', 'scheduled') GROUP BY kind, state`, nil, func(r rowScanner) error {
		var k, st string
		var n int
		if err := r.Scan(&k, &st, &n); err != nil {
			return err
		}
		s.jobs[[2]string{k, st}] = n
		return nil
	}); err != nil {
		return nil, err
	}
	return s, nil
}
