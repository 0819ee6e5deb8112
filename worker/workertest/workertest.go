// Package workertest holds what tests of the worker, of package evidence
// and of the CLI's worker commands share, in the spirit of River's
// rivertest: a configuration file for fake Mixpanel servers, River set to
// fetch fast, a fresh database of each driver, and assertions that no
// secret leaked. It is for tests only. It does not import package worker,
// so the worker's own (internal) tests can use it.
package workertest

import (
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" for database/sql
	"github.com/riverqueue/river"
	_ "modernc.org/sqlite" // "sqlite" for database/sql

	"github.com/privacykit/mpgdpr/internal/redact"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
)

// Option adjusts Config.
type Option func(*config)

type config struct {
	settings  map[string]string
	envPrefix string
}

// With sets a top-level setting of the configuration, its value written as
// TOML (a string quoted: With("batch_window", `"100ms"`)), replacing
// Config's default for it.
func With(key, tomlValue string) Option {
	return func(c *config) { c.settings[key] = tomlValue }
}

// WithDatabase names the worker's database ("sqlite:PATH", relative to the
// configuration's directory, or a postgres:// URL; see DatabaseURL).
func WithDatabase(url string) Option { return With("database", fmt.Sprintf("%q", url)) }

// WithSecretsInEnv passes each project's secrets through environment
// variables PREFIX_<PROJECT>_OAUTH, _PROJECT and _SECRET (set with
// t.Setenv, so the test cannot run in parallel) instead of files beside
// the configuration.
func WithSecretsInEnv(prefix string) Option { return func(c *config) { c.envPrefix = prefix } }

// Config writes dir/worker.toml for fakes (project name → fake server):
// windows and polls in milliseconds (batch_window 300ms, poll_min 10ms,
// poll_max 40ms, job_timeout 20s, request_lease 5s, exports in dir/exports),
// each project at 500 requests a second, and its secrets in files of a
// directory of their own (not under dir) unless WithSecretsInEnv. It
// returns the file's path.
func Config(t testing.TB, dir string, fakes map[string]*mpgdprtest.Server, opts ...Option) string {
	t.Helper()
	c := config{settings: map[string]string{
		"export_dir":    fmt.Sprintf("%q", filepath.Join(dir, "exports")),
		"batch_window":  `"300ms"`,
		"poll_min":      `"10ms"`,
		"poll_max":      `"40ms"`,
		"job_timeout":   `"20s"`,
		"request_lease": `"5s"`,
	}}
	for _, o := range opts {
		o(&c)
	}
	// Secret files live apart from dir, so that NoSecretsInFiles(dir)
	// checks only what the worker and the commands wrote there.
	secretDir := t.TempDir()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c.settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, c.settings[k])
	}
	for _, name := range slices.Sorted(maps.Keys(fakes)) {
		f := fakes[name]
		secrets := [][3]string{{"oauth_token", "OAUTH", f.OAuthToken()}, {"project_token", "PROJECT", f.ProjectToken()}, {"api_secret", "SECRET", f.APISecret()}}
		fmt.Fprintf(&b, "[[project]]\nname = %q\nbase_url = %q\nrate = 500\n", name, f.URL())
		for _, s := range secrets {
			if c.envPrefix != "" {
				env := c.envPrefix + "_" + strings.ToUpper(name) + "_" + s[1]
				t.Setenv(env, s[2])
				fmt.Fprintf(&b, "%s_env = %q\n", s[0], env)
				continue
			}
			path := filepath.Join(secretDir, name+"."+s[0])
			if err := os.WriteFile(path, []byte(s[2]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s_file = %q\n", s[0], path)
		}
	}
	path := filepath.Join(dir, "worker.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// RiverConfig makes River fetch jobs every few milliseconds, in test mode,
// logging warnings only: worker.WithRiverConfig(workertest.RiverConfig).
func RiverConfig(c *river.Config) {
	c.FetchPollInterval = 20 * time.Millisecond
	c.FetchCooldown = 5 * time.Millisecond
	c.TestOnly = true
	c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Driver is a database the worker runs on.
type Driver string

// The drivers.
const (
	SQLite   Driver = "sqlite"
	Postgres Driver = "postgres"
)

// Drivers are every driver, for tests that must hold on each.
var Drivers = []Driver{SQLite, Postgres}

// DatabaseURL returns a fresh database of driver d for t: "sqlite:" and a
// file in dir, or a new Postgres database dropped when t ends (pgtest.URL:
// skipped where no PostgreSQL can be had, failed in CI).
func DatabaseURL(t testing.TB, d Driver, dir string) string {
	t.Helper()
	if d == Postgres {
		return pgtest.URL(t)
	}
	return "sqlite:" + filepath.Join(dir, "worker.db")
}

// Run runs a test binary's tests and returns its exit code, stopping after
// them the PostgreSQL cluster DatabaseURL started for them, if any: call it
// from TestMain (os.Exit(workertest.Run(m))) in a package outside the
// worker's module tree that tests on Postgres.
func Run(m *testing.M) int { return pgtest.Run(m) }

// Exec runs statements on the database named by url ("sqlite:PATH", the
// file created if missing, or a postgres:// URL), as another application
// or an administrator would, failing t on the first error.
func Exec(t testing.TB, url string, stmts ...string) {
	t.Helper()
	driver, dsn := "pgx", url
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		driver, dsn = "sqlite", path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %s", s, redact.URL(err.Error()))
		}
	}
}

// ForEachDriver runs f as one parallel subtest per driver, as River's
// driver test suite runs on every driver.
func ForEachDriver(t *testing.T, f func(t *testing.T, d Driver)) {
	t.Helper()
	for _, d := range Drivers {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// Secrets are fakes' credentials, for NoSecrets.
func Secrets(fakes map[string]*mpgdprtest.Server) []string {
	var s []string
	for _, name := range slices.Sorted(maps.Keys(fakes)) {
		f := fakes[name]
		s = append(s, f.OAuthToken(), f.ProjectToken(), f.APISecret())
	}
	return s
}

// NoSecrets fails t if text holds one of secrets in any form package
// redact knows (raw, escaped, base64, …); where names the text.
func NoSecrets(t testing.TB, where, text string, secrets ...string) {
	t.Helper()
	set := redact.New(secrets...)
	if set.Contains(text) {
		for _, s := range secrets {
			if redact.New(s).Contains(text) {
				t.Errorf("%s holds a credential (%d bytes)", where, len(s))
			}
		}
	}
}

// NoSecretsInFiles runs NoSecrets on every file under dir.
func NoSecretsInFiles(t testing.TB, dir string, secrets ...string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		NoSecrets(t, p, string(b), secrets...)
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
