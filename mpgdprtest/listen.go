package mpgdprtest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"
)

// The listen addresses a Server uses unless told otherwise: loopback, on
// ports the system picks. The download host prefers a second loopback
// address, so that a client sending credentials to "the same host" is
// caught by host, not only by port.
const (
	DefaultListen         = "127.0.0.1:0"
	DefaultDownloadListen = "127.0.0.2:0"
)

// WithListen sets the address the API host listens on (default
// DefaultListen), for example "127.0.0.1:8080" for a fixed port. A
// non-loopback address needs a control token when the control API is
// mounted (see WithControlToken); Start refuses it otherwise.
func WithListen(addr string) Option {
	return func(c *config) { c.listen = addr }
}

// WithDownloadListen sets the address the export download host listens
// on. By default it is DefaultDownloadListen when the API host listens on
// loopback (127.0.0.1 on another port where 127.0.0.2 cannot be bound),
// and the API host's address on another port otherwise.
func WithDownloadListen(addr string) Option {
	return func(c *config) { c.downloadListen = addr }
}

// WithDownloadURL sets the base URL export links start with, for example
// "http://fake:8081" when the download host is reached under a name (in
// docker-compose) rather than at the address it listens on. By default it
// is http:// and the listener's address.
func WithDownloadURL(base string) Option {
	return func(c *config) { c.downloadURL = strings.TrimSuffix(base, "/") }
}

// Start starts a fake as NewServer does, but returns an error instead of
// panicking when it cannot listen or an option is invalid. Call Close when
// done.
func Start(opts ...Option) (*Server, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	return start(cfg)
}

// checkConfig refuses options that cannot work, before anything listens.
func checkConfig(cfg *config) error {
	if cfg.createStatus != http.StatusOK && cfg.createStatus != http.StatusCreated {
		return fmt.Errorf("mpgdprtest: create status %d: the document allows 200 or 201", cfg.createStatus)
	}
	if cfg.createShape != CreateObject && cfg.createShape != CreateArray {
		return fmt.Errorf("mpgdprtest: unknown create shape %d", cfg.createShape)
	}
	switch cfg.linkField {
	case LinkDownloadURL, LinkResult, LinkResults:
	default:
		return fmt.Errorf("mpgdprtest: link field %q: want %s, %s or %s", cfg.linkField, LinkDownloadURL, LinkResult, LinkResults)
	}
	if cfg.rps < 0 || cfg.maxRetrieval < 0 || cfg.maxDeletion < 0 {
		return errors.New("mpgdprtest: a rate or id limit is negative")
	}
	if cfg.downloadURL != "" {
		u, err := url.Parse(cfg.downloadURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("mpgdprtest: download URL %q: want http(s)://host[:port]", cfg.downloadURL)
		}
	}
	if cfg.control && cfg.controlToken == "" && !IsLoopback(cfg.listen) {
		return fmt.Errorf("mpgdprtest: listening on %s, beyond loopback, needs a control token (WithControlToken): anyone who can reach it could otherwise drive the fake", cfg.listen)
	}
	return nil
}

// IsLoopback reports whether a listen address (host:port, or a bare
// host) can only be reached from this machine: localhost or a loopback
// IP. An empty host, as in ":8080", listens everywhere and is not.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listenOn returns an unstarted httptest.Server for h listening on addr,
// or on fallback if addr cannot be bound and fallback is not empty.
func listenOn(h http.Handler, addr, fallback string) (*httptest.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil && fallback != "" {
		l, err = net.Listen("tcp", fallback)
	}
	if err != nil {
		return nil, fmt.Errorf("mpgdprtest: %w", err)
	}
	// httptest.NewUnstartedServer listens on 127.0.0.1:0 itself (and
	// panics if it cannot); an http.Server built here would lose its
	// waiting for requests in progress on Close.
	// A header timeout, for a fake left running where slow clients reach it.
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}}
	return srv, nil
}

// downloadListen is where the download host listens, and a fallback.
func downloadListen(cfg *config, api net.Addr) (addr, fallback string) {
	if cfg.downloadListen != "" {
		return cfg.downloadListen, ""
	}
	if IsLoopback(cfg.listen) {
		return DefaultDownloadListen, "127.0.0.1:0"
	}
	host := ""
	if ta, ok := api.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		host = ta.IP.String()
	}
	return net.JoinHostPort(host, "0"), ""
}
