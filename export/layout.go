package export

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/privacykit/mpgdpr/internal/zipend"
)

// Record layouts (APPNOTE 4.3.7 and 4.3.12).
const (
	sigLocal     = 0x04034b50
	sigCentral   = 0x02014b50
	localLen     = 30
	centralLen   = 46
	zip64ExtraID = 0x0001
	maxUint32    = 0xffffffff
)

// span is where one entry's local header and data lie.
type span struct {
	f         *zip.File
	header    int64 // local header offset
	dataStart int64
	dataEnd   int64
}

// checkLayout refuses an archive whose entries share or overlap their local
// data, or reach into the central directory, as Python's zipfile does
// ("Overlapped entries"): several directory entries pointing into one
// compressed stream are how a small archive expands far beyond what its
// size could hold. It also requires each local header's name to be the
// directory's name for that entry, so that every tool reads the same file
// under the same name.
//
// archive/zip does not expose the local header offsets, so the central
// directory is walked a second time here; it must hold the same entries in
// the same order.
func (a *Archive) checkLayout(r io.ReaderAt, size int64) error {
	end, err := zipend.Find(r, size, true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArchive, err)
	}
	if end.Entries != uint64(len(a.files)) {
		return fmt.Errorf("%w: the end record counts %d entries, the directory holds %d", ErrInvalidArchive, end.Entries, len(a.files))
	}
	spans := make([]span, len(a.files))
	p := end.DirOffset
	var rec [centralLen]byte
	name := make([]byte, 0, 256)
	for i, f := range a.files {
		fail := func(format string, args ...any) error {
			return a.entryErr(f.Name, fmt.Errorf("%w: %s", ErrInvalidArchive, fmt.Sprintf(format, args...)))
		}
		if err := readAt(r, rec[:], p); err != nil || binary.LittleEndian.Uint32(rec[:]) != sigCentral {
			return fail("central directory header %d unreadable", i)
		}
		n := int(binary.LittleEndian.Uint16(rec[28:]))
		m := int(binary.LittleEndian.Uint16(rec[30:]))
		k := int(binary.LittleEndian.Uint16(rec[32:]))
		name = slices.Grow(name[:0], n+m)[:n+m]
		if err := readAt(r, name, p+centralLen); err != nil {
			return fail("central directory header %d unreadable", i)
		}
		if string(name[:n]) != f.Name {
			return fail("the central directory does not read the same twice")
		}
		off := int64(binary.LittleEndian.Uint32(rec[42:]))
		if off == maxUint32 {
			if off, err = zip64Offset(rec[:], name[n:]); err != nil {
				return fail("%v", err)
			}
		}
		spans[i] = span{f: f, header: off}
		p += int64(centralLen + n + m + k)
	}
	if p != end.DirOffset+end.DirSize {
		return fmt.Errorf("%w: the central directory's entries do not fill it", ErrInvalidArchive)
	}
	var local [localLen]byte
	for i := range spans {
		s := &spans[i]
		fail := func(format string, args ...any) error {
			return a.entryErr(s.f.Name, fmt.Errorf("%w: %s", ErrInvalidArchive, fmt.Sprintf(format, args...)))
		}
		if s.header < 0 || s.header > end.DirOffset-localLen {
			return fail("local header offset %d out of range", s.header)
		}
		if err := readAt(r, local[:], s.header); err != nil || binary.LittleEndian.Uint32(local[:]) != sigLocal {
			return fail("no local header at offset %d", s.header)
		}
		n := int64(binary.LittleEndian.Uint16(local[26:]))
		m := int64(binary.LittleEndian.Uint16(local[28:]))
		if n != int64(len(s.f.Name)) {
			return fail("the local header names another file")
		}
		name = slices.Grow(name[:0], int(n))[:n]
		if err := readAt(r, name, s.header+localLen); err != nil || string(name) != s.f.Name {
			return fail("the local header names another file")
		}
		s.dataStart = s.header + localLen + n + m
		s.dataEnd = s.dataStart + int64(min(s.f.CompressedSize64, uint64(size)))
		if s.dataEnd > end.DirOffset {
			return a.entryErr(s.f.Name, fmt.Errorf("%w: its data reaches into the central directory", ErrOverlappingEntries))
		}
	}
	slices.SortFunc(spans, func(x, y span) int { return cmpInt64(x.header, y.header) })
	for i := 1; i < len(spans); i++ {
		if prev := spans[i-1]; prev.dataEnd > spans[i].header {
			return a.entryErr(spans[i].f.Name, fmt.Errorf("%w: overlaps the data of %q", ErrOverlappingEntries, a.redact(prev.f.Name)))
		}
	}
	return nil
}

func cmpInt64(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// zip64Offset reads the local header offset from a ZIP64 extra field. Its
// values appear in a fixed order, each only if the 32-bit field is full.
func zip64Offset(rec, extra []byte) (int64, error) {
	for len(extra) >= 4 {
		id := binary.LittleEndian.Uint16(extra)
		sz := int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if sz > len(extra) {
			break
		}
		if id == zip64ExtraID {
			field := extra[:sz]
			for _, at := range []int{24, 20} { // uncompressed, then compressed size
				if binary.LittleEndian.Uint32(rec[at:]) == maxUint32 {
					if len(field) < 8 {
						return 0, errors.New("short ZIP64 extra field")
					}
					field = field[8:]
				}
			}
			if len(field) < 8 {
				return 0, errors.New("short ZIP64 extra field")
			}
			off := binary.LittleEndian.Uint64(field)
			if off > 1<<62 {
				return 0, errors.New("ZIP64 offset out of range")
			}
			return int64(off), nil
		}
		extra = extra[sz:]
	}
	return 0, errors.New("no ZIP64 extra field for a full offset")
}

// readAt fills p from r at off.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
