// Package webhook signs and verifies the worker's callback notices, for
// the worker and for the services that receive them. It imports neither
// River nor a database driver: a receiver needs this package alone.
//
// A notice in the worker's own format carries the header
//
//	Mpgdpr-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">
//
// (Stripe's scheme): the timestamp is signed with the body, so a captured
// notice cannot be replayed once it is older than the receiver's
// tolerance. A header may hold several v1 values (during a key rotation);
// one matching is enough.
//
// A notice in the OpenDSR format is signed as OpenDSR 1.0 says: the header
// X-OpenDSR-Signature holds the base64 RSA signature (PKCS #1 v1.5,
// SHA-256) of the raw body, made with the processor's key whose certificate
// the processor publishes (SignOpenDSR, VerifyOpenDSR).
package webhook

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of a notice.
const (
	// SignatureHeader carries Sign's value on a notice in the worker's format.
	SignatureHeader = "Mpgdpr-Signature"
	// DeliveryHeader names the notice: every attempt to deliver one notice
	// carries the same id, so a receiver that accepted it already (and
	// whose answer was lost) can tell.
	DeliveryHeader = "Mpgdpr-Delivery"
	// OpenDSRSignatureHeader and OpenDSRDomainHeader are OpenDSR 1.0's.
	OpenDSRSignatureHeader = "X-OpenDSR-Signature"
	OpenDSRDomainHeader    = "X-OpenDSR-Processor-Domain"
)

// DefaultTolerance is how old a signature Verify accepts when given 0.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify and VerifyOpenDSR, for errors.Is.
var (
	// ErrNoSignature: the header is empty or has no t= and v1= values.
	ErrNoSignature = errors.New("webhook: no signature")
	// ErrBadSignature: no signature matches the body under the key.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrTooOld: the signature matches but its timestamp is further from
	// now than the tolerance (a replay, or a clock far off).
	ErrTooOld = errors.New("webhook: signature timestamp outside the tolerance")
)

// Sign returns the Mpgdpr-Signature header value of body signed at t with
// key.
func Sign(key []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(key, ts, body))
}

func mac(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks header (an Mpgdpr-Signature value) against body and key:
// nil when one v1 signature matches and its timestamp is within tolerance
// of now (0 means DefaultTolerance). Pass the raw body, before any JSON
// parsing. The comparison takes constant time.
func Verify(key []byte, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(key, ts, body)
	match := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			match = true
		}
	}
	if !match {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	return nil
}

// SignOpenDSR returns the X-OpenDSR-Signature header value of body: the
// base64 RSASSA-PKCS1-v1_5 signature of its SHA-256 digest.
func SignOpenDSR(key *rsa.PrivateKey, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifyOpenDSR checks an X-OpenDSR-Signature header value against body
// with the processor's public key (from the certificate it publishes).
// Whitespace in the header (OpenDSR's examples fold it) is ignored.
func VerifyOpenDSR(pub *rsa.PublicKey, header string, body []byte) error {
	header = strings.Join(strings.Fields(header), "")
	if header == "" {
		return ErrNoSignature
	}
	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return ErrNoSignature
	}
	sum := sha256.Sum256(body)
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
		return ErrBadSignature
	}
	return nil
}
