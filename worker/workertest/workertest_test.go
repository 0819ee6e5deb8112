package workertest_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The configuration Config writes is one the worker loads, with the
// secrets where it said and the settings it was given.
func TestConfigLoads(t *testing.T) {
	f := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("workertest-secret"))
	defer f.Close()
	fakes := map[string]*mpgdprtest.Server{"us": f}
	for _, env := range []bool{false, true} {
		dir := t.TempDir()
		opts := []workertest.Option{workertest.WithDatabase("sqlite:w.db"), workertest.With("batch_window", `"100ms"`)}
		if env {
			opts = append(opts, workertest.WithSecretsInEnv("MPGDPR_WORKERTEST"))
		}
		cfg, err := worker.LoadConfig(workertest.Config(t, dir, fakes, opts...))
		if err != nil {
			t.Fatal(err)
		}
		p, ok := cfg.Project("us")
		if !ok || p.BaseURL != f.URL() || time.Duration(cfg.BatchWindow) != 100*time.Millisecond {
			t.Fatalf("config %+v", cfg)
		}
		s, err := cfg.Secrets(p)
		if err != nil || s.OAuthToken != f.OAuthToken() || s.ProjectToken != f.ProjectToken() || s.APISecret != "workertest-secret" {
			t.Fatalf("secrets: %v", err)
		}
		if (os.Getenv("MPGDPR_WORKERTEST_US_SECRET") != "") != env {
			t.Errorf("env %v: secret in the environment %v", env, !env)
		}
		if loc, err := cfg.ResolveDatabase(""); err != nil || loc.Path != filepath.Join(dir, "w.db") {
			t.Errorf("database %v %v", loc, err)
		}
	}
}

func TestDatabaseURL(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		url := workertest.DatabaseURL(t, d, t.TempDir())
		cfg := &worker.Config{}
		if loc, err := cfg.ResolveDatabase(url); err != nil || loc.Driver.String() != string(d) {
			t.Errorf("%s: %v %v", d, loc, err)
		}
	})
}
