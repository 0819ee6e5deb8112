package export

import (
	"archive/zip"
	"compress/flate"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"
)

// Writer builds an archive in the format of a Mixpanel export: every file
// entry is encrypted with traditional PKWARE encryption under the secret.
// Entries are streamed in constant memory: each is written with a data
// descriptor (flag bit 3), so its encryption header's check byte is the
// high byte of the DOS modification time, as Info-ZIP's zip -P does.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	zw     *zip.Writer
	secret []byte
	rand   io.Reader
	cur    *entryWriter
	fw     *flate.Writer // reused for every Deflate entry
	err    error         // sticky: after a failed write the archive is unusable
}

// WriterOption configures NewWriter.
type WriterOption func(*Writer)

// WithRandom sets the source of the random encryption header bytes, which
// is crypto/rand by default. Meant for reproducible tests only.
func WithRandom(r io.Reader) WriterOption {
	return func(w *Writer) { w.rand = r }
}

// NewWriter returns a Writer that writes an archive to w. With an empty
// secret, entries are not encrypted. Close must be called to finish the
// archive; it does not close w.
func NewWriter(w io.Writer, secret string, opts ...WriterOption) *Writer {
	zw := &Writer{zw: zip.NewWriter(w), secret: []byte(secret), rand: rand.Reader}
	for _, o := range opts {
		o(zw)
	}
	return zw
}

// Create adds a Deflate-compressed file entry named name, modified now, and
// returns a writer for its contents, valid until the next call to Create,
// CreateHeader or Close. A name ending in "/" adds a directory.
func (w *Writer) Create(name string) (io.Writer, error) {
	return w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()})
}

// CreateHeader is like Create but takes the entry's name, method (Store or
// Deflate), modification time (now, if zero) and mode (0600, if unset) from
// fh. The CRC, sizes, flags and versions are filled in by the Writer; fh
// itself is not modified.
func (w *Writer) CreateHeader(fh *zip.FileHeader) (io.Writer, error) {
	if err := w.finish(); err != nil {
		return nil, err
	}
	if fh.Method != zip.Store && fh.Method != zip.Deflate {
		return nil, fmt.Errorf("%w %d", ErrUnsupportedMethod, fh.Method)
	}
	h := *fh // zip.Writer keeps this pointer; we fill in the sizes later
	h.Extra = h.Extra[:len(h.Extra):len(h.Extra)]
	mod := h.Modified
	if mod.IsZero() {
		mod = time.Now()
	}
	setModified(&h, mod)
	h.CreatorVersion = creatorUnix<<8 | zipVersion20
	h.ReaderVersion = zipVersion20
	h.Flags &^= flagEncrypted | flagDataDescriptor | flagStrongEncryption
	if !h.NonUTF8 && utf8.ValidString(h.Name) && strings.ContainsFunc(h.Name, func(r rune) bool { return r >= utf8.RuneSelf }) {
		h.Flags |= flagUTF8
	}

	if strings.HasSuffix(h.Name, "/") {
		h.Method = zip.Store
		setSizes(&h, 0, 0, 0)
		if h.ExternalAttrs == 0 {
			h.SetMode(fs.ModeDir | dirMode)
		}
		return w.zw.CreateRaw(&h)
	}

	if h.ExternalAttrs == 0 {
		h.SetMode(fileMode)
	}
	h.Flags |= flagDataDescriptor
	if len(w.secret) > 0 {
		h.Flags |= flagEncrypted
	}
	raw, err := w.zw.CreateRaw(&h)
	if err != nil {
		return nil, err
	}
	e := &entryWriter{w: w, h: &h, comp: &countWriter{w: raw}}
	e.dst = e.comp
	if len(w.secret) > 0 {
		var hdr [encHeaderLen]byte
		if _, err := io.ReadFull(w.rand, hdr[:encHeaderLen-1]); err != nil {
			w.err = fmt.Errorf("export: reading random encryption header: %w", err)
			return nil, w.err
		}
		hdr[encHeaderLen-1] = checkByte(&h)
		enc := newEncryptWriter(e.comp, newZipCrypto(w.secret))
		if _, err := enc.Write(hdr[:]); err != nil {
			w.err = err
			return nil, err
		}
		e.dst = enc
	}
	if h.Method == zip.Deflate {
		// A flate.Writer holds about 1 MiB of state; reuse it across entries.
		if w.fw == nil {
			w.fw, _ = flate.NewWriter(e.dst, flate.DefaultCompression) // cannot fail for a valid level
		} else {
			w.fw.Reset(e.dst)
		}
		e.flate = w.fw
		e.dst = w.fw
	}
	w.cur = e
	return e, nil
}

// Close finishes the last entry and writes the central directory. It does
// not close the underlying writer.
func (w *Writer) Close() error {
	if err := w.finish(); err != nil {
		return err
	}
	return w.zw.Close()
}

// finish flushes the current entry and records its CRC and sizes, which
// zip.Writer writes in the data descriptor when the next entry starts.
func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	e := w.cur
	if e == nil {
		return nil
	}
	w.cur = nil
	e.done = true
	if e.flate != nil {
		if err := e.flate.Close(); err != nil {
			w.err = err
			return err
		}
	}
	setSizes(e.h, e.crc, uint64(e.comp.n), e.n)
	return nil
}

// errEntryDone is returned when writing to an entry after the next one was
// created or the Writer closed.
var errEntryDone = errors.New("export: write to a finished entry")

// entryWriter is the io.Writer handed out for one entry.
type entryWriter struct {
	w     *Writer
	h     *zip.FileHeader
	dst   io.Writer     // head of the chain: flate -> encrypt -> comp
	flate *flate.Writer // nil for Store
	comp  *countWriter  // counts what reaches the archive
	crc   uint32
	n     uint64
	done  bool
}

func (e *entryWriter) Write(p []byte) (int, error) {
	if e.done {
		return 0, errEntryDone
	}
	if e.w.err != nil {
		return 0, e.w.err
	}
	n, err := e.dst.Write(p)
	e.crc = crc32.Update(e.crc, crcTable, p[:n])
	e.n += uint64(n)
	if err != nil {
		e.w.err = err
	}
	return n, err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
