package export

import "fmt"

// Default limits. They are generous for real exports (JSON text rarely
// compresses better than 100:1) and stop decompression bombs early.
const (
	DefaultMaxTotalBytes int64 = 4 << 30 // 4 GiB produced by one Archive
	DefaultMaxEntryBytes int64 = 1 << 30 // 1 GiB per entry
	DefaultMaxRatio      int64 = 1000    // uncompressed:compressed
	DefaultMaxEntries    int   = 100000
)

// config holds the reader's limits.
type config struct {
	maxTotal   int64
	maxEntry   int64
	maxRatio   int64
	maxEntries int
	err        error // first invalid option, reported by Open
	skipLayout bool  // tests only: reach the streaming limits with overlapping entries
}

func defaultConfig() config {
	return config{
		maxTotal:   DefaultMaxTotalBytes,
		maxEntry:   DefaultMaxEntryBytes,
		maxRatio:   DefaultMaxRatio,
		maxEntries: DefaultMaxEntries,
	}
}

// Option configures Open and OpenFile. Limits must be positive; Open
// rejects a non-positive one rather than guess whether "no limit" was meant.
type Option func(*config)

// WithMaxTotalBytes bounds the number of decompressed bytes an Archive
// produces over its lifetime, summed over every entry read by Open, Walk and
// ExtractTo. Walk and ExtractTo also refuse up front when the sizes declared
// in the headers add up to more. Default [DefaultMaxTotalBytes].
func WithMaxTotalBytes(n int64) Option {
	return func(c *config) { c.maxTotal = n; c.check("WithMaxTotalBytes", n) }
}

// WithMaxEntryBytes bounds the decompressed size of any single entry.
// Default [DefaultMaxEntryBytes].
func WithMaxEntryBytes(n int64) Option {
	return func(c *config) { c.maxEntry = n; c.check("WithMaxEntryBytes", n) }
}

// WithMaxRatio bounds how many bytes an entry may produce per compressed
// byte consumed, measured while streaming, and how many bytes the Archive
// may produce in all per byte of its size (declared sizes are checked up
// front by Walk and ExtractTo, produced bytes while streaming, each entry's
// counted once however often it is read).
// Default [DefaultMaxRatio].
func WithMaxRatio(n int64) Option {
	return func(c *config) { c.maxRatio = n; c.check("WithMaxRatio", n) }
}

// WithMaxEntries bounds the number of entries in the archive.
// Default [DefaultMaxEntries].
func WithMaxEntries(n int) Option {
	return func(c *config) { c.maxEntries = n; c.check("WithMaxEntries", int64(n)) }
}

func (c *config) check(name string, n int64) {
	if n <= 0 && c.err == nil {
		c.err = fmt.Errorf("export: %s: limit must be positive, got %d", name, n)
	}
}
