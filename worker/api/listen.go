package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// ErrPlainHTTP: plain HTTP was asked for on an address beyond loopback
// without ListenConfig.AllowPlainHTTP.
var ErrPlainHTTP = errors.New("api: plain HTTP beyond loopback: give a TLS certificate and key, or allow plain HTTP explicitly")

// ListenConfig says where and how Serve listens.
type ListenConfig struct {
	// Addr is host:port; port 0 picks a free one.
	Addr string
	// CertFile and KeyFile, both or neither, serve TLS (1.2 or later).
	CertFile, KeyFile string
	// AllowPlainHTTP serves plain HTTP beyond loopback (behind a TLS
	// proxy); Warn is told so. Without TLS and without it, Addr must be a
	// loopback address: API keys and distinct IDs would cross the network
	// in the clear.
	AllowPlainHTTP bool
	// Warn receives warnings (nil: none).
	Warn io.Writer
}

// Listen opens the listener lc names and returns it with the base URL
// clients reach it by (http://127.0.0.1:PORT or https://…).
func Listen(lc ListenConfig) (net.Listener, string, error) {
	useTLS := lc.CertFile != "" || lc.KeyFile != ""
	if useTLS && (lc.CertFile == "" || lc.KeyFile == "") {
		return nil, "", errors.New("api: give both a TLS certificate and its key")
	}
	if !useTLS && !mpgdprtest.IsLoopback(lc.Addr) {
		if !lc.AllowPlainHTTP {
			return nil, "", ErrPlainHTTP
		}
		if lc.Warn != nil {
			fmt.Fprintf(lc.Warn, "warning: serving the API over plain HTTP on %s, beyond loopback: API keys and distinct IDs cross the network in the clear unless a TLS proxy fronts it\n", lc.Addr)
		}
	}
	var cfg *tls.Config
	if useTLS {
		cert, err := tls.LoadX509KeyPair(lc.CertFile, lc.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("api: TLS certificate and key: %w", err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", lc.Addr)
	if err != nil {
		return nil, "", err
	}
	scheme := "http"
	if cfg != nil {
		ln, scheme = tls.NewListener(ln, cfg), "https"
	}
	return ln, scheme + "://" + ln.Addr().String(), nil
}

// Serve serves h on ln until ctx is done, then shuts down gracefully:
// new connections are refused, requests in flight get grace (0: 10 s).
// It returns nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration) error {
	if grace <= 0 {
		grace = 10 * time.Second
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// No WriteTimeout: an export download may take long; IdleTimeout
		// and the client's own timeouts bound idle connections.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-done
	return err
}
