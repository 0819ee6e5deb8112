package export

import (
	"hash/crc32"
	"io"
)

// encHeaderLen is the size of the encryption header that precedes every
// encrypted entry's data (APPNOTE 6.1.3).
const encHeaderLen = 12

// crcTable is the CRC-32 table that ZipCrypto's key schedule is built on;
// APPNOTE specifies the same polynomial as the file checksum.
var crcTable = crc32.IEEETable

// zipCrypto holds the three 32-bit keys of the traditional PKWARE stream
// cipher (APPNOTE 6.1.5 - 6.1.7).
type zipCrypto struct {
	k0, k1, k2 uint32
}

// newZipCrypto initialises the keys from the password.
func newZipCrypto(password []byte) *zipCrypto {
	z := &zipCrypto{k0: 0x12345678, k1: 0x23456789, k2: 0x34567890}
	for _, b := range password {
		z.update(b)
	}
	return z
}

// crc32Byte is APPNOTE's crc32(old_crc, char): one step of the table-driven
// CRC without the usual pre/post inversion.
func crc32Byte(crc uint32, b byte) uint32 {
	return crcTable[byte(crc)^b] ^ crc>>8
}

// update is APPNOTE's update_keys: it mixes one plaintext byte into the keys.
func (z *zipCrypto) update(b byte) {
	z.k0 = crc32Byte(z.k0, b)
	z.k1 = (z.k1+z.k0&0xff)*134775813 + 1
	z.k2 = crc32Byte(z.k2, byte(z.k1>>24))
}

// stream is APPNOTE's decrypt_byte: the next keystream byte.
func (z *zipCrypto) stream() byte {
	t := uint16(z.k2) | 2
	return byte((uint32(t) * uint32(t^1)) >> 8)
}

// decrypt decrypts p in place.
func (z *zipCrypto) decrypt(p []byte) {
	for i, c := range p {
		b := c ^ z.stream()
		z.update(b)
		p[i] = b
	}
}

// encrypt encrypts src into dst, which must be at least as long as src. The
// keys are updated with the plaintext, as for decryption.
func (z *zipCrypto) encrypt(dst, src []byte) {
	for i, b := range src {
		s := z.stream()
		z.update(b)
		dst[i] = b ^ s
	}
}

// decryptReader decrypts everything read from r.
type decryptReader struct {
	r io.Reader
	z *zipCrypto
}

func (d *decryptReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.z.decrypt(p[:n])
	return n, err
}

// encryptWriter encrypts everything written to it before passing it on to w.
// It encrypts into its own buffer because io.Writer must not modify p.
type encryptWriter struct {
	w   io.Writer
	z   *zipCrypto
	buf []byte
}

func newEncryptWriter(w io.Writer, z *zipCrypto) *encryptWriter {
	return &encryptWriter{w: w, z: z, buf: make([]byte, 32<<10)}
}

func (e *encryptWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), len(e.buf))
		e.z.encrypt(e.buf, p[:n])
		// The keys have already advanced past these bytes, so a short write
		// cannot be retried; report it as an error.
		m, err := e.w.Write(e.buf[:n])
		written += m
		if err != nil {
			return written, err
		}
		if m != n {
			return written, io.ErrShortWrite
		}
		p = p[n:]
	}
	return written, nil
}
