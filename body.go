package mpgdpr

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// buffer replaces resp.Body by at most limit bytes of it, in memory, with
// every secret redacted (redact.Set.Body), and closes the network body: a hostile
// server can neither make the client read more nor get a token echoed back
// into an error, a decoded value or a link.
func (c *Client) buffer(resp *http.Response, limit int64) error {
	b, err := readAtMost(resp.Body, limit, resp.ContentLength)
	_ = resp.Body.Close()
	b, cleaned := c.secrets.Body(b)
	mb := &memBody{b: b, cleaned: cleaned}
	mb.r.Reset(b)
	resp.Body = mb
	resp.ContentLength = int64(len(b)) // what is left to read now
	// Set Content-Length only when it changes: formatting it and replacing
	// the header costs two allocations per call.
	var num [20]byte
	if v := resp.Header["Content-Length"]; len(v) != 1 || v[0] != string(strconv.AppendInt(num[:0], int64(len(b)), 10)) {
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	}
	return err
}

// readAtMost reads r up to EOF or limit bytes, like
// io.ReadAll(io.LimitReader(r, limit)), into one buffer sized from the
// announced length (hint, -1 if unknown) when there is one.
func readAtMost(r io.Reader, limit, hint int64) ([]byte, error) {
	size := int64(512)
	if hint >= 0 {
		size = hint + 1 // room to see EOF without growing
	}
	b := make([]byte, 0, min(size, limit))
	for int64(len(b)) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the growth
		}
		room := b[len(b):min(int64(cap(b)), limit)]
		n, err := r.Read(room)
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// memBody is a response body the pipeline has already read into memory.
// cleaned says a secret was found in it and replaced: a task id or link
// holding REDACTED then came from a secret (see Client.tainted).
type memBody struct {
	r       bytes.Reader
	b       []byte
	cleaned bool
}

func (m *memBody) Read(p []byte) (int, error) { return m.r.Read(p) }

func (m *memBody) Close() error { return nil }

// take returns what is left unread and marks it read, without a copy.
func (m *memBody) take() []byte {
	rest := m.b[len(m.b)-m.r.Len():]
	m.r.Reset(nil)
	return rest
}

// drainClose reads a little of an unwanted body so the connection can be
// reused, then closes it.
func drainClose(resp *http.Response) {
	if _, ok := resp.Body.(*memBody); ok {
		return // in memory already: nothing to drain, nothing to close
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
}
