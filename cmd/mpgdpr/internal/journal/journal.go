// Package journal is the durable record of one bulk job of the mpgdpr
// command: which distinct IDs were about to be sent in which request, what
// became of each request, and what became of each task. It is what lets a
// job that was interrupted (Ctrl-C, a crash, SIGKILL, a reboot) be resumed
// without losing an ID and without filing one twice.
//
// A journal is a file of JSON lines. The first line is a Header that names
// the job (command, compliance and disclosure types, API host, a digest of
// the ID list) and holds no credential. Every later line is a Record. Each
// line is written with a single write and synced to stable storage before
// Append returns, and a request is sent only after its "sending" record has
// been synced, so whatever the journal says about a request is true:
//
//   - sending with no later outcome: the process stopped while the request
//     may have been on its way. Mixpanel may or may not have filed it.
//   - accepted: Mixpanel filed it as TaskID.
//   - conflict: Mixpanel refused it with 409 because IDs already have a
//     deletion running; IDs lists them, TaskIDs the running tasks. The
//     request's other IDs were not filed and are sent again.
//   - unknown: the request may or may not have been filed.
//   - unsent: the request was certainly not filed (refused, or never sent).
//
// Only the final line can be torn by a crash (it lacks its newline or does
// not parse); Open drops it, which is safe by the ordering above: a lost
// "sending" line belongs to a request that was never sent, and a lost
// outcome leaves its request "sending", that is, unknown.
//
// The file holds distinct IDs, which are personal data: it is created
// with mode 0600.
package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/internal/digest"
	"github.com/privacykit/mpgdpr/internal/safefile"
)

// Version is the format version written in every header.
const Version = 1

// Record states.
const (
	Sending    = "sending"    // a request is about to be sent: Chunk, IDs
	Accepted   = "accepted"   // Chunk was filed as TaskID
	Conflict   = "conflict"   // Chunk drew a 409: IDs are covered by TaskIDs
	Unknown    = "unknown"    // Chunk may or may not have been filed: Error
	Unsent     = "unsent"     // Chunk was certainly not filed: Error
	Finished   = "finished"   // TaskID reached the terminal Status
	Downloaded = "downloaded" // TaskID's export was saved at Path (Bytes, Files)
	Resumed    = "resumed"    // a later run took the job up again (informational)
)

// Header is the first line of a journal: what the job is. It holds no
// credential and no distinct ID, only a digest of the list.
type Header struct {
	Type       string    `json:"type"` // always "header"
	Version    int       `json:"v"`
	Command    string    `json:"command"` // delete or retrieve
	Compliance string    `json:"compliance"`
	Disclosure string    `json:"disclosure,omitempty"`
	API        string    `json:"api"` // the API host (and port), never a full URL: it could hold credentials
	IDs        int       `json:"ids"` // distinct IDs in the job
	IDsSHA256  string    `json:"ids_sha256"`
	ChunkSize  int       `json:"chunk_size"` // informational: a resumed run may use another
	Created    time.Time `json:"created"`
}

// Key is a short digest of what makes two headers the same job, suitable
// for a default file name.
func (h Header) Key() string {
	sum := sha256.Sum256([]byte(strings.Join([]string{
		fmt.Sprint(Version), h.Command, h.Compliance, h.Disclosure, h.API, h.IDsSHA256,
	}, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// differences lists how h (the journal's) differs from want (this run's).
func (h Header) differences(want Header) []string {
	var d []string
	diff := func(what, have, want string) {
		if have != want {
			d = append(d, fmt.Sprintf("%s is %q in the journal, %q now", what, have, want))
		}
	}
	diff("format version", fmt.Sprint(h.Version), fmt.Sprint(want.Version))
	diff("command", h.Command, want.Command)
	diff("compliance type", h.Compliance, want.Compliance)
	diff("disclosure type", h.Disclosure, want.Disclosure)
	diff("API host", h.API, want.API)
	if h.IDs != want.IDs || h.IDsSHA256 != want.IDsSHA256 {
		d = append(d, fmt.Sprintf("the ID list differs (%s in the journal, %d now)", words.Count(h.IDs, "distinct ID"), want.IDs))
	}
	return d
}

// DigestIDs is the digest recorded in Header.IDsSHA256: SHA-256 over the
// distinct IDs in sorted order, each prefixed by its length, so that the
// same set of people gives the same digest whatever the order of the input.
func DigestIDs(ids []string) string {
	s := slices.Clone(ids)
	slices.Sort(s)
	s = slices.Compact(s)
	return digest.Parts(s...)
}

// Record is one event of the job.
type Record struct {
	State   string    `json:"state"`
	Chunk   int       `json:"chunk,omitempty"`
	TaskID  string    `json:"task_id,omitempty"`
	Status  string    `json:"status,omitempty"`
	TaskIDs []string  `json:"task_ids,omitempty"`
	Path    string    `json:"path,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`
	Files   int       `json:"files,omitempty"`
	Error   string    `json:"error,omitempty"`
	Time    time.Time `json:"time"`
	IDs     []string  `json:"ids,omitempty"`
}

// Errors Open returns, for errors.Is.
var (
	// ErrMismatch: the journal belongs to another job (see *MismatchError).
	ErrMismatch = errors.New("journal belongs to another job")
	// ErrLocked: another process has the journal open.
	ErrLocked = errors.New("journal is in use by another process")
	// ErrCorrupt: a line other than the last does not make sense.
	ErrCorrupt = errors.New("journal is corrupt")
	// ErrBroken: an earlier write failed; nothing more is written.
	ErrBroken = errors.New("journal write failed earlier")
	// ErrNotRegular: the path names a directory, a device, a pipe or a
	// socket, which Open refuses before opening it (reading /dev/zero or a
	// FIFO would never end).
	ErrNotRegular = errors.New("journal is not a regular file")
	// ErrTooLarge: the file is larger than any journal of the job could be
	// (see MaxSize); it is refused before it is read into memory.
	ErrTooLarge = errors.New("file is too large to be this job's journal")
)

// MaxSize bounds the size of a journal for a job of n distinct IDs totalling
// idBytes bytes: a journal records each ID in the requests that carried it
// (one, plus a resubmission or two after an unknown outcome or a 409) and
// a few hundred bytes per request and per task. MaxSize allows 64 MiB plus
// 100 times the IDs as JSON at their largest (6 bytes per byte, for
// escaped characters, plus quotes and a comma), far above what a job
// writes, and far below a disk image or a log someone pointed --journal at.
func MaxSize(n int, idBytes int64) int64 {
	return 64<<20 + 100*(6*idBytes+3*int64(n))
}

// MismatchError says how a journal's header differs from the job being run.
type MismatchError struct {
	Path        string
	Differences []string
}

// Error describes the mismatch between the journal and this run.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("journal %s belongs to another job: %s", e.Path, strings.Join(e.Differences, "; "))
}

// Is matches ErrMismatch.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }

// Journal is an open journal. Its methods are safe for concurrent use.
type Journal struct {
	mu     sync.Mutex // serialises writes
	f      *os.File
	path   string
	now    func() time.Time
	broken error
	st     *State
	chain  hashChain // each line's chained hash (chain.go)
}

// Opened tells what Open found.
type Opened struct {
	// Resumed: the journal existed and its records were replayed.
	Resumed bool
	// DroppedTail: the last line was torn by a crash and was removed.
	DroppedTail bool
}

// Open opens the journal at path for the job h, creating it (with h as its
// header) if it does not exist, and replays it otherwise. It fails with a
// *MismatchError if the existing journal is for another job, ErrLocked if
// another process has it open, and ErrCorrupt if it cannot be read.
// The journal stays locked until Close.
//
// A path that is not a regular file (ErrNotRegular) or a file larger than
// maxSize bytes (ErrTooLarge; 0: no limit) is refused before it is read.
func Open(path string, h Header, maxSize int64) (*Journal, Opened, error) {
	h.Type, h.Version = "header", Version
	if fi, err := os.Stat(path); err == nil {
		if err := checkFile(path, fi, maxSize); err != nil {
			return nil, Opened{}, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, Opened{}, err
	}
	// The file opened may not be the one looked at: check it again.
	if fi, err := f.Stat(); err != nil || checkFile(path, fi, maxSize) != nil {
		_ = f.Close()
		if err == nil {
			err = checkFile(path, fi, maxSize)
		}
		return nil, Opened{}, err
	}
	// The lock keeps two runs from resuming the same job at once (each
	// would file the same IDs); the kernel releases it however the process
	// ends. Where the system has no file locks, Open fails rather than
	// run unlocked.
	if err := safefile.TryLock(f); err != nil {
		_ = f.Close()
		if errors.Is(err, safefile.ErrLocked) {
			return nil, Opened{}, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, Opened{}, fmt.Errorf("locking %s: %w", path, err)
	}
	j := &Journal{f: f, path: path, now: time.Now, st: newState()}
	op, err := j.load(h, maxSize)
	if err != nil {
		_ = f.Close()
		return nil, Opened{}, err
	}
	return j, op, nil
}

// checkFile refuses what cannot be a journal of at most maxSize bytes.
func checkFile(path string, fi os.FileInfo, maxSize int64) error {
	if !fi.Mode().IsRegular() {
		what := "not a regular file"
		switch {
		case fi.IsDir():
			what = "a directory"
		case fi.Mode()&os.ModeNamedPipe != 0:
			what = "a named pipe"
		case fi.Mode()&os.ModeDevice != 0:
			what = "a device"
		case fi.Mode()&os.ModeSocket != 0:
			what = "a socket"
		}
		return fmt.Errorf("%s: %w: it is %s", path, ErrNotRegular, what)
	}
	if maxSize > 0 && fi.Size() > maxSize {
		return fmt.Errorf("%s: %w (%d bytes; a journal of this job stays under %d): is it the right path?", path, ErrTooLarge, fi.Size(), maxSize)
	}
	return nil
}

func (j *Journal) load(h Header, maxSize int64) (Opened, error) {
	// Read through the locked descriptor, whose size was checked, and no
	// more than allowed should it grow meanwhile.
	if _, err := j.f.Seek(0, 0); err != nil {
		return Opened{}, err
	}
	var r io.Reader = j.f
	limited := &io.LimitedReader{R: j.f, N: maxSize + 1}
	if maxSize > 0 {
		r = limited
	}
	info, err := Read(r, func(e Entry) error {
		if e.Header != nil {
			if d := e.Header.differences(h); len(d) > 0 {
				return &MismatchError{Path: j.path, Differences: d}
			}
			j.st.Header = *e.Header
		} else if err := j.st.apply(*e.Record, false); err != nil {
			return fmt.Errorf("%w at line %d: %v", ErrCorrupt, e.Line, err)
		}
		j.chain.follow(e.Raw, e.Header != nil)
		return nil
	})
	if maxSize > 0 && limited.N == 0 { // it holds more than maxSize bytes
		return Opened{}, fmt.Errorf("%s: %w (it grew past %d bytes while being read)", j.path, ErrTooLarge, maxSize)
	}
	var mm *MismatchError
	switch {
	case errors.As(err, &mm):
		return Opened{}, err
	case err != nil:
		return Opened{}, fmt.Errorf("%s: %w", j.path, err)
	}
	if info.Lines == 0 {
		if len(info.Tail) == 0 {
			return Opened{}, j.create(h)
		}
		// Not even the header survived: nothing was ever sent. Only what a
		// torn header write leaves (a prefix of a header, or zeros) is
		// emptied: any other file was not written by this command.
		if !tornHeader(info.Tail) {
			return Opened{}, fmt.Errorf("%s: %w: the file holds no journal header (is it the right path?)", j.path, ErrCorrupt)
		}
		if err := j.truncate(0); err != nil {
			return Opened{}, err
		}
		return Opened{DroppedTail: true}, j.create(h)
	}
	op := Opened{Resumed: true, DroppedTail: info.DroppedTail}
	if op.DroppedTail {
		if err := j.truncate(info.Good); err != nil {
			return Opened{}, err
		}
	}
	if _, err := j.f.Seek(0, 2); err != nil {
		return Opened{}, err
	}
	return op, nil
}

// headerStart is how every header line begins (Header's first field).
var headerStart = []byte(`{"type":"header"`)

// tornHeader reports whether data, which holds no newline, is what a crash
// during the header's write can leave: a part of its first bytes, or
// blocks of zeros.
func tornHeader(data []byte) bool {
	if len(bytes.Trim(data, "\x00")) == 0 {
		return true
	}
	n := min(len(data), len(headerStart))
	return bytes.Equal(data[:n], headerStart[:n])
}

func (j *Journal) truncate(n int64) error {
	if err := j.f.Truncate(n); err != nil {
		return fmt.Errorf("%s: dropping a torn last line: %w", j.path, err)
	}
	return j.f.Sync()
}

func (j *Journal) create(h Header) error {
	if h.Created.IsZero() {
		h.Created = j.now().UTC()
	}
	j.chain = hashChain{on: true}
	if err := j.writeLine(h); err != nil {
		return err
	}
	// Make the new file's directory entry durable too.
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	j.st.Header = h
	return nil
}

// writeLine writes v as one line with a single write, then syncs.
func (j *Journal) writeLine(v any) error {
	if j.broken != nil {
		return fmt.Errorf("%w: %v", ErrBroken, j.broken)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(j.chain.link(b), '\n')
	if _, err := j.f.Write(b); err != nil {
		j.broken = err
		return fmt.Errorf("writing journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		j.broken = err
		return fmt.Errorf("syncing journal %s: %w", j.path, err)
	}
	return nil
}

// Append checks r against the journal so far, writes it durably and
// applies it. An error means r is not in the journal (or, after a write
// error, that the journal may be unusable: every later Append fails).
func (j *Journal) Append(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if r.Time.IsZero() {
		r.Time = j.now().UTC()
	}
	if err := j.st.apply(r, true); err != nil {
		return fmt.Errorf("journal %s: refusing record: %w", j.path, err)
	}
	if err := j.writeLine(r); err != nil {
		return err
	}
	return j.st.apply(r, false)
}

// State is the journal's content so far.
func (j *Journal) State() *State { return j.st }

// Path is the journal's file name.
func (j *Journal) Path() string { return j.path }

// Close releases the lock and the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}
