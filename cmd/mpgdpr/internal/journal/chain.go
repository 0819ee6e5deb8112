package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
)

// Tamper evidence. Every line of a journal carries, as its last field "h",
// a hash chained to the line before: hex(SHA-256(chainDomain, the previous
// line's hash, the line without its "h")), the header's from "". Changing,
// reordering or removing any line but the last breaks the chain at the
// next line; removing the last lines shows only against a chain head kept
// elsewhere (`mpgdpr report verify` prints the head). It is not a
// signature: whoever rewrites the whole file can recompute every hash.
// A journal written before this (no "h" on its header) is resumed without
// hashes and verifies as unverifiable, never as tampered.

const chainDomain = "mpgdpr-journal-chain-v1"

// hashChain is a journal's chain state: on once the header has a hash.
type hashChain struct {
	on   bool
	prev string
}

func chainHash(prev string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(chainDomain + "\n" + prev + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// link adds the chained hash to a marshalled JSON object (no newline).
func (c *hashChain) link(b []byte) []byte {
	if !c.on || len(b) < 2 || b[len(b)-1] != '}' {
		return b
	}
	c.prev = chainHash(c.prev, b)
	sep := ","
	if len(b) == 2 { // {}
		sep = ""
	}
	return append(append(b[:len(b)-1:len(b)-1], sep+`"h":"`+c.prev+`"`...), '}')
}

// follow takes in a line read back (header first): the chain is on if the
// header carries a hash, and continues from each line's hash.
func (c *hashChain) follow(line []byte, header bool) {
	_, h, ok := splitHash(bytes.TrimRight(line, "\n"))
	if header {
		c.on = ok
	}
	if ok {
		c.prev = h
	}
}

// splitHash splits a line into the object it hashed and its hash.
func splitHash(line []byte) (body []byte, hash string, ok bool) {
	const tail = len(`,"h":"`) + 64 + len(`"}`)
	n := len(line)
	if n < tail+1 || !bytes.HasSuffix(line, []byte(`"}`)) {
		return line, "", false
	}
	i := n - tail
	if !bytes.Equal(line[i:i+6], []byte(`,"h":"`)) {
		if bytes.Equal(line[i+1:i+6], []byte(`"h":"`)) && line[i] == '{' { // {"h":...}
			return []byte("{}"), string(line[i+6 : n-2]), true
		}
		return line, "", false
	}
	return append(append([]byte(nil), line[:i]...), '}'), string(line[i+6 : n-2]), true
}

// ChainCheck is the verification of one journal's hash chain.
type ChainCheck struct {
	// Lines counts the complete lines; Hashed those carrying a hash.
	Lines, Hashed int
	// Head is the last line's hash.
	Head string
	// BadLine is the first line (from 1) whose hash does not follow, 0 if
	// none; Problem says how.
	BadLine int
	Problem string
}

// Unverifiable: the journal carries no hashes (written by an older version).
func (c *ChainCheck) Unverifiable() bool { return c.Hashed == 0 && c.Lines > 0 }

// VerifyFile recomputes a journal's hash chain, reading it line by line. A
// torn final line (no newline) is ignored, as Open would drop it.
func VerifyFile(path string) (*ChainCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	c := &ChainCheck{}
	prev := ""
	// A torn final line (no newline) is left out by scanLines.
	_, _, err = scanLines(f, func(n int, line []byte) error {
		c.Lines = n
		body, h, ok := splitHash(line)
		switch {
		case c.BadLine != 0:
		case !ok && c.Hashed > 0:
			c.BadLine, c.Problem = c.Lines, "the line carries no hash, though the journal's earlier lines do (removed, or added by hand)"
		case !ok:
			// An older journal, or its lines before any hash: nothing to check.
		case c.Lines > 1 && c.Hashed == 0:
			c.BadLine, c.Problem = c.Lines, "a hash appears after lines without one (lines were removed or added)"
		case chainHash(prev, body) != h:
			c.BadLine, c.Problem = c.Lines, "the line does not match its hash (it, or a line before it, was changed, removed or reordered)"
		default:
			c.Hashed++
			prev, c.Head = h, h
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return c, nil
}
