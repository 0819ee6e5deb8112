package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Defaults of the configuration file.
const (
	DefaultBatchWindow = time.Minute
	DefaultPollShare   = 0.5
	DefaultPollMin     = time.Minute
	DefaultPollMax     = 6 * time.Hour
	DefaultJobTimeout  = 10 * time.Minute
	DefaultResubmits   = 1
)

// Policies for a task that ends in FAILURE or NOT_FOUND (Project.OnFailure,
// Project.OnNotFound).
const (
	// PolicyResubmit files the task's IDs again, up to Project.Resubmits
	// times per item, then reports the item failed.
	PolicyResubmit = "resubmit"
	// PolicyReport reports the item failed at once.
	PolicyReport = "report"
)

// Config is the worker's configuration, as read from its TOML file by
// LoadConfig (see README.md for the format).
type Config struct {
	// Database is "sqlite:PATH" or a postgres:// URL; empty means a SQLite
	// file beside the configuration file (mpgdpr-worker.db).
	Database string `toml:"database"`
	// ExportDir receives retrieval exports, one directory per project.
	ExportDir string `toml:"export_dir"`
	// BatchWindow is the longest an item waits to be coalesced with others
	// before its create is filed (default 1m).
	BatchWindow Duration `toml:"batch_window"`
	// PollShare is the share of a project's budget polls may take while
	// creates wait (default 0.5).
	PollShare float64 `toml:"poll_share"`
	// PollMin and PollMax bound a task's poll interval, which is an eighth
	// of the task's age in between (defaults 1m and 6h).
	PollMin Duration `toml:"poll_min"`
	PollMax Duration `toml:"poll_max"`
	// JobTimeout bounds one run of a job (a create, a poll, a download);
	// on Postgres a job still running after 1.5 × JobTimeout is taken to be
	// orphaned by a dead worker and run again (default 10m).
	JobTimeout Duration `toml:"job_timeout"`
	// RequestLease bounds one request to Mixpanel: a worker killed while
	// holding a project's turn holds that project up this long, no more
	// (default 1m, package budget's).
	RequestLease Duration `toml:"request_lease"`
	// Projects, at least one; names are unique.
	Projects []Project `toml:"project"`

	// Retention of personal data (retention.go; README.md's table).
	// IDRetention is how long after a request ends (every item done,
	// failed or unknown) its plain distinct IDs are kept before the worker
	// replaces them, in every table, by their keyed hash (default 720h).
	IDRetention Duration `toml:"id_retention"`
	// ExportRetention is how long a downloaded export stays in the export
	// directory before the worker deletes it, recording its digest
	// (default 720h).
	ExportRetention Duration `toml:"export_retention"`
	// RiverCompletedRetention, RiverCancelledRetention and
	// RiverDiscardedRetention are how long River keeps finished jobs
	// (defaults 1h, 24h, 168h). Job args hold references, never an ID.
	RiverCompletedRetention Duration `toml:"river_completed_retention"`
	RiverCancelledRetention Duration `toml:"river_cancelled_retention"`
	RiverDiscardedRetention Duration `toml:"river_discarded_retention"`

	// The ID key (see Config.IDHasher): distinct IDs enter the evidence's
	// hash chains, and purged rows, only as HMAC-SHA-256 under this key.
	// IDKeyEnv names an environment variable holding it, IDKeyFile a file
	// (relative to the configuration file's directory); at most one. When
	// neither is given, the key is DefaultIDKeyFile beside the
	// configuration file, created on the worker's first start.
	IDKeyEnv  string `toml:"id_key_env"`
	IDKeyFile string `toml:"id_key_file"`
	// InlineIDKey exists only to refuse a key written in the file.
	InlineIDKey string `toml:"id_key"`

	// Callbacks: where request notices may be sent, and their keys
	// (config_callbacks.go).
	Callbacks CallbackConfig `toml:"callbacks"`

	// API is how the HTTP API is served (config_api.go).
	API APIConfig `toml:"api"`

	dir string // the configuration file's directory
}

// Project is one Mixpanel project the worker files requests for.
type Project struct {
	Name string `toml:"name"`
	// Region (us, eu, in) or BaseURL (a proxy or a test server); not both.
	Region  string `toml:"region"`
	BaseURL string `toml:"base_url"`
	// Each secret comes from an environment variable (…_env) or a file
	// (…_file, surrounding whitespace trimmed), never from this file.
	OAuthTokenEnv    string `toml:"oauth_token_env"`
	OAuthTokenFile   string `toml:"oauth_token_file"`
	ProjectTokenEnv  string `toml:"project_token_env"`
	ProjectTokenFile string `toml:"project_token_file"`
	APISecretEnv     string `toml:"api_secret_env"`
	APISecretFile    string `toml:"api_secret_file"`
	// Rate is the project's request budget per second across all workers
	// (default 1, Mixpanel's documented limit).
	Rate float64 `toml:"rate"`
	// MaxIDsPerRequest caps the IDs of one create (default: the library's,
	// 2000 per retrieval, 1999 per deletion).
	MaxIDsPerRequest int `toml:"max_ids_per_request"`
	// BatchWindow overrides Config.BatchWindow for this project.
	BatchWindow Duration `toml:"batch_window"`
	// OnFailure and OnNotFound: PolicyResubmit (default) or PolicyReport.
	OnFailure  string `toml:"on_failure"`
	OnNotFound string `toml:"on_not_found"`
	// Resubmits is how many times PolicyResubmit files an item again
	// (default 1).
	Resubmits *int `toml:"resubmits"`
	// ExportDir overrides Config.ExportDir for this project.
	ExportDir string `toml:"export_dir"`

	// Inline secrets are refused: these fields exist only to say so.
	InlineOAuthToken   string `toml:"oauth_token"`
	InlineProjectToken string `toml:"project_token"`
	InlineAPISecret    string `toml:"api_secret"`
}

// Duration is a time.Duration read from a TOML string such as "1m30s".
type Duration time.Duration

// UnmarshalText reads a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ConfigError is a configuration file that cannot be used.
type ConfigError struct {
	Field   string // e.g. project "web".api_secret
	Problem string
}

// Error names the field and the problem, never a secret.
func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "worker config: " + e.Problem
	}
	return "worker config: " + e.Field + ": " + e.Problem
}

// LoadConfig reads and checks a TOML configuration file. Unknown keys and
// inline secrets are errors. Secrets are not read here (see Config.Secrets).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	cfg, err := ParseConfig(string(b))
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	cfg.dir = filepath.Dir(abs)
	return cfg, nil
}

// ParseConfig reads a configuration from TOML text; relative paths in it are
// taken from the current directory.
func ParseConfig(text string) (*Config, error) {
	var cfg Config
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		// The decoder quotes the offending line, which could hold a
		// secret pasted in by mistake: report only where it is.
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, &ConfigError{Problem: fmt.Sprintf("not valid TOML at line %d, column %d", perr.Position.Line, perr.Position.Col)}
		}
		return nil, &ConfigError{Problem: "not valid TOML"}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, &ConfigError{Problem: "unknown keys: " + strings.Join(keys, ", ")}
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) normalize() error {
	if c.BatchWindow == 0 {
		c.BatchWindow = Duration(DefaultBatchWindow)
	}
	if c.PollShare == 0 {
		c.PollShare = DefaultPollShare
	}
	if c.PollShare <= 0 || c.PollShare >= 1 {
		return &ConfigError{Field: "poll_share", Problem: "must be above 0 and below 1"}
	}
	if c.PollMin == 0 {
		c.PollMin = Duration(DefaultPollMin)
	}
	if c.PollMax == 0 {
		c.PollMax = Duration(DefaultPollMax)
	}
	if c.PollMax < c.PollMin {
		return &ConfigError{Field: "poll_max", Problem: "below poll_min"}
	}
	if c.RequestLease == 0 {
		c.RequestLease = Duration(time.Minute)
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = Duration(DefaultJobTimeout)
	}
	if c.JobTimeout <= c.RequestLease {
		return &ConfigError{Field: "job_timeout", Problem: "must exceed request_lease (a job's run holds at least one request)"}
	}
	if len(c.Projects) == 0 {
		return &ConfigError{Problem: "no [[project]]"}
	}
	c.normalizeRetention()
	if err := c.checkIDKey(); err != nil {
		return err
	}
	if err := c.Callbacks.normalize(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range c.Projects {
		p := &c.Projects[i]
		field := func(k string) string { return fmt.Sprintf("project %q.%s", p.Name, k) }
		if strings.TrimSpace(p.Name) == "" || strings.ContainsAny(p.Name, "/\\ \t\n") || p.Name == "." || p.Name == ".." {
			return &ConfigError{Field: fmt.Sprintf("project #%d.name", i+1), Problem: "missing, or has spaces or slashes"}
		}
		if seen[p.Name] {
			return &ConfigError{Field: field("name"), Problem: "used twice"}
		}
		seen[p.Name] = true
		for k, v := range map[string]string{"oauth_token": p.InlineOAuthToken, "project_token": p.InlineProjectToken, "api_secret": p.InlineAPISecret} {
			if v != "" {
				return &ConfigError{Field: field(k), Problem: fmt.Sprintf("a secret written in the file is refused: use %s_env (an environment variable's name) or %s_file (a file's path)", k, k)}
			}
		}
		switch {
		case p.Region != "" && p.BaseURL != "":
			return &ConfigError{Field: field("region"), Problem: "give region or base_url, not both"}
		case p.Region != "":
			if _, err := mpgdpr.ParseRegion(p.Region); err != nil {
				return &ConfigError{Field: field("region"), Problem: err.Error()}
			}
		case p.BaseURL == "":
			p.Region = string(mpgdpr.RegionUS)
		}
		for _, s := range []struct{ name, env, file string }{
			{"oauth_token", p.OAuthTokenEnv, p.OAuthTokenFile},
			{"project_token", p.ProjectTokenEnv, p.ProjectTokenFile},
		} {
			if (s.env == "") == (s.file == "") {
				return &ConfigError{Field: field(s.name), Problem: fmt.Sprintf("give exactly one of %s_env and %s_file", s.name, s.name)}
			}
		}
		if p.APISecretEnv != "" && p.APISecretFile != "" {
			return &ConfigError{Field: field("api_secret"), Problem: "give api_secret_env or api_secret_file, not both"}
		}
		if p.Rate == 0 {
			p.Rate = float64(mpgdpr.DefaultRateLimit)
		}
		if p.Rate < 0 {
			return &ConfigError{Field: field("rate"), Problem: "negative"}
		}
		if p.MaxIDsPerRequest < 0 || p.MaxIDsPerRequest > mpgdpr.DefaultMaxRetrievalIDs {
			return &ConfigError{Field: field("max_ids_per_request"), Problem: fmt.Sprintf("must be between 1 and %d", mpgdpr.DefaultMaxRetrievalIDs)}
		}
		if p.BatchWindow == 0 {
			p.BatchWindow = c.BatchWindow
		}
		for k, v := range map[string]*string{"on_failure": &p.OnFailure, "on_not_found": &p.OnNotFound} {
			switch *v {
			case "":
				*v = PolicyResubmit
			case PolicyResubmit, PolicyReport:
			default:
				return &ConfigError{Field: field(k), Problem: fmt.Sprintf("%q is not %q or %q", *v, PolicyResubmit, PolicyReport)}
			}
		}
		if p.Resubmits == nil {
			n := DefaultResubmits
			p.Resubmits = &n
		} else if *p.Resubmits < 0 {
			return &ConfigError{Field: field("resubmits"), Problem: "negative"}
		}
		if p.ExportDir == "" {
			p.ExportDir = c.ExportDir
		}
	}
	return nil
}

// Project returns the named project.
func (c *Config) Project(name string) (*Project, bool) {
	for i := range c.Projects {
		if c.Projects[i].Name == name {
			return &c.Projects[i], true
		}
	}
	return nil, false
}

// ProjectNames lists the projects, sorted.
func (c *Config) ProjectNames() []string {
	names := make([]string, len(c.Projects))
	for i, p := range c.Projects {
		names[i] = p.Name
	}
	sort.Strings(names)
	return names
}

// DatabaseURL is the database to use: Database, or a SQLite file beside the
// configuration file. A relative sqlite: path is not resolved here (see
// Database).
func (c *Config) DatabaseURL() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.dir, "mpgdpr-worker.db")
}

// ResolveDatabase resolves a database URL the way every command of the
// worker does: url, or DatabaseURL when url is empty, with a relative
// sqlite: path taken from the configuration file's directory (not the
// current directory), so that the worker, its status and the evidence
// report open the same file wherever they are started.
func (c *Config) ResolveDatabase(url string) (workerdb.Location, error) {
	if url == "" {
		url = c.DatabaseURL()
	}
	loc, err := workerdb.Resolve(url, c.dir)
	if err != nil {
		return loc, fmt.Errorf("worker: %w", err)
	}
	return loc, nil
}

// path resolves p against the configuration file's directory.
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// limits returns the per-request limits for a project.
func (p *Project) limits() (retrieval, deletion int) {
	return p.limit(Retrieval), p.limit(Deletion)
}

// limit is the most IDs one create of kind k may carry in this project:
// max_ids_per_request, within Mixpanel's limit for the kind.
func (p *Project) limit(k Kind) int {
	if p.MaxIDsPerRequest > 0 {
		return min(p.MaxIDsPerRequest, k.DefaultMaxIDs())
	}
	return k.DefaultMaxIDs()
}

// Secrets are one project's credentials, read from where the configuration
// says. They never appear in errors or logs.
type Secrets struct {
	OAuthToken, ProjectToken, APISecret string
}

// Secrets reads the project's secrets from the environment or files. An
// error names the variable or file, never a value.
func (c *Config) Secrets(p *Project) (Secrets, error) {
	var s Secrets
	var err error
	if s.OAuthToken, err = c.readSecret(p, "oauth_token", p.OAuthTokenEnv, p.OAuthTokenFile, true); err != nil {
		return s, err
	}
	if s.ProjectToken, err = c.readSecret(p, "project_token", p.ProjectTokenEnv, p.ProjectTokenFile, true); err != nil {
		return s, err
	}
	if s.APISecret, err = c.readSecret(p, "api_secret", p.APISecretEnv, p.APISecretFile, false); err != nil {
		return s, err
	}
	return s, nil
}

func (c *Config) readSecret(p *Project, name, env, file string, required bool) (string, error) {
	field := fmt.Sprintf("project %q.%s", p.Name, name)
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(v) == "" {
			return "", &ConfigError{Field: field + "_env", Problem: fmt.Sprintf("environment variable %s is not set", env)}
		}
		return strings.TrimSpace(v), nil
	case file != "":
		path := c.path(file)
		st, err := os.Stat(path)
		if err != nil {
			return "", &ConfigError{Field: field + "_file", Problem: fmt.Sprintf("cannot read %s", path)}
		}
		if !st.Mode().IsRegular() || st.Size() > 64<<10 {
			return "", &ConfigError{Field: field + "_file", Problem: fmt.Sprintf("%s is not a regular file of at most 64 KiB", path)}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", &ConfigError{Field: field + "_file", Problem: fmt.Sprintf("cannot read %s", path)}
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", &ConfigError{Field: field + "_file", Problem: fmt.Sprintf("%s is empty", path)}
		}
		return v, nil
	case required:
		return "", &ConfigError{Field: field, Problem: "no source given"}
	}
	return "", nil
}
