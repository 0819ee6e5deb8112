// Package digest is the one length-prefixed SHA-256 every module uses where
// a list of texts must hash to one value that no other list can reach by
// moving bytes between its parts: the evidence chain and its row seals
// (worker/evidence), the CLI journal's digest of a job's IDs, and the file
// names of unsafe task ids (internal/safefile).
package digest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Parts is hex(SHA-256) over the parts in order, each preceded by its
// length in bytes as a uvarint.
func Parts(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, s := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}
