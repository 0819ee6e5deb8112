package mpgdpr

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tlsExportHost is an https storage host that counts the connections it
// accepts, handshakes that fail included.
func tlsExportHost(t *testing.T, content []byte, cert *tls.Certificate) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(content)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = quietLog()
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// expiredCert makes a CA and a certificate for 127.0.0.1 signed by it
// that expired an hour ago.
func expiredCert(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, leafKey := key(), key()
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}, pool
}

// A certificate that does not verify will not verify on a retry: the
// download fails at once, saying why, as the API pipeline does.
func TestDownloadTLSVerificationNotRetried(t *testing.T) {
	content := exportBytes(8 << 10)
	expired, pool := expiredCert(t)
	cases := []struct {
		name   string
		cert   *tls.Certificate
		client func(*httptest.Server) *http.Client // nil: the default download client
		host   string                              // replaces 127.0.0.1 in the link
		want   string
	}{
		{name: "unknown authority", want: "unknown authority"},
		{name: "wrong name", client: (*httptest.Server).Client, host: "localhost", want: "localhost"},
		{name: "expired", cert: expired, client: func(*httptest.Server) *http.Client {
			return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		}, want: "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns := tlsExportHost(t, content, tc.cert)
			link := srv.URL + "/exports/r1.zip?X-Signature=sig-SECRET"
			if tc.host != "" {
				link = strings.Replace(link, "127.0.0.1", tc.host, 1)
			}
			var opts []DownloadOption
			if tc.client != nil {
				hc := tc.client(srv)
				t.Cleanup(hc.CloseIdleConnections)
				opts = append(opts, WithDownloadHTTPClient(hc))
			}
			task := &Task{TrackingID: "r1", Status: StatusSuccess, DownloadURL: link}
			_, err := downloadTestClient(t).DownloadExport(context.Background(), task, io.Discard, opts...)
			if !errors.Is(err, ErrDownloadFailed) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), "sig-SECRET") {
				t.Fatalf("the link's signature leaked: %v", err)
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("%d connections: a TLS verification failure was retried", n)
			}
			var ua x509.UnknownAuthorityError
			var he x509.HostnameError
			var ci x509.CertificateInvalidError
			if !errors.As(err, &ua) && !errors.As(err, &he) && !errors.As(err, &ci) {
				t.Fatalf("the x509 cause is lost: %v", err)
			}
		})
	}
	// The same hosts, trusted and named right, serve the export.
	srv, _ := tlsExportHost(t, content, nil)
	hc := srv.Client()
	var buf bytes.Buffer
	task := &Task{Status: StatusSuccess, DownloadURL: srv.URL + "/x.zip"}
	if _, err := downloadTestClient(t).DownloadExport(context.Background(), task, &buf, WithDownloadHTTPClient(hc)); err != nil || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("err = %v", err)
	}
}

// Plain http is for tests only: to loopback, and only when asked for or
// when the client itself talks to a loopback http API (a fake).
func TestDownloadPlainHTTPOnlyForLocalTests(t *testing.T) {
	content := exportBytes(4 << 10)
	h := newExportHost(t, content)
	ctx := context.Background()
	// The default: refused before any request.
	_, err := downloadTestClient(t).DownloadExport(ctx, h.task(), io.Discard)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "https") {
		t.Fatalf("err = %v", err)
	}
	if n := len(h.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
	// A client for a loopback http API (a fake server).
	fakeAPI, err := New(testOAuth, testProject, WithBaseURL("http://127.0.0.1:1/api/app"), WithRateLimiter(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fakeAPI.DownloadExport(ctx, h.task(), io.Discard); err != nil {
		t.Fatalf("loopback API client: %v", err)
	}
	// The explicit option, with an https API.
	if _, err := downloadTestClient(t).DownloadExport(ctx, h.task(), io.Discard, WithInsecureLoopbackDownloads()); err != nil {
		t.Fatalf("with the option: %v", err)
	}
	// Never to another host, whatever the options.
	task := &Task{Status: StatusSuccess, DownloadURL: "http://192.0.2.1/x.zip"}
	if _, err := fakeAPI.DownloadExport(ctx, task, io.Discard, WithInsecureLoopbackDownloads()); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("http to another host: %v", err)
	}
}

// Redirects follow the same rules, with the default client and with one
// of the caller's.
func TestDownloadRedirectsChecked(t *testing.T) {
	content := exportBytes(4 << 10)
	plain := newExportHost(t, content)
	redirector := func(to string) (*httptest.Server, *http.Client) {
		srv := httptest.NewTLSServer(http.RedirectHandler(to, http.StatusFound))
		t.Cleanup(srv.Close)
		hc := srv.Client()
		t.Cleanup(hc.CloseIdleConnections)
		return srv, hc
	}
	ctx := context.Background()
	// https storage host redirecting to plain http on loopback: refused
	// without the option, even with the caller's client.
	srv, hc := redirector(plain.srv.URL + "/exports/r1.zip")
	task := &Task{Status: StatusSuccess, DownloadURL: srv.URL + "/x.zip"}
	_, err := downloadTestClient(t).DownloadExport(ctx, task, io.Discard, WithDownloadHTTPClient(hc))
	if !errors.Is(err, ErrDownloadFailed) || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("err = %v", err)
	}
	if n := len(plain.requests()); n != 0 {
		t.Fatalf("the redirect was followed: %d requests", n)
	}
	if _, err := downloadTestClient(t).DownloadExport(ctx, task, io.Discard, WithDownloadHTTPClient(hc), WithInsecureLoopbackDownloads()); err != nil {
		t.Fatalf("with the option: %v", err)
	}
	// A redirect to a link carrying a secret is never followed.
	srv, hc = redirector(plain.srv.URL + "/x.zip?leak=" + testOAuth)
	task = &Task{Status: StatusSuccess, DownloadURL: srv.URL + "/x.zip"}
	before := len(plain.requests())
	_, err = downloadTestClient(t).DownloadExport(ctx, task, io.Discard, WithDownloadHTTPClient(hc), WithInsecureLoopbackDownloads())
	if err == nil || strings.Contains(err.Error(), testOAuth) || len(plain.requests()) != before {
		t.Fatalf("err = %v, %d requests", err, len(plain.requests())-before)
	}
	// The caller's own redirect policy still applies after ours.
	srv, hc = redirector(plain.srv.URL + "/exports/r1.zip")
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return errors.New("no redirects here") }
	task = &Task{Status: StatusSuccess, DownloadURL: srv.URL + "/x.zip"}
	_, err = downloadTestClient(t).DownloadExport(ctx, task, io.Discard, WithDownloadHTTPClient(hc), WithInsecureLoopbackDownloads())
	if err == nil || !strings.Contains(err.Error(), "no redirects here") {
		t.Fatalf("err = %v", err)
	}
}

// quietLog drops the server's "TLS handshake error" lines, which these
// tests cause on purpose.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
