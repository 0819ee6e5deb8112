package journal

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Reading a journal back: Open (to resume), VerifyFile (the hash chain)
// and the evidence report all read it through here, so that they agree on
// what a journal says: only complete lines count, and a final line that
// does not parse is a write a crash cut short.

// Entry is one line of a journal read back: the header (line 1) or a
// record.
type Entry struct {
	Line   int
	Header *Header // line 1
	Record *Record // every later line
	Raw    []byte  // the line as written, without its newline
	Hash   string  // its chained hash; "" in a journal written before hashes
}

// ReadInfo is what Read found besides the entries.
type ReadInfo struct {
	// Lines counts the entries read; Good is the length of the lines they
	// span.
	Lines int
	Good  int64
	// DroppedTail: the last line was torn (no newline, or it does not
	// parse) and was left out; Tail is its bytes when it had no newline.
	DroppedTail bool
	Tail        []byte
}

// Read calls fn with each entry of the journal in r, in order, leaving out
// a torn last line as Open drops it. A first line that is not a header, or
// a line other than the last that does not parse, is ErrCorrupt. An error
// from fn stops the reading and is returned.
func Read(r io.Reader, fn func(Entry) error) (ReadInfo, error) {
	var info ReadInfo
	var held []byte // a line that did not parse: torn if it is the last
	heldErr := error(nil)
	good, tail, err := scanLines(r, func(n int, line []byte) error {
		if held != nil {
			return fmt.Errorf("%w at line %d: %v", ErrCorrupt, n-1, heldErr)
		}
		e := Entry{Line: n, Raw: line}
		_, e.Hash, _ = splitHash(line)
		if n == 1 {
			var h Header
			if err := json.Unmarshal(line, &h); err != nil || h.Type != "header" {
				return fmt.Errorf("%w: the first line is not a journal header", ErrCorrupt)
			}
			e.Header = &h
		} else {
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil {
				held, heldErr = line, err
				return nil
			}
			e.Record = &rec
		}
		info.Lines = n
		return fn(e)
	})
	info.Good, info.Tail = good, tail
	if held != nil {
		// A final line that does not parse is a torn write too (a crash
		// can leave a block of zeros).
		info.Good -= int64(len(held) + 1)
		info.DroppedTail = true
	}
	if len(tail) > 0 {
		info.DroppedTail = true
	}
	return info, err
}

// scanLines calls fn with each complete line of r (without its newline),
// numbered from 1, and returns the length of those lines and the fragment
// after them, a line without its newline.
func scanLines(r io.Reader, fn func(n int, line []byte) error) (int64, []byte, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var good int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if ferr := fn(n, line[:len(line)-1]); ferr != nil {
				return good, nil, ferr
			}
			good += int64(len(line))
			line = nil
		}
		if err == io.EOF {
			return good, line, nil
		}
		if err != nil {
			return good, line, err
		}
	}
}

// ReadFile reads the journal at path as Read does, without locking it:
// for reports on journals, never to resume one.
func ReadFile(path string, fn func(Entry) error) (ReadInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return ReadInfo{}, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return ReadInfo{}, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	info, err := Read(f, fn)
	if err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}
