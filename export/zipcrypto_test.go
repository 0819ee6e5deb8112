package export

import (
	"bytes"
	"encoding/hex"
	"io"
	"testing"
)

// The expected values come from an independent implementation of APPNOTE
// 6.1 (a few lines of Python with its own CRC table).
func TestZipCryptoKnownAnswer(t *testing.T) {
	z := newZipCrypto([]byte("s3cret-api-key"))
	if z.k0 != 0x29690785 || z.k1 != 0x92427ddd || z.k2 != 0x8ad6ccfe {
		t.Fatalf("keys = %#x %#x %#x", z.k0, z.k1, z.k2)
	}
	plain := []byte("hello, world\n")
	got := make([]byte, len(plain))
	z.encrypt(got, plain)
	if want := "f13f53401977931f6874d2b01d"; hex.EncodeToString(got) != want {
		t.Fatalf("ciphertext = %x, want %s", got, want)
	}
	newZipCrypto([]byte("s3cret-api-key")).decrypt(got)
	if !bytes.Equal(got, plain) {
		t.Fatalf("decrypt = %q", got)
	}
}

func TestZipCryptoStreams(t *testing.T) {
	plain := testData(100_000, 3)
	var ct bytes.Buffer
	// A writer that accepts one byte at a time checks that chunking in
	// encryptWriter does not disturb the key stream.
	w := newEncryptWriter(&ct, newZipCrypto([]byte(testSecret)))
	for _, chunk := range [][]byte{plain[:1], plain[1:40000], plain[40000:]} {
		if n, err := w.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if bytes.Equal(ct.Bytes()[:100], plain[:100]) {
		t.Fatal("ciphertext equals plaintext")
	}
	got, err := io.ReadAll(&decryptReader{r: io.LimitReader(&ct, 1<<30), z: newZipCrypto([]byte(testSecret))})
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip failed: %v", err)
	}
}

func TestEncryptWriterShortWrite(t *testing.T) {
	w := newEncryptWriter(shortWriter{}, newZipCrypto([]byte("x")))
	if _, err := w.Write([]byte("abc")); err != io.ErrShortWrite {
		t.Fatalf("err = %v, want io.ErrShortWrite", err)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) - 1, nil }
