package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/api"
)

// envAPIKeys holds API keys in the key file's format (docs/API.md), for
// deployments that pass secrets through the environment.
const envAPIKeys = "MPGDPR_API_KEYS"

const serveLong = `Serve the worker's HTTP API (docs/API.md; the OpenAPI document is at
GET /openapi.yaml): enqueue, follow, list and cancel requests, download
retrieval exports, and OpenDSR. This process is intake-only: it reads no
Mixpanel secret and files nothing; run 'mpgdpr worker' beside it (on the
same database) to do the work, or 'mpgdpr worker --listen' for both in one.

API keys come from --api-keys FILE (repeatable) and $MPGDPR_API_KEYS, never
from the config file: one key a line, "name scopes secret", scopes a comma
list of file, read and export, secrets of 32 characters or more, # starts
a comment. Clients send "Authorization: Bearer <secret>".

TLS with --tls-cert and --tls-key; without them, only a loopback --listen
address is served, unless --allow-plain-http (behind a TLS proxy). The first
line of stdout is the API's base URL (--listen 127.0.0.1:0 picks a port).
SIGINT or SIGTERM stops it, requests in flight get --api-grace.
`

// listenFlags are serve's and worker's API flags.
type listenFlags struct {
	listen          string
	tlsCert, tlsKey string
	apiKeys         []string
	allowPlainHTTP  bool
	openMetrics     bool
	grace           time.Duration
}

func addListenFlags(fs *pflag.FlagSet, o *listenFlags, what string) {
	fs.StringVar(&o.listen, "listen", "", "serve the HTTP API on this host:port"+what)
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM) of the API")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM) of the API")
	fs.StringArrayVar(&o.apiKeys, "api-keys", nil, "API key file (repeatable; also $"+envAPIKeys+")")
	fs.BoolVar(&o.allowPlainHTTP, "allow-plain-http", false, "serve plain HTTP beyond loopback (behind a TLS proxy)")
	fs.BoolVar(&o.openMetrics, "open-metrics", false, "serve /metrics without an API key")
	fs.DurationVar(&o.grace, "api-grace", 10*time.Second, "on SIGTERM, how long API requests in flight may take")
}

type serveOpts struct {
	wf     workerFlags
	listen listenFlags
}

// newServeCmd is serve; runF, if not nil, runs instead of cmdServe with
// the options parsed (tests of the command line).
func newServeCmd(cl *cli, runF func(context.Context, *serveOpts) int) *cobra.Command {
	o := &serveOpts{}
	c := &cobra.Command{
		Use:   "serve --config FILE --listen ADDR [--tls-cert F --tls-key F] [--api-keys F]... [--allow-plain-http]",
		Short: "Serve the worker's HTTP API (intake-only: files nothing, reads no Mixpanel secret)",
		Long:  serveLong,
		Args:  cobra.NoArgs,
	}
	addWorkerFlags(c.Flags(), &o.wf)
	addListenFlags(c.Flags(), &o.listen, " (required)")
	if runF == nil {
		runF = cl.cmdServe
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int {
		return runF(ctx, o)
	})
	return c
}

func (cl *cli) cmdServe(ctx context.Context, o *serveOpts) int {
	if o.wf.config == "" {
		return cl.fail("serve", exitUsage, usagef("--config FILE is required"))
	}
	cfg, err := worker.LoadConfig(o.wf.config)
	if err != nil {
		return cl.fail("serve", exitUsage, &usageError{err.Error()})
	}
	if o.listen.listen == "" && cfg.API.Listen == "" {
		return cl.fail("serve", exitUsage, usagef("--listen ADDR (or listen in the config's [api]) is required"))
	}
	// Intake-only: no project's secret is read.
	m := worker.NewMetrics(nil)
	svc, closeDB, err := worker.Open(context.WithoutCancel(ctx), cfg, o.wf.database, worker.WithIntakeOnly(), worker.WithLogger(cl.logger), worker.WithMetrics(m))
	if err != nil {
		return cl.fail("serve", exitFor(err), err)
	}
	defer closeDB()
	wait, err := cl.startAPI(ctx, svc, &o.listen, m)
	if err != nil {
		return cl.fail("serve", exitFor(err), err)
	}
	fmt.Fprintf(cl.stderr, "mpgdpr serve: serving the API for %s (intake only: files nothing); SIGINT or SIGTERM stops it\n", strings.Join(cfg.ProjectNames(), ", "))
	if err := wait(); err != nil {
		return cl.fail("serve", exitLocal, err)
	}
	fmt.Fprintf(cl.stderr, "mpgdpr serve: stopped (%v)\n", context.Cause(ctx))
	return exitOK
}

// withConfig is o completed by the config's [api] section: a flag given
// wins; key files add up.
func (o *listenFlags) withConfig(cfg *worker.Config) *listenFlags {
	m := *o
	a := cfg.API
	if m.listen == "" {
		m.listen = a.Listen
	}
	if m.tlsCert == "" && m.tlsKey == "" && a.TLSCertFile != "" {
		m.tlsCert, m.tlsKey = cfg.APIPath(a.TLSCertFile), cfg.APIPath(a.TLSKeyFile)
	}
	m.allowPlainHTTP = m.allowPlainHTTP || a.AllowPlainHTTP
	m.openMetrics = m.openMetrics || a.OpenMetrics
	m.apiKeys = append([]string(nil), m.apiKeys...)
	for _, f := range a.KeyFiles {
		m.apiKeys = append(m.apiKeys, cfg.APIPath(f))
	}
	return &m
}

// apiKeys reads the API keys of --api-keys files and $MPGDPR_API_KEYS,
// registering each secret for redaction first.
func (cl *cli) apiKeys(o *listenFlags) ([]api.Key, error) {
	type source struct{ where, text string }
	var sources []source
	for _, path := range o.apiKeys {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usagef("--api-keys: %v", err)
		}
		sources = append(sources, source{path, string(b)})
	}
	if v := cl.env[envAPIKeys]; v != "" {
		sources = append(sources, source{"$" + envAPIKeys, v})
	}
	var keys []api.Key
	for _, s := range sources {
		for line := range strings.Lines(s.text) {
			if f := strings.Fields(line); len(f) == 3 && !strings.HasPrefix(f[0], "#") {
				cl.secrets.add(f[2])
			}
		}
		k, err := api.ParseKeys(strings.NewReader(s.text), s.where)
		if err != nil {
			return nil, &usageError{err.Error()}
		}
		keys = append(keys, k...)
	}
	if len(keys) == 0 {
		return nil, usagef("no API key: give --api-keys FILE or set $%s (docs/API.md)", envAPIKeys)
	}
	return keys, nil
}

// startAPI listens where o (completed by the config's [api]) says, prints
// the API's base URL as the first line of stdout, and serves svc's API
// until ctx is done; wait waits for the server's graceful end.
func (cl *cli) startAPI(ctx context.Context, svc worker.Service, o *listenFlags, m *worker.Metrics) (wait func() error, err error) {
	cfg := svc.Config()
	o = o.withConfig(cfg)
	keys, err := cl.apiKeys(o)
	if err != nil {
		return nil, err
	}
	// /metrics: the worker's metrics (database gauges, Mixpanel calls,
	// callbacks) and the API's own counters, on m's registry.
	opts := []api.Option{api.WithKeys(keys...), api.WithLogger(cl.logger), api.WithMetrics(m.Handler()), api.WithRegisterer(m.Registry())}
	if o.openMetrics {
		opts = append(opts, api.WithOpenMetrics())
	}
	if a := cfg.API; a.RateLimit != 0 || a.RateBurst != 0 {
		rate, burst := a.RateLimit, a.RateBurst
		if rate == 0 {
			rate = 50
		}
		if burst == 0 {
			burst = max(1, int(2*rate))
		}
		opts = append(opts, api.WithRateLimit(rate, burst))
	}
	if n := cfg.API.MaxBodyBytes; n != 0 {
		opts = append(opts, api.WithMaxBodyBytes(n))
	}
	ln, url, err := api.Listen(api.ListenConfig{Addr: o.listen, CertFile: o.tlsCert, KeyFile: o.tlsKey, AllowPlainHTTP: o.allowPlainHTTP, Warn: cl.stderr})
	if err != nil {
		return nil, usagef("--listen %s: %v", o.listen, strings.TrimPrefix(err.Error(), "api: "))
	}
	if cfg.Callbacks.OpenDSRCertificateFile != "" {
		// The certificate that checks this worker's OpenDSR callbacks,
		// served where discovery says.
		pem, _, err := cfg.OpenDSRCertificate()
		if err != nil {
			_ = ln.Close()
			return nil, &usageError{err.Error()}
		}
		base := url
		if p := cfg.API.PublicURL; p != "" {
			base = strings.TrimSuffix(p, "/")
		}
		key, err := cfg.OpenDSRKey()
		if err != nil {
			_ = ln.Close()
			return nil, &usageError{err.Error()}
		}
		opts = append(opts, api.WithOpenDSRCertificatePEM(pem, base+"/opendsr/certificate"),
			api.WithOpenDSRSigning(key, cfg.Callbacks.OpenDSRDomain))
	}
	srv, err := api.New(svc, opts...)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	fmt.Fprintln(cl.stdout, url)
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, ln, srv.Handler(), o.grace) }()
	return func() error { return <-done }, nil
}
