package export

//lint:file-ignore SA1019 ZipCrypto's check byte is defined on the raw MS-DOS time, and raw entries written with CreateRaw need the legacy 32-bit size fields filled in by hand; archive/zip marks both deprecated.

import (
	"archive/zip"
	"encoding/binary"
	"math"
	"time"
)

// General purpose bit flags and constants from APPNOTE 4.4.
const (
	flagEncrypted        = 0x1    // bit 0: traditional (or strong) encryption
	flagDataDescriptor   = 0x8    // bit 3: CRC and sizes follow the data
	flagStrongEncryption = 0x40   // bit 6: PKWARE strong encryption
	flagUTF8             = 0x800  // bit 11: name is UTF-8
	methodAES            = 99     // WinZip AES marker method
	extTimeExtraID       = 0x5455 // Info-ZIP extended timestamp
	creatorUnix          = 3      // "version made by" host: Unix, so modes are kept
	zipVersion20         = 20     // needed for Deflate and traditional encryption
	zipVersion45         = 45     // needed for ZIP64
)

// checkByte is the value the last byte of a decrypted encryption header must
// have. With a data descriptor the writer did not know the CRC when it wrote
// the header, so Info-ZIP (and we) use the high byte of the DOS time instead
// of the CRC's high byte.
func checkByte(fh *zip.FileHeader) byte {
	if fh.Flags&flagDataDescriptor != 0 {
		return byte(fh.ModifiedTime >> 8)
	}
	return byte(fh.CRC32 >> 24)
}

// setModified stores t in the MS-DOS date and time fields and, when there
// is no extra field yet, in an extended timestamp, as zip.Writer.CreateHeader
// would do; CreateRaw leaves that to us.
func setModified(fh *zip.FileHeader, t time.Time) {
	fh.Modified = t
	y := max(t.Year(), 1980) // DOS time cannot go earlier
	fh.ModifiedDate = uint16(t.Day() + int(t.Month())<<5 + (y-1980)<<9)
	fh.ModifiedTime = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	if len(fh.Extra) == 0 {
		var b [9]byte
		binary.LittleEndian.PutUint16(b[0:], extTimeExtraID)
		binary.LittleEndian.PutUint16(b[2:], 5) // flags byte + one uint32
		b[4] = 1                                // modification time present
		binary.LittleEndian.PutUint32(b[5:], uint32(t.Unix()))
		fh.Extra = b[:]
	}
}

// setSizes records the CRC and sizes of a raw entry once its data is
// written; zip.Writer reads them back for the data descriptor and the
// central directory.
func setSizes(fh *zip.FileHeader, crc uint32, compressed, uncompressed uint64) {
	fh.CRC32 = crc
	fh.CompressedSize64 = compressed
	fh.UncompressedSize64 = uncompressed
	fh.CompressedSize = uint32(min(compressed, math.MaxUint32))
	fh.UncompressedSize = uint32(min(uncompressed, math.MaxUint32))
	if compressed >= math.MaxUint32 || uncompressed >= math.MaxUint32 {
		fh.ReaderVersion = zipVersion45
	}
}
