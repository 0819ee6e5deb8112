package mpgdprtest

import (
	"net"
	"net/http"
	"strconv"
	"time"
)

// Operation ids of the merged document, as recorded in Request.Op and
// matched by Fault.Op, plus OpDownload for the export download host.
const (
	OpCreateRetrieval = "createRetrieval"
	OpCheckRetrieval  = "checkRetrieval"
	OpCreateDeletion  = "createDeletion"
	OpCheckDeletion   = "checkDeletion"
	OpCancelDeletion  = "cancelDeletion"
	OpDownload        = "download"
)

// Reset says whether, and when, a fault drops the connection without an
// answer (the client sees a reset connection).
type Reset int

const (
	// NoReset answers normally.
	NoReset Reset = iota
	// ResetBeforeBody drops the connection before reading the request body:
	// nothing was processed.
	ResetBeforeBody
	// ResetAfterBody reads the whole request, then drops the connection
	// without processing it.
	ResetAfterBody
	// ResetAfterHandling processes the request (a create does create its
	// task) and drops the connection instead of answering: the case where
	// a client cannot know the outcome.
	ResetAfterHandling
)

// Fault is a failure injected into the next matching requests. A fault
// stands in for the network and Mixpanel's own infrastructure, so its
// answers are not held to the document and are not recorded as violations.
//
// The parts combine: Latency is waited first; then a Reset drops the
// connection, Status/Body replace the answer, or Truncate cuts it; with
// none of these, the request is served normally after the wait. A request
// that breaks the contract is answered 400 all the same, unless a Reset
// before handling drops it first.
type Fault struct {
	// Op limits the fault to one operation (OpCreateRetrieval, …, or
	// OpDownload for the download host). Empty matches every API request
	// but not downloads.
	Op string
	// Match, if set, must also accept the request.
	Match func(*http.Request) bool
	// Times is how many requests the fault hits; 0 means once.
	Times int

	// Latency delays the answer (or the reset).
	Latency time.Duration
	// Reset drops the connection instead of answering.
	Reset Reset
	// Status answers this code with an ErrorResponse body, or with Body if
	// set. 0 with a Body answers 200.
	Status int
	// RetryAfter is sent as the Retry-After header, if set.
	RetryAfter string
	// Body replaces the answer's body, for malformed answers: truncated
	// JSON, HTML from a proxy, the wrong shape. Sent as application/json.
	Body string
	// Truncate, if positive, sends the real answer's status and headers
	// (its full Content-Length included) but only its first Truncate
	// bytes, then drops the connection: a transfer cut short.
	Truncate int
}

type faultEntry struct {
	Fault
	left int
}

// answers reports whether the fault replaces the answer (rather than only
// delaying it).
func (f *Fault) answers() bool { return f.Status != 0 || f.Body != "" }

func (f *Fault) kind() string {
	switch {
	case f.Reset == ResetBeforeBody:
		return "reset-before-body"
	case f.Reset == ResetAfterBody:
		return "reset-after-body"
	case f.Reset == ResetAfterHandling:
		return "reset-after-handling"
	case f.Body != "":
		return "body"
	case f.Status != 0:
		return "status"
	case f.Truncate > 0:
		return "truncate"
	case f.Latency > 0:
		return "latency"
	}
	return "none"
}

// InjectFault queues f. Faults are matched in the order they were
// injected; each request takes at most one.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := f.Times
	if n <= 0 {
		n = 1
	}
	s.faults = append(s.faults, &faultEntry{Fault: f, left: n})
}

// FaultsLeft counts the injected fault hits not yet used, so a test can
// check that its faults were all exercised.
func (s *Server) FaultsLeft() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.left
	}
	return n
}

// ClearFaults drops every injected fault not yet used up.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFault removes one hit of the first fault matching the request.
func (s *Server) takeFault(op string, r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Op != "" && f.Op != op || f.Op == "" && op == OpDownload {
			continue
		}
		if f.Match != nil && !f.Match(r) {
			continue
		}
		f.left--
		if f.left == 0 {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		c := f.Fault
		return &c
	}
	return nil
}

// wait sleeps d, or until the client goes away or the server closes.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-s.closing:
	}
	return false
}

// reset drops the client's connection with a TCP RST, so it sees
// "connection reset by peer" rather than a clean close.
func reset(w http.ResponseWriter) { hangUp(w, true) }

// hangUp closes the client's connection under the HTTP server: abruptly
// (RST, which also discards whatever the client has not read yet) or
// cleanly (FIN, after everything written so far).
func hangUp(w http.ResponseWriter, abort bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // closes the connection all the same
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && abort {
		_ = tc.SetLinger(0)
	} else if buf != nil {
		_ = buf.Flush()
	}
	_ = conn.Close()
}

// emit sends a buffered answer, or, under a Truncate fault, its first
// bytes before dropping the connection.
func emit(w http.ResponseWriter, c *capture, f *Fault) {
	for k, v := range c.header {
		w.Header()[k] = v
	}
	if c.code == 0 {
		c.code = http.StatusOK
	}
	body := c.body.Bytes()
	if f == nil || f.Truncate <= 0 {
		w.WriteHeader(c.code)
		_, _ = w.Write(body)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(c.code)
	_, _ = w.Write(body[:min(f.Truncate, len(body))])
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush() // Hijack would drop what is still in the response's buffer
	}
	// A clean close: the client gets the bytes, then an unexpected EOF.
	hangUp(w, false)
}

// writeFault writes a fault's replacement answer.
func writeFault(w http.ResponseWriter, f *Fault) {
	code := f.Status
	if code == 0 {
		code = http.StatusOK
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	body := f.Body
	if body == "" {
		body = errorJSON("injected fault: HTTP " + http.StatusText(code))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
