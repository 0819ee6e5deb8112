package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/worker/api"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mpgdpr test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestListenTLSAndShutdown(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ln, url, err := api.Listen(api.ListenConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Errorf("URL %q", url)
	}
	srv, err := api.New(&fakeService{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, ln, srv.Handler(), time.Second) }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Errorf("healthz over TLS: %s", res.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := client.Get(url + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestListenPlainHTTP(t *testing.T) {
	if _, _, err := api.Listen(api.ListenConfig{Addr: "0.0.0.0:0"}); !errors.Is(err, api.ErrPlainHTTP) {
		t.Errorf("plain HTTP on 0.0.0.0: %v, want ErrPlainHTTP", err)
	}
	var warn strings.Builder
	ln, url, err := api.Listen(api.ListenConfig{Addr: "0.0.0.0:0", AllowPlainHTTP: true, Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if !strings.HasPrefix(url, "http://") || !strings.Contains(warn.String(), "plain HTTP") {
		t.Errorf("allowed plain HTTP: %q, warning %q", url, warn.String())
	}
	ln, url, err = api.Listen(api.ListenConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("loopback: %q", url)
	}
	if _, _, err := api.Listen(api.ListenConfig{Addr: "127.0.0.1:0", CertFile: "x.pem"}); err == nil {
		t.Error("a certificate without its key was accepted")
	}
}
