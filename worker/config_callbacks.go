package worker

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of the [callbacks] section.
const (
	DefaultCallbackTimeout     = 10 * time.Second
	DefaultCallbackGiveUpAfter = 7 * 24 * time.Hour
	DefaultCallbackRetryMin    = 30 * time.Second
	DefaultCallbackRetryMax    = 6 * time.Hour
	// MinCallbackKeyBytes is the shortest signing key accepted.
	MinCallbackKeyBytes = 32
)

// CallbackConfig is the [callbacks] section: where notices may be sent and
// how they are signed (docs/CALLBACKS.md). Without key_file or key_env, a
// request naming a callback URL is refused.
type CallbackConfig struct {
	// KeyEnv names an environment variable holding the HMAC signing key,
	// KeyFile a file (relative to the configuration file); exactly one
	// when callbacks are used. The key has at least 32 bytes.
	KeyEnv  string `toml:"key_env"`
	KeyFile string `toml:"key_file"`
	// InlineKey exists only to refuse a key written in the file.
	InlineKey string `toml:"key"`
	// Allow lists the hosts a callback URL may name: "host", "host:port",
	// "*.example.com" (any name below example.com, never an IP), an IP
	// literal ("127.0.0.1:9000", "[::1]:9000"), each optionally prefixed by
	// "http://" to allow plain HTTP for it (https otherwise). Without a
	// port, only the scheme's default port. A name's resolved address must
	// be public (not loopback, private, link-local, unspecified or
	// multicast) unless that address is itself listed.
	Allow []string `toml:"allow"`
	// Progress also sends a notice on each item's change, not only when
	// the request ends.
	Progress bool `toml:"progress"`
	// Timeout bounds one delivery attempt (default 10s).
	Timeout Duration `toml:"timeout"`
	// GiveUpAfter: a notice still undelivered this long after it was due
	// is given up (default 168h).
	GiveUpAfter Duration `toml:"give_up_after"`
	// RetryMin and RetryMax: the wait after a failed attempt starts at
	// RetryMin and doubles, up to RetryMax (defaults 30s and 6h).
	RetryMin Duration `toml:"retry_min"`
	RetryMax Duration `toml:"retry_max"`

	// OpenDSR notices (Request.CallbackFormat "opendsr"): the processor's
	// RSA private key (PEM, PKCS #1 or PKCS #8) and its certificate (PEM),
	// files relative to the configuration file; the processor domain sent
	// in X-OpenDSR-Processor-Domain; the controller id sent in the body
	// (default "mpgdpr"). All three of key, certificate and domain, or none.
	OpenDSRKeyFile         string `toml:"opendsr_key_file"`
	OpenDSRCertificateFile string `toml:"opendsr_certificate_file"`
	OpenDSRDomain          string `toml:"opendsr_processor_domain"`
	OpenDSRControllerID    string `toml:"opendsr_controller_id"`

	allow []allowEntry
}

// allowEntry is one parsed Allow entry.
type allowEntry struct {
	http     bool
	host     string     // lower case; for a wildcard, the suffix without "*."
	wildcard bool       // "*.example.com"
	addr     netip.Addr // valid for an IP literal
	port     string     // "" = the scheme's default
}

func (c *CallbackConfig) normalize() error {
	if c.InlineKey != "" {
		return &ConfigError{Field: "callbacks.key", Problem: "a key written in the file is refused: use key_env (an environment variable's name) or key_file (a file's path)"}
	}
	if c.KeyEnv != "" && c.KeyFile != "" {
		return &ConfigError{Field: "callbacks.key", Problem: "give key_env or key_file, not both"}
	}
	if len(c.Allow) > 0 && !c.enabled() {
		return &ConfigError{Field: "callbacks.allow", Problem: "given without key_env or key_file: notices could not be signed"}
	}
	c.allow = nil
	for _, a := range c.Allow {
		e, err := parseAllow(a)
		if err != nil {
			return &ConfigError{Field: "callbacks.allow", Problem: fmt.Sprintf("%q: %v", a, err)}
		}
		c.allow = append(c.allow, e)
	}
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{{&c.Timeout, DefaultCallbackTimeout}, {&c.GiveUpAfter, DefaultCallbackGiveUpAfter}, {&c.RetryMin, DefaultCallbackRetryMin}, {&c.RetryMax, DefaultCallbackRetryMax}} {
		if *d.v == 0 {
			*d.v = Duration(d.def)
		}
	}
	if c.RetryMax < c.RetryMin {
		return &ConfigError{Field: "callbacks.retry_max", Problem: "below retry_min"}
	}
	n := 0
	for _, s := range []string{c.OpenDSRKeyFile, c.OpenDSRCertificateFile, c.OpenDSRDomain} {
		if s != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return &ConfigError{Field: "callbacks.opendsr", Problem: "give opendsr_key_file, opendsr_certificate_file and opendsr_processor_domain together"}
	}
	if c.OpenDSRControllerID == "" {
		c.OpenDSRControllerID = "mpgdpr"
	}
	return nil
}

// enabled: a signing key is configured, so callbacks may be asked for.
func (c *CallbackConfig) enabled() bool { return c.KeyEnv != "" || c.KeyFile != "" }

// openDSR: OpenDSR notices can be signed.
func (c *CallbackConfig) openDSR() bool { return c.OpenDSRKeyFile != "" }

func parseAllow(s string) (allowEntry, error) {
	var e allowEntry
	rest := strings.ToLower(strings.TrimSpace(s))
	if r, ok := strings.CutPrefix(rest, "http://"); ok {
		e.http, rest = true, r
	} else if r, ok := strings.CutPrefix(rest, "https://"); ok {
		rest = r
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ ") {
		return e, fmt.Errorf("not [http://]host[:port]")
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	}
	if port != "" {
		if n, err := netip.ParseAddrPort("0.0.0.0:" + port); err != nil || n.Port() == 0 {
			return e, fmt.Errorf("bad port")
		}
	}
	e.port = port
	if a, err := netip.ParseAddr(host); err == nil {
		e.addr, e.host = a.Unmap(), a.Unmap().String()
		return e, nil
	}
	if w, ok := strings.CutPrefix(host, "*."); ok {
		e.wildcard, host = true, w
	}
	if host == "" || strings.Contains(host, "*") || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") {
		return e, fmt.Errorf("not a host name, *.domain or IP address")
	}
	if e.wildcard && !strings.Contains(host, ".") {
		return e, fmt.Errorf("a wildcard needs a domain of two labels at least")
	}
	e.host = host
	return e, nil
}

// defaultPort is a scheme's port.
func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// allowed returns the entry that lets u be called, if any.
func (c *CallbackConfig) allowed(u *url.URL) (allowEntry, bool) {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	addr, ipErr := netip.ParseAddr(host)
	for _, e := range c.allow {
		if u.Scheme == "http" && !e.http {
			continue
		}
		if want := e.port; want == "" && port != defaultPort(u.Scheme) || want != "" && want != port {
			continue
		}
		switch {
		case e.addr.IsValid():
			if ipErr == nil && addr.Unmap() == e.addr {
				return e, true
			}
		case ipErr == nil:
			// a name entry never admits an IP literal
		case e.wildcard:
			if strings.HasSuffix(host, "."+e.host) {
				return e, true
			}
		case host == e.host:
			return e, true
		}
	}
	return allowEntry{}, false
}

// dialAllowed says whether a connection to addr:port may be made for a
// callback: a public address, or an address listed itself (with that port,
// or with none when port is the default).
func (c *CallbackConfig) dialAllowed(addr netip.Addr, port, scheme string) bool {
	addr = addr.Unmap()
	if publicAddr(addr) {
		return true
	}
	for _, e := range c.allow {
		if e.addr == addr && (e.port == port || e.port == "" && port == defaultPort(scheme)) {
			return true
		}
	}
	return false
}

// cgnat is RFC 6598's shared address space, private in all but name.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// publicAddr: not loopback, private, link-local, unspecified or multicast.
func publicAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsPrivate() && !a.IsLinkLocalUnicast() && !a.IsLinkLocalMulticast() &&
		!a.IsInterfaceLocalMulticast() && !a.IsMulticast() && !a.IsUnspecified() && !cgnat.Contains(a) &&
		!(a.Is4() && a.As4()[0] == 0)
}

// callbackKey reads the HMAC signing key. Errors name the variable or
// file, never the key.
func (c *Config) callbackKey() ([]byte, error) {
	cb := &c.Callbacks
	b, err := c.readKey("callbacks.key", cb.KeyEnv, cb.KeyFile)
	if err != nil {
		return nil, err
	}
	if len(b) < MinCallbackKeyBytes {
		return nil, &ConfigError{Field: "callbacks.key", Problem: fmt.Sprintf("the key is shorter than %d bytes", MinCallbackKeyBytes)}
	}
	return b, nil
}

// readKey reads a key from an environment variable or a file (a regular
// file of at most 64 KiB), surrounding whitespace trimmed.
func (c *Config) readKey(field, env, file string) ([]byte, error) {
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, &ConfigError{Field: field + "_env", Problem: fmt.Sprintf("environment variable %s is not set", env)}
		}
		return []byte(strings.TrimSpace(v)), nil
	case file != "":
		path := c.path(file)
		st, err := os.Stat(path)
		if err != nil {
			return nil, &ConfigError{Field: field + "_file", Problem: fmt.Sprintf("cannot read %s", path)}
		}
		if !st.Mode().IsRegular() || st.Size() > 64<<10 {
			return nil, &ConfigError{Field: field + "_file", Problem: fmt.Sprintf("%s is not a regular file of at most 64 KiB", path)}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, &ConfigError{Field: field + "_file", Problem: fmt.Sprintf("cannot read %s", path)}
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	return nil, &ConfigError{Field: field, Problem: "no key_env or key_file"}
}

// openDSRSigner reads the OpenDSR private key and checks it against the
// certificate.
// OpenDSRKey reads the RSA key that signs OpenDSR notices and answers
// ([callbacks] opendsr_key_file), checked against the certificate.
func (c *Config) OpenDSRKey() (*rsa.PrivateKey, error) { return c.openDSRSigner() }

func (c *Config) openDSRSigner() (*rsa.PrivateKey, error) {
	b, err := c.readKey("callbacks.opendsr_key", "", c.Callbacks.OpenDSRKeyFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, &ConfigError{Field: "callbacks.opendsr_key_file", Problem: "not PEM"}
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		key, _ = k.(*rsa.PrivateKey)
	}
	if key == nil {
		return nil, &ConfigError{Field: "callbacks.opendsr_key_file", Problem: "not an RSA private key (PKCS #1 or PKCS #8)"}
	}
	if key.N.BitLen() < 2048 {
		return nil, &ConfigError{Field: "callbacks.opendsr_key_file", Problem: "an RSA key of fewer than 2048 bits"}
	}
	_, cert, err := c.OpenDSRCertificate()
	if err != nil {
		return nil, err
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, &ConfigError{Field: "callbacks.opendsr_certificate_file", Problem: "its public key is not the opendsr_key_file's"}
	}
	return key, nil
}

// OpenDSRCertificate returns the certificate OpenDSR notices are signed
// under, as configured in [callbacks] opendsr_certificate_file: its PEM
// text, to serve at the discovery document's processor_certificate URL,
// and the parsed certificate. It holds no secret.
func (c *Config) OpenDSRCertificate() ([]byte, *x509.Certificate, error) {
	if c.Callbacks.OpenDSRCertificateFile == "" {
		return nil, nil, &ConfigError{Field: "callbacks.opendsr_certificate_file", Problem: "not configured"}
	}
	b, err := c.readKey("callbacks.opendsr_certificate", "", c.Callbacks.OpenDSRCertificateFile)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, &ConfigError{Field: "callbacks.opendsr_certificate_file", Problem: "not a PEM certificate"}
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, &ConfigError{Field: "callbacks.opendsr_certificate_file", Problem: "not a valid X.509 certificate"}
	}
	return append(b, '\n'), cert, nil
}
