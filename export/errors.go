package export

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/privacykit/mpgdpr/internal/redact"
)

// Sentinel errors. Errors returned by this package wrap them, so test with
// errors.Is. No error ever contains the secret.
var (
	// ErrWrongSecret means an encrypted entry did not decrypt with the given
	// secret. It is detected by the encryption header's check byte and, for
	// the 1 in 256 wrong secrets that pass that check, by the failure of
	// decompression or of the CRC-32 afterwards; in that second case the
	// error also matches ErrCorrupt, as the two causes look the same.
	ErrWrongSecret = errors.New("export: wrong secret")

	// ErrSecretRequired means the archive has encrypted entries but the
	// secret given was empty.
	ErrSecretRequired = errors.New("export: archive is encrypted but no secret was given")

	// ErrCorrupt means an entry's data failed verification: bad compressed
	// stream, CRC-32 mismatch, truncated data, or more or fewer bytes than
	// the header declares.
	ErrCorrupt = errors.New("export: corrupt entry data")

	// ErrInvalidArchive means the input is not a readable zip archive, for
	// example because it is truncated.
	ErrInvalidArchive = errors.New("export: not a valid zip archive")

	// ErrOverlappingEntries means two entries share or overlap their data,
	// or an entry's data runs into the central directory: the shape of a
	// zip bomb that makes a small archive expand without bound. It also
	// matches ErrInvalidArchive.
	ErrOverlappingEntries = fmt.Errorf("%w: entries overlap", ErrInvalidArchive)

	// ErrUnsupportedMethod means an entry uses a compression method other
	// than Store (0) or Deflate (8).
	ErrUnsupportedMethod = errors.New("export: unsupported compression method")

	// ErrUnsupportedEncryption means an entry uses an encryption scheme other
	// than traditional PKWARE encryption (for example AES or PKWARE strong
	// encryption).
	ErrUnsupportedEncryption = errors.New("export: unsupported encryption")

	// ErrDuplicateEntry means two entries have the same name, or names that
	// would extract to the same path.
	ErrDuplicateEntry = errors.New("export: duplicate entry")

	// ErrUnsafePath means an entry would be written outside the target
	// directory, through a symbolic link, or is not a regular file or
	// directory.
	ErrUnsafePath = errors.New("export: unsafe path")

	// ErrLimit is matched by every limit error below.
	ErrLimit = errors.New("export: limit exceeded")

	// ErrTooManyEntries means the archive has more entries than allowed.
	ErrTooManyEntries = &limitError{"too many entries"}

	// ErrEntryTooLarge means an entry declares or produces more bytes than
	// the per-entry limit.
	ErrEntryTooLarge = &limitError{"entry too large"}

	// ErrArchiveTooLarge means the archive declares or produces more bytes in
	// total than allowed.
	ErrArchiveTooLarge = &limitError{"total uncompressed size too large"}

	// ErrRatioTooHigh means an entry, or the archive as a whole, expands
	// more than the allowed compression ratio, the mark of a decompression
	// bomb.
	ErrRatioTooHigh = &limitError{"compression ratio too high"}
)

// limitError is the type of the limit sentinels, so that each one also
// matches ErrLimit.
type limitError struct{ msg string }

func (e *limitError) Error() string        { return "export: limit exceeded: " + e.msg }
func (e *limitError) Is(target error) bool { return target == ErrLimit }

// EntryError records which archive entry an error is about. It wraps one of
// the sentinel errors, or an I/O error.
type EntryError struct {
	// Name is the entry name as stored in the archive, except that the
	// secret, should the name contain it, is replaced by REDACTED.
	Name string
	Err  error

	secrets *redact.Set // the secret, kept out of Error
}

// Error formats the error with the entry name quoted, since names come from
// the archive and may hold anything. The secret never appears in it, in
// the name or in the underlying error, raw, quoted or URL-escaped.
func (e *EntryError) Error() string {
	return e.secrets.String("export: entry " + strconv.Quote(e.Name) + ": " + strings.TrimPrefix(e.Err.Error(), "export: "))
}

// Unwrap returns the underlying error.
func (e *EntryError) Unwrap() error { return e.Err }

// badDataError is returned when an encrypted entry passed the check byte but
// its data does not verify. A wrong secret and corrupt ciphertext cannot be
// told apart at that point, so it matches both ErrWrongSecret and ErrCorrupt.
type badDataError struct{ cause error }

func (e *badDataError) Error() string {
	return "export: data failed to verify: the secret is wrong or the archive is corrupt (" +
		strings.TrimPrefix(e.cause.Error(), "export: ") + ")"
}

func (e *badDataError) Is(target error) bool {
	return target == ErrWrongSecret || target == ErrCorrupt
}

func (e *badDataError) Unwrap() error { return e.cause }
