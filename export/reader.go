package export

import (
	"archive/zip"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/privacykit/mpgdpr/internal/redact"
)

// Archive is an opened export archive. Its methods may be called
// concurrently when the underlying io.ReaderAt allows concurrent reads (as
// *os.File and *bytes.Reader do).
type Archive struct {
	files  []*zip.File
	byName map[string]*zip.File
	secret []byte
	cfg    config
	closer io.Closer    // the file opened by OpenFile; nil otherwise
	total  atomic.Int64 // bytes produced so far, checked against cfg.maxTotal
	size   int64        // the archive's size, for the archive-wide ratio
	// peaks[i] is the most bytes entry i has produced in one read, and
	// distinct their sum: the archive-wide ratio counts each entry's data
	// once, however often it is read (Walk, then ExtractTo).
	peaks    []atomic.Uint64
	distinct atomic.Int64
	index    map[*zip.File]int
	// secrets holds the secret, which errors must not show.
	secrets *redact.Set
}

// entryErr makes an *EntryError about the named entry, with the secret kept
// out of its name and message.
func (a *Archive) entryErr(name string, err error) *EntryError {
	return &EntryError{Name: a.redact(name), Err: err, secrets: a.secrets}
}

// redact replaces the secret in s.
func (a *Archive) redact(s string) string { return a.secrets.String(s) }

// FileInfo describes one archive entry as its central directory header
// declares it. The sizes are not trusted when reading.
type FileInfo struct {
	Name             string      // slash-separated name as stored
	UncompressedSize uint64      // declared size of the contents
	CompressedSize   uint64      // declared size of the stored data, including the 12-byte encryption header
	Modified         time.Time   // modification time
	Mode             fs.FileMode // permission and type bits, if the creator recorded them
	Method           uint16      // compression method: 0 Store, 8 Deflate
	Encrypted        bool        // traditional PKWARE encryption (flag bit 0)
}

// IsDir reports whether the entry is a directory.
func (fi FileInfo) IsDir() bool { return fi.Mode.IsDir() }

func infoOf(f *zip.File) FileInfo {
	return FileInfo{
		Name:             f.Name,
		UncompressedSize: f.UncompressedSize64,
		CompressedSize:   f.CompressedSize64,
		Modified:         f.Modified,
		Mode:             f.Mode(),
		Method:           f.Method,
		Encrypted:        f.Flags&flagEncrypted != 0,
	}
}

// Open reads the archive's directory from r, which holds size bytes.
// secret is the project's API secret; it may be empty only if no entry is
// encrypted. The entries themselves are read lazily. Closing the returned
// Archive does not close r.
//
// Open fails with ErrInvalidArchive if r is not a complete zip archive (its
// end record must end r, and its central directory end where the end record
// begins), ErrOverlappingEntries if entries share or overlap their data,
// ErrTooManyEntries, ErrDuplicateEntry if two entries share a name,
// ErrSecretRequired if an entry is encrypted and secret is empty, and
// ErrWrongSecret if the first encrypted entry's 12-byte encryption header
// does not check with secret. That check is cheap and catches 255 wrong
// secrets in 256; the rest are caught when an entry's data fails to verify
// (see ErrWrongSecret). Errors never contain the secret.
func Open(r io.ReaderAt, size int64, secret string, opts ...Option) (*Archive, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	zr, err := zip.NewReader(r, size)
	// With GODEBUG=zipinsecurepath=0, NewReader flags unsafe names but still
	// returns a usable reader; names are checked by ExtractTo instead.
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArchive, err)
	}
	if len(zr.File) > cfg.maxEntries {
		return nil, fmt.Errorf("%w: %d entries, limit %d", ErrTooManyEntries, len(zr.File), cfg.maxEntries)
	}
	a := &Archive{
		files:   zr.File,
		byName:  make(map[string]*zip.File, len(zr.File)),
		secret:  []byte(secret),
		cfg:     cfg,
		size:    size,
		secrets: redact.New(secret),
		peaks:   make([]atomic.Uint64, len(zr.File)),
		index:   make(map[*zip.File]int, len(zr.File)),
	}
	for i, f := range zr.File {
		a.index[f] = i
	}
	// "a", "a/" and "./a" would all land on the same path.
	cleaned := make(map[string]bool, len(zr.File))
	for _, f := range zr.File {
		key := path.Clean(strings.TrimSuffix(f.Name, "/"))
		if a.byName[f.Name] != nil || cleaned[key] {
			return nil, a.entryErr(f.Name, ErrDuplicateEntry)
		}
		a.byName[f.Name] = f
		cleaned[key] = true
		if f.Flags&flagEncrypted != 0 && secret == "" {
			return nil, a.entryErr(f.Name, ErrSecretRequired)
		}
	}
	if !cfg.skipLayout {
		if err := a.checkLayout(r, size); err != nil {
			return nil, err
		}
	}
	if err := a.checkSecret(); err != nil {
		return nil, err
	}
	return a, nil
}

// checkSecret tries the secret on the first entry with traditional
// encryption: its 12-byte header decrypts to a known last byte.
func (a *Archive) checkSecret() error {
	for _, f := range a.files {
		if f.Flags&flagEncrypted == 0 || f.Flags&flagStrongEncryption != 0 || f.Method == methodAES {
			continue
		}
		raw, err := f.OpenRaw()
		if err != nil {
			return a.entryErr(f.Name, fmt.Errorf("%w: %w", ErrCorrupt, err))
		}
		_, err = a.decryptHeader(f, raw)
		return err
	}
	return nil
}

// decryptHeader reads and checks an entry's encryption header from raw,
// and returns the cipher, ready for the data that follows.
func (a *Archive) decryptHeader(f *zip.File, raw io.Reader) (*zipCrypto, error) {
	var hdr [encHeaderLen]byte
	if _, err := io.ReadFull(raw, hdr[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("%w: encryption header truncated", ErrCorrupt)
		}
		return nil, a.entryErr(f.Name, err)
	}
	z := newZipCrypto(a.secret)
	z.decrypt(hdr[:])
	if hdr[encHeaderLen-1] != checkByte(&f.FileHeader) {
		return nil, a.entryErr(f.Name, ErrWrongSecret)
	}
	return z, nil
}

// OpenFile opens the archive stored at the named file; see Open. The caller
// must Close the Archive to release the file.
func OpenFile(name, secret string, opts ...Option) (*Archive, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("export: %w", err)
	}
	a, err := Open(f, st.Size(), secret, opts...)
	if err != nil {
		f.Close()
		return nil, err
	}
	a.closer = f
	return a, nil
}

// Close releases the file opened by OpenFile. For an Archive from Open it
// does nothing.
func (a *Archive) Close() error {
	if a.closer == nil {
		return nil
	}
	err := a.closer.Close()
	a.closer = nil
	return err
}

// Files lists the entries in archive order.
func (a *Archive) Files() []FileInfo {
	out := make([]FileInfo, len(a.files))
	for i, f := range a.files {
		out[i] = infoOf(f)
	}
	return out
}

// Open streams the decrypted, decompressed contents of the named entry.
//
// The data is verified as it streams: the final Read returns io.EOF only if
// the size and CRC-32 match the header. Any failure (ErrCorrupt,
// ErrWrongSecret, a limit) is returned instead of the bytes that revealed
// it and repeats on every later Read, so a caller that needs verified data
// must read to io.EOF before trusting what it got.
func (a *Archive) Open(name string) (io.ReadCloser, error) {
	f := a.byName[name]
	if f == nil {
		return nil, a.entryErr(name, fs.ErrNotExist)
	}
	return a.openEntry(f)
}

// Walk calls fn for every entry in archive order, directories included
// (their reader is normally empty), with a reader like the one from Open.
// After fn returns nil, Walk reads whatever fn left unread, so that an entry
// that fails verification fails the walk even if fn stopped early. Walk
// stops at the first error, from fn or from an entry, and returns it.
//
// Before reading anything, Walk refuses an archive whose declared sizes
// exceed the total limit, or the ratio limit applied to the archive's size.
func (a *Archive) Walk(fn func(FileInfo, io.Reader) error) error {
	if err := a.checkDeclaredTotal(); err != nil {
		return err
	}
	for _, f := range a.files {
		r, err := a.openEntry(f)
		if err != nil {
			return err
		}
		err = fn(infoOf(f), r)
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkDeclaredTotal refuses up front when the headers already announce
// more output than the remaining total budget.
func (a *Archive) checkDeclaredTotal() error {
	var sum uint64
	for _, f := range a.files {
		s, carry := bits.Add64(sum, f.UncompressedSize64, 0)
		if carry != 0 {
			s = ^uint64(0)
		}
		sum = s
	}
	remaining := a.cfg.maxTotal - a.total.Load()
	if remaining < 0 || sum > uint64(remaining) {
		return fmt.Errorf("%w: entries declare %d bytes, limit %d", ErrArchiveTooLarge, sum, a.cfg.maxTotal)
	}
	if ratioExceeded(sum, uint64(max(a.size, 1)), a.cfg.maxRatio) {
		return fmt.Errorf("%w: entries declare %d bytes from a %d-byte archive, limit %d:1", ErrRatioTooHigh, sum, a.size, a.cfg.maxRatio)
	}
	return nil
}

// checkEntry rejects, from the header alone, entries this package cannot or
// will not read.
func (a *Archive) checkEntry(f *zip.File) error {
	var err error
	switch {
	case f.Flags&flagStrongEncryption != 0 || f.Method == methodAES:
		err = ErrUnsupportedEncryption
	case f.Method != zip.Store && f.Method != zip.Deflate:
		err = fmt.Errorf("%w %d", ErrUnsupportedMethod, f.Method)
	case f.UncompressedSize64 > uint64(a.cfg.maxEntry):
		err = fmt.Errorf("%w: declares %d bytes, limit %d", ErrEntryTooLarge, f.UncompressedSize64, a.cfg.maxEntry)
	case ratioExceeded(f.UncompressedSize64, f.CompressedSize64, a.cfg.maxRatio):
		err = fmt.Errorf("%w: declares %d bytes from %d, limit %d:1", ErrRatioTooHigh,
			f.UncompressedSize64, f.CompressedSize64, a.cfg.maxRatio)
	}
	if err != nil {
		return a.entryErr(f.Name, err)
	}
	return nil
}

// ratioExceeded reports whether out > ratio*in, without overflow.
func ratioExceeded(out, in uint64, ratio int64) bool {
	hi, lo := bits.Mul64(uint64(ratio), in)
	return hi == 0 && out > lo
}

func (a *Archive) openEntry(f *zip.File) (*entryReader, error) {
	if err := a.checkEntry(f); err != nil {
		return nil, err
	}
	fail := func(err error) error { return a.entryErr(f.Name, err) }
	raw, err := f.OpenRaw()
	if err != nil {
		return nil, fail(fmt.Errorf("%w: %w", ErrCorrupt, err))
	}
	comp := &countReader{r: raw}
	var src io.Reader = comp
	encrypted := f.Flags&flagEncrypted != 0
	if encrypted {
		if len(a.secret) == 0 {
			return nil, fail(ErrSecretRequired)
		}
		z, err := a.decryptHeader(f, comp)
		if err != nil {
			return nil, err
		}
		comp.n = 0 // the ratio is about the data, not the header
		src = &decryptReader{r: comp, z: z}
	}
	var dec io.ReadCloser
	if f.Method == zip.Deflate {
		dec = flate.NewReader(src)
	} else {
		dec = io.NopCloser(src)
	}
	return &entryReader{
		a:         a,
		peak:      &a.peaks[a.index[f]],
		name:      f.Name,
		dec:       dec,
		comp:      comp,
		encrypted: encrypted,
		wantCRC:   f.CRC32,
		wantSize:  f.UncompressedSize64,
	}, nil
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// entryReader enforces the limits on the bytes actually produced and
// verifies size and CRC-32 at the end. Its first error is sticky.
type entryReader struct {
	a         *Archive
	peak      *atomic.Uint64 // this entry's slot in a.peaks
	name      string
	dec       io.ReadCloser
	comp      *countReader // compressed bytes consumed, for the ratio
	encrypted bool
	wantCRC   uint32
	wantSize  uint64
	crc       uint32
	n         uint64
	err       error
}

func (r *entryReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.dec.Read(p)
	if n > 0 {
		r.n += uint64(n)
		total := r.a.total.Add(int64(n))
		distinct := r.a.distinct.Load()
		for {
			old := r.peak.Load()
			if r.n <= old {
				break
			}
			if r.peak.CompareAndSwap(old, r.n) {
				distinct = r.a.distinct.Add(int64(r.n - old))
				break
			}
		}
		cfg := &r.a.cfg
		switch {
		case r.n > r.wantSize:
			return 0, r.corrupt("more data than the header declares")
		case r.n > uint64(cfg.maxEntry):
			return 0, r.fail(fmt.Errorf("%w: produced more than %d bytes", ErrEntryTooLarge, cfg.maxEntry))
		case total > cfg.maxTotal:
			return 0, r.fail(fmt.Errorf("%w: archive produced more than %d bytes", ErrArchiveTooLarge, cfg.maxTotal))
		case ratioExceeded(uint64(distinct), uint64(max(r.a.size, 1)), cfg.maxRatio):
			// Entries that share their data could each pass the entry
			// ratio; the archive as a whole cannot hold more than this.
			return 0, r.fail(fmt.Errorf("%w: archive produced %d bytes from %d, limit %d:1",
				ErrRatioTooHigh, distinct, r.a.size, cfg.maxRatio))
		case ratioExceeded(r.n, uint64(max(r.comp.n, 1)), cfg.maxRatio):
			return 0, r.fail(fmt.Errorf("%w: %d bytes from %d compressed, limit %d:1",
				ErrRatioTooHigh, r.n, r.comp.n, cfg.maxRatio))
		}
		r.crc = crc32.Update(r.crc, crcTable, p[:n])
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if r.n != r.wantSize {
			return 0, r.corrupt("less data than the header declares")
		}
		if r.crc != r.wantCRC {
			return 0, r.corrupt("CRC-32 mismatch")
		}
		r.err = io.EOF
		return n, io.EOF
	case isDataError(err):
		return 0, r.corrupt(err.Error())
	default:
		return 0, r.fail(err)
	}
}

// isDataError tells a bad compressed stream from an I/O error.
func isDataError(err error) bool {
	var ce flate.CorruptInputError
	var ie flate.InternalError
	return err == io.ErrUnexpectedEOF || errors.As(err, &ce) || errors.As(err, &ie)
}

func (r *entryReader) fail(err error) error {
	r.err = r.a.entryErr(r.name, err)
	return r.err
}

// corrupt records a verification failure. For an encrypted entry that got
// past the check byte, a wrong secret is as likely a cause as corruption.
func (r *entryReader) corrupt(detail string) error {
	var err error = fmt.Errorf("%w: %s", ErrCorrupt, detail)
	if r.encrypted {
		err = &badDataError{cause: err}
	}
	return r.fail(err)
}

// Close releases the decompressor. Reads after Close fail.
func (r *entryReader) Close() error {
	if r.err == nil || r.err == io.EOF {
		r.err = r.a.entryErr(r.name, fs.ErrClosed)
	}
	return r.dec.Close()
}
