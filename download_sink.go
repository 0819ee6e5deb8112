package mpgdpr

import (
	"errors"
	"io"

	"github.com/privacykit/mpgdpr/internal/zipend"
)

// tailSize is how much of the end of a download the sink keeps: enough for
// the zip end records (zipend.MaxTail) and the start of a central
// directory of a few thousand entries.
const tailSize = zipend.MaxTail + 256<<10

// sink counts what was written, keeps the last tailSize bytes to check that
// they end a zip archive, and can start over when it is a file.
type sink struct {
	w     io.Writer
	n     int64
	tail  []byte // the last bytes written; tail[0] is at offset n-len(tail)
	reset func() error
}

func newSink(w io.Writer, reset func() error) *sink {
	return &sink{w: w, reset: reset}
}

func (s *sink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n += int64(n)
	s.keep(p[:n])
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// keep appends p to the tail, dropping what is older than tailSize. The
// buffer grows to twice tailSize at most, so each byte is copied about
// once more.
func (s *sink) keep(p []byte) {
	if len(p) >= tailSize {
		s.tail = append(s.tail[:0], p[len(p)-tailSize:]...)
		return
	}
	if len(s.tail)+len(p) > 2*tailSize {
		keep := tailSize - len(p)
		s.tail = append(s.tail[:0], s.tail[len(s.tail)-keep:]...)
	}
	s.tail = append(s.tail, p...)
}

// restart empties the sink, if it can start over.
func (s *sink) restart() error {
	if s.reset == nil {
		return errors.New("cannot start over")
	}
	if err := s.reset(); err != nil {
		return err
	}
	s.n, s.tail = 0, s.tail[:0]
	return nil
}

// complete checks that the bytes written form a complete zip archive.
func (s *sink) complete() error {
	r := tailReader{tail: s.tail, start: s.n - int64(len(s.tail))}
	_, err := zipend.Find(r, s.n, true)
	if errors.Is(err, errBeforeTail) {
		// A central directory larger than the tail: its first bytes are
		// gone, the end records (which Find needs) are not.
		_, err = zipend.Find(r, s.n, false)
	}
	return err
}

var errBeforeTail = errors.New("before the kept tail")

// tailReader reads the kept tail at its offsets in the whole download.
type tailReader struct {
	tail  []byte
	start int64
}

func (t tailReader) ReadAt(p []byte, off int64) (int, error) {
	if off < t.start {
		return 0, errBeforeTail
	}
	i := off - t.start
	if i >= int64(len(t.tail)) {
		return 0, io.EOF
	}
	n := copy(p, t.tail[i:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
