package webhook

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"a":1}`)
	at := time.Unix(1_700_000_000, 0)
	h := Sign(key, at, body)
	if !strings.HasPrefix(h, "t=1700000000,v1=") || len(h) != len("t=1700000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	for _, c := range []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"good", h, body, at.Add(time.Minute), nil},
		{"good, rotated key listed second", "t=1700000000,v1=" + strings.Repeat("00", 32) + "," + strings.TrimPrefix(h, "t=1700000000,"), body, at, nil},
		{"empty", "", body, at, ErrNoSignature},
		{"no v1", "t=1700000000", body, at, ErrNoSignature},
		{"no t", strings.TrimPrefix(h, "t=1700000000,"), body, at, ErrNoSignature},
		{"other body", h, []byte(`{"a":2}`), at, ErrBadSignature},
		{"other key", Sign([]byte("another key, also thirty-two bytes"), at, body), body, at, ErrBadSignature},
		{"timestamp changed", strings.Replace(h, "t=1700000000", "t=1700000001", 1), body, at, ErrBadSignature},
		{"too old", h, body, at.Add(6 * time.Minute), ErrTooOld},
		{"from the future", h, body, at.Add(-6 * time.Minute), ErrTooOld},
	} {
		if err := Verify(key, c.header, c.body, 0, c.now); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestOpenDSR(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"request_status":"completed"}`)
	sig, err := SignOpenDSR(k, body)
	if err != nil {
		t.Fatal(err)
	}
	// OpenDSR's examples fold the header over lines.
	folded := sig[:40] + "\n" + sig[40:]
	if err := VerifyOpenDSR(&k.PublicKey, folded, body); err != nil {
		t.Fatal(err)
	}
	if err := VerifyOpenDSR(&k.PublicKey, sig, []byte(`{"request_status":"pending"}`)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other body: %v", err)
	}
	if err := VerifyOpenDSR(&k.PublicKey, "", body); !errors.Is(err, ErrNoSignature) {
		t.Errorf("empty: %v", err)
	}
}
