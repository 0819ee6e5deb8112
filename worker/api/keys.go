package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// The scopes an API key may hold.
const (
	// ScopeFile enqueues and cancels requests.
	ScopeFile = "file"
	// ScopeRead reads requests, lists them and the metrics.
	ScopeRead = "read"
	// ScopeExport downloads retrieval exports.
	ScopeExport = "export"
)

// MinSecretLength is the shortest key secret accepted.
const MinSecretLength = 32

// ErrKeyFile: a key file or MPGDPR_API_KEYS value is malformed. The error
// names the line, never a secret.
var ErrKeyFile = errors.New("api: bad API key list")

// Key is one API key: its name (for logs and OpenDSR's controller_id), its
// scopes and the SHA-256 of its secret. The secret itself is not kept.
type Key struct {
	Name   string
	Scopes []string
	hash   [sha256.Size]byte
}

// NewKey makes a key from its name, scopes and secret.
func NewKey(name string, scopes []string, secret string) (Key, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n") {
		return Key{}, fmt.Errorf("%w: a key's name must be one word", ErrKeyFile)
	}
	if len(secret) < MinSecretLength {
		return Key{}, fmt.Errorf("%w: key %q: its secret is shorter than %d characters", ErrKeyFile, name, MinSecretLength)
	}
	if len(scopes) == 0 {
		return Key{}, fmt.Errorf("%w: key %q has no scope", ErrKeyFile, name)
	}
	for _, s := range scopes {
		if s != ScopeFile && s != ScopeRead && s != ScopeExport {
			return Key{}, fmt.Errorf("%w: key %q: scope %q is not file, read or export", ErrKeyFile, name, s)
		}
	}
	return Key{Name: name, Scopes: slices.Clone(scopes), hash: sha256.Sum256([]byte(secret))}, nil
}

// ParseKeys reads a key list: one key a line, "name scopes secret", scopes
// a comma list of file, read and export; blank lines and lines starting
// with # are skipped. where names the source in errors.
func ParseKeys(r io.Reader, where string) ([]Key, error) {
	var keys []Key
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			// Never quote the line: it may hold a secret.
			return nil, fmt.Errorf("%w: %s line %d: want \"name scopes secret\"", ErrKeyFile, where, n)
		}
		k, err := NewKey(f[0], strings.Split(f[1], ","), f[2])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", where, n, err)
		}
		if slices.ContainsFunc(keys, func(o Key) bool { return o.Name == k.Name }) {
			return nil, fmt.Errorf("%w: %s line %d: key %q named twice", ErrKeyFile, where, n, k.Name)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, where, err)
	}
	return keys, nil
}

// LoadKeyFile reads a key file (see ParseKeys).
func LoadKeyFile(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseKeys(f, path)
}

// keyring finds the key of a presented secret.
type keyring struct{ keys []Key }

// find returns the key whose secret is presented, or nil. Every key is
// compared, in constant time, whether or not one matched: how long it
// takes says nothing about which key, or how much of one, was guessed.
func (kr *keyring) find(presented string) *Key {
	h := sha256.Sum256([]byte(presented))
	found := -1
	for i := range kr.keys {
		eq := subtle.ConstantTimeCompare(h[:], kr.keys[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil
	}
	return &kr.keys[found]
}

// has reports whether k holds scope.
func (k *Key) has(scope string) bool { return slices.Contains(k.Scopes, scope) }
