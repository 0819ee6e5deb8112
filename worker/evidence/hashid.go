package evidence

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinKeyBytes is the shortest key NewIDHasher accepts.
const MinKeyBytes = 16

// IDHasher names people by a keyed hash instead of their distinct ID:
// hex(HMAC-SHA-256(key, distinct ID)), 64 characters. The same key gives
// the same hash, so whoever holds the key can find a given person's entry
// (Hash of their ID); whoever does not cannot tell who it is, nor test a
// guess. Keep the key as secret as the IDs themselves.
type IDHasher struct{ key []byte }

// NewIDHasher uses key, which must be at least MinKeyBytes long.
func NewIDHasher(key []byte) (*IDHasher, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("evidence: an ID hashing key needs at least %d bytes, this one has %d", MinKeyBytes, len(key))
	}
	return &IDHasher{key: append([]byte(nil), key...)}, nil
}

// LoadIDHasher reads the key from spec: "env:NAME" takes the environment
// variable NAME, anything else is a file's path. Surrounding whitespace
// (a final newline) is trimmed. Errors name the variable or file, never
// the key.
func LoadIDHasher(spec string) (*IDHasher, error) {
	var key string
	if name, ok := strings.CutPrefix(spec, "env:"); ok {
		v, set := os.LookupEnv(name)
		if !set {
			return nil, fmt.Errorf("evidence: ID hashing key: environment variable %s is not set", name)
		}
		key = v
	} else {
		st, err := os.Stat(spec)
		if err != nil {
			return nil, fmt.Errorf("evidence: ID hashing key: %w", err)
		}
		if !st.Mode().IsRegular() || st.Size() > 64<<10 {
			return nil, fmt.Errorf("evidence: ID hashing key: %s is not a regular file of at most 64 KiB", spec)
		}
		b, err := os.ReadFile(spec)
		if err != nil {
			return nil, fmt.Errorf("evidence: ID hashing key: %w", err)
		}
		key = string(b)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, errors.New("evidence: ID hashing key is empty")
	}
	return NewIDHasher([]byte(key))
}

// Hash is the keyed hash of one distinct ID.
func (h *IDHasher) Hash(id string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// shown returns a record's IDs as a report shows them: hashed with h, or
// as they are when h is nil or they are already keyed hashes (a purged
// record, Record.IDsKeyed).
func (h *IDHasher) shown(r *Record) []string {
	if r.IDsKeyed {
		return r.DistinctIDs
	}
	return h.names(r.DistinctIDs)
}

// names returns the IDs hashed with h, or as they are when h is nil.
func (h *IDHasher) names(ids []string) []string {
	if h == nil {
		return ids
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = h.Hash(id)
	}
	return out
}
