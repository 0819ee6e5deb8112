// Package zipend finds a zip archive's end of central directory record and
// checks that it is consistent with the archive's size. The download code
// uses it to tell a complete export from a cut one, and package export to
// locate the central directory whose entries it checks for overlap.
//
// The check is strict, as befits archives produced by one writer and sent
// whole: the end record must end exactly at the end of the data (its
// comment included), and the central directory must end exactly where the
// end record (or the ZIP64 end record) begins. A cut archive fails it
// unless the cut lands, by a vanishing chance, right after an inner zip's
// end record whose directory also happens to line up with the outer offsets.
package zipend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Record signatures and fixed sizes (APPNOTE 4.3.14 - 4.3.16).
const (
	sigEnd         = 0x06054b50
	sigEnd64       = 0x06064b50
	sigLocator64   = 0x07064b50
	sigCentral     = 0x02014b50
	endLen         = 22
	locator64Len   = 20
	end64Len       = 56
	maxCommentLen  = 0xffff
	CentralSigSize = 4 // bytes of the signature that starts the central directory
)

// MaxTail is the most bytes from the end of an archive that Find reads: the
// end record with the longest comment, a ZIP64 locator and a ZIP64 end
// record with up to 64 KiB of extensible data.
const MaxTail = endLen + maxCommentLen + locator64Len + end64Len + 64<<10

// ErrIncomplete means the data does not end with a consistent end of
// central directory record: it is cut short, padded, or not a zip archive.
var ErrIncomplete = errors.New("not a complete zip archive")

// End describes a zip archive's central directory as its end record
// declares it.
type End struct {
	DirOffset int64  // where the central directory starts
	DirSize   int64  // its size in bytes
	Entries   uint64 // number of entries it holds
}

// Find reads the end record from r, which holds size bytes, and checks it.
// It reads at most MaxTail bytes from the end of r, and the first four bytes
// of the central directory when DirSize > 0 and checkDir is set. Every
// failure wraps ErrIncomplete, except read errors, which are returned
// as they are.
func Find(r io.ReaderAt, size int64, checkDir bool) (End, error) {
	fail := func(format string, args ...any) (End, error) {
		return End{}, fmt.Errorf("%w: %s", ErrIncomplete, fmt.Sprintf(format, args...))
	}
	if size < endLen {
		return fail("%d bytes, too short for an end record", size)
	}
	tailLen := min(size, int64(endLen+maxCommentLen))
	tail := make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil && err != io.EOF {
		return End{}, err
	}
	// The last record whose comment reaches exactly to the end.
	p := -1
	for i := len(tail) - endLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(tail[i:]) == sigEnd &&
			i+endLen+int(binary.LittleEndian.Uint16(tail[i+20:])) == len(tail) {
			p = i
			break
		}
	}
	if p < 0 {
		return fail("no end of central directory record at the end of %d bytes", size)
	}
	endPos := size - tailLen + int64(p)
	rec := tail[p : p+endLen]
	disk, dirDisk := binary.LittleEndian.Uint16(rec[4:]), binary.LittleEndian.Uint16(rec[6:])
	onDisk, total := binary.LittleEndian.Uint16(rec[8:]), binary.LittleEndian.Uint16(rec[10:])
	e := End{
		Entries:   uint64(total),
		DirSize:   int64(binary.LittleEndian.Uint32(rec[12:])),
		DirOffset: int64(binary.LittleEndian.Uint32(rec[16:])),
	}
	dirEnd := endPos
	if total == 0xffff || onDisk == 0xffff || e.DirSize == 0xffffffff || e.DirOffset == 0xffffffff || disk == 0xffff || dirDisk == 0xffff {
		var err error
		if e, dirEnd, err = find64(r, endPos); err != nil {
			return End{}, err
		}
	} else if disk != 0 || dirDisk != 0 || onDisk != total {
		return fail("a multi-disk archive")
	}
	if e.DirOffset < 0 || e.DirSize < 0 || e.DirOffset > dirEnd || e.DirSize != dirEnd-e.DirOffset {
		return fail("the central directory (%d bytes at %d) does not end where the end record begins (%d)", e.DirSize, e.DirOffset, dirEnd)
	}
	if e.Entries > 0 && e.DirSize == 0 {
		return fail("%d entries in an empty central directory", e.Entries)
	}
	if checkDir && e.DirSize > 0 {
		var sig [CentralSigSize]byte
		if _, err := r.ReadAt(sig[:], e.DirOffset); err != nil && err != io.EOF {
			return End{}, err
		}
		if binary.LittleEndian.Uint32(sig[:]) != sigCentral {
			return fail("no central directory at offset %d", e.DirOffset)
		}
	}
	return e, nil
}

// find64 reads the ZIP64 locator just before the end record at endPos, and
// the ZIP64 end record it points to, which must end at the locator.
func find64(r io.ReaderAt, endPos int64) (End, int64, error) {
	fail := func(format string, args ...any) (End, int64, error) {
		return End{}, 0, fmt.Errorf("%w: %s", ErrIncomplete, fmt.Sprintf(format, args...))
	}
	locPos := endPos - locator64Len
	if locPos < end64Len {
		return fail("ZIP64 fields without room for a ZIP64 end record")
	}
	var loc [locator64Len]byte
	if _, err := r.ReadAt(loc[:], locPos); err != nil && err != io.EOF {
		return End{}, 0, err
	}
	if binary.LittleEndian.Uint32(loc[:]) != sigLocator64 {
		return fail("ZIP64 fields without a ZIP64 locator")
	}
	if binary.LittleEndian.Uint32(loc[4:]) != 0 || binary.LittleEndian.Uint32(loc[16:]) != 1 {
		return fail("a multi-disk ZIP64 archive")
	}
	recPos := int64(binary.LittleEndian.Uint64(loc[8:]))
	if recPos < 0 || recPos > locPos-end64Len {
		return fail("the ZIP64 end record's offset %d is out of range", recPos)
	}
	var rec [end64Len]byte
	if _, err := r.ReadAt(rec[:], recPos); err != nil && err != io.EOF {
		return End{}, 0, err
	}
	if binary.LittleEndian.Uint32(rec[:]) != sigEnd64 {
		return fail("no ZIP64 end record at offset %d", recPos)
	}
	// The size field counts the record after its first 12 bytes.
	if n := binary.LittleEndian.Uint64(rec[4:]); n > uint64(locPos-recPos) || recPos+12+int64(n) != locPos {
		return fail("the ZIP64 end record does not end at its locator")
	}
	disk, dirDisk := binary.LittleEndian.Uint32(rec[16:]), binary.LittleEndian.Uint32(rec[20:])
	onDisk, total := binary.LittleEndian.Uint64(rec[24:]), binary.LittleEndian.Uint64(rec[32:])
	if disk != 0 || dirDisk != 0 || onDisk != total {
		return fail("a multi-disk ZIP64 archive")
	}
	size, off := binary.LittleEndian.Uint64(rec[40:]), binary.LittleEndian.Uint64(rec[48:])
	if size > 1<<62 || off > 1<<62 {
		return fail("ZIP64 directory size or offset out of range")
	}
	return End{Entries: total, DirSize: int64(size), DirOffset: int64(off)}, recPos, nil
}
