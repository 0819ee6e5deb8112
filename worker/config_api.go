package worker

// APIConfig is the configuration file's [api] section: how `mpgdpr serve`
// and `mpgdpr worker` serve the HTTP API (package worker/api,
// docs/API.md). The command line's flags override it. It names key files,
// never a key: a key written here is an unknown setting, refused.
type APIConfig struct {
	// Listen is host:port; set, `mpgdpr worker` serves the API too.
	Listen string `toml:"listen"`
	// TLSCertFile and TLSKeyFile (PEM; relative to the configuration
	// file's directory) serve TLS; without them only a loopback Listen
	// is served, unless AllowPlainHTTP (behind a TLS proxy).
	TLSCertFile    string `toml:"tls_cert_file"`
	TLSKeyFile     string `toml:"tls_key_file"`
	AllowPlainHTTP bool   `toml:"allow_plain_http"`
	// KeyFiles are API key files (docs/API.md), relative to the
	// configuration file's directory.
	KeyFiles []string `toml:"key_files"`
	// OpenMetrics serves /metrics without a key.
	OpenMetrics bool `toml:"open_metrics"`
	// RateLimit and RateBurst limit each key (0: 50 a second, bursts of
	// 100); MaxBodyBytes limits a request's body (0: 1 MiB).
	RateLimit    float64 `toml:"rate_limit"`
	RateBurst    int     `toml:"rate_burst"`
	MaxBodyBytes int64   `toml:"max_body_bytes"`
	// PublicURL is the base URL callers reach the API at, when it differs
	// from the listening address (behind a proxy): OpenDSR discovery's
	// processor_certificate is PublicURL + "/opendsr/certificate".
	PublicURL string `toml:"public_url"`
}

// APIPath resolves a path of the [api] section against the configuration
// file's directory.
func (c *Config) APIPath(p string) string { return c.path(p) }
