// Package export opens and builds the zip archives that Mixpanel's GDPR/CCPA
// API hands out at the end of a data retrieval.
//
// Those archives are protected with traditional PKWARE encryption
// ("ZipCrypto", APPNOTE section 6.1) using the project's API secret as the
// password. The standard library's archive/zip parses the container but does
// not decrypt, so this package decrypts each entry itself on top of
// [zip.File.OpenRaw] and encrypts on top of [zip.Writer.CreateRaw].
// Unencrypted archives are read the same way.
//
// ZipCrypto is weak by modern standards: it keeps the data away from casual
// eyes in transit and at rest, nothing more. Treat extracted files as
// personal data.
//
// Archives come from the network, so the reader treats them as hostile:
// [Open] refuses an archive that is not complete or whose entries share or
// overlap their data; entry sizes, compression ratio (per entry and for the
// archive as a whole), entry count and total output are bounded on the
// bytes actually produced (see [Option]); every entry's CRC-32 is verified;
// and [Archive.ExtractTo] refuses paths that could escape the target
// directory. Errors never show the secret, even in an entry name.
package export
