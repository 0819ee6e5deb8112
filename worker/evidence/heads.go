package evidence

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Head is the last entry of a chain: its position and hash.
type Head struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	Hash  string `json:"hash"`
}

// HeadsFile is the chain heads at a moment, optionally signed: what
// `mpgdpr report head` writes and `mpgdpr report verify --heads` checks
// against. Keep it where whoever can write the database cannot.
type HeadsFile struct {
	V     int       `json:"v"`
	At    time.Time `json:"at"`
	Heads []Head    `json:"heads"`
	// PublicKey and Signature (base64) are an Ed25519 signature of
	// SignedBytes, when signed.
	PublicKey string `json:"public_key,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// SignedBytes is the canonical text a signature covers: a version line,
// the time, then one "chain seq hash" line per head, sorted by chain, the
// chain name quoted.
func (f *HeadsFile) SignedBytes() []byte {
	hs := append([]Head(nil), f.Heads...)
	sort.Slice(hs, func(i, j int) bool { return hs[i].Chain < hs[j].Chain })
	var b strings.Builder
	b.WriteString("mpgdpr-chain-heads-v1\n")
	b.WriteString(f.At.UTC().Format(time.RFC3339Nano) + "\n")
	for _, h := range hs {
		fmt.Fprintf(&b, "%s %d %s\n", strconv.Quote(h.Chain), h.Seq, h.Hash)
	}
	return []byte(b.String())
}

// Sign signs the heads with key.
func (f *HeadsFile) Sign(key ed25519.PrivateKey) {
	f.PublicKey = base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	f.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, f.SignedBytes()))
}

// ErrBadSignature: a heads file's signature does not verify.
var ErrBadSignature = errors.New("evidence: the chain heads' signature does not verify")

// VerifySignature checks the signature with pub (the key you trust; the
// public key in the file is only informational). An unsigned file fails.
func (f *HeadsFile) VerifySignature(pub ed25519.PublicKey) error {
	if f.Signature == "" {
		return fmt.Errorf("%w: the file is not signed", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(f.Signature)
	if err != nil || !ed25519.Verify(pub, f.SignedBytes(), sig) {
		return ErrBadSignature
	}
	return nil
}

// ReadHeadsFile reads a heads file.
func ReadHeadsFile(path string) (*HeadsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f HeadsFile
	if err := json.Unmarshal(b, &f); err != nil || f.V != 1 {
		return nil, fmt.Errorf("evidence: %s is not a chain heads file (version 1)", path)
	}
	return &f, nil
}

// LoadSigningKey reads an Ed25519 private key from a PEM file (PKCS #8,
// as `openssl genpkey -algorithm ed25519` writes).
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: not a PKCS #8 private key", path)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("evidence: %s: not an Ed25519 key", path)
	}
	return ek, nil
}

// LoadPublicKey reads an Ed25519 public key from a PEM file (PKIX, as
// `openssl pkey -pubout` writes).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: not a PKIX public key", path)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("evidence: %s: not an Ed25519 key", path)
	}
	return ek, nil
}

// readPEM returns the first PEM block's bytes of the file at path.
func readPEM(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("evidence: %s holds no PEM block", path)
	}
	return blk.Bytes, nil
}
