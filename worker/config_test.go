package worker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimalProject = `
[[project]]
name = "web"
region = "eu"
oauth_token_env = "MP_OAUTH"
project_token_file = "token.txt"
`

func TestConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig(minimalProject)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cfg.Project("web")
	if time.Duration(cfg.BatchWindow) != time.Minute || time.Duration(p.BatchWindow) != time.Minute || cfg.PollShare != 0.5 || p.Rate != 1 ||
		p.OnFailure != PolicyResubmit || p.OnNotFound != PolicyResubmit || *p.Resubmits != 1 {
		t.Errorf("defaults: %+v %+v", cfg, p)
	}
	r, d := p.limits()
	if r != 2000 || d != 1999 {
		t.Errorf("limits %d %d", r, d)
	}
}

func TestConfigRefusesInlineSecrets(t *testing.T) {
	for _, key := range []string{"oauth_token", "project_token", "api_secret"} {
		text := minimalProject + key + " = \"SENTINEL-SECRET-123\"\n"
		_, err := ParseConfig(text)
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), key+"_env") {
			t.Errorf("%s inline: %v", key, err)
		}
		if err != nil && strings.Contains(err.Error(), "SENTINEL") {
			t.Errorf("%s: the error quotes the secret: %v", key, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for name, text := range map[string]string{
		"no project":      `batch_window = "1m"`,
		"unknown key":     minimalProject + "rate_limit = 3\n",
		"bad toml":        "[[project]\nname = \"SENTINEL-SECRET\"",
		"both region url": minimalProject + "base_url = \"https://proxy.example\"\n",
		"bad region":      strings.Replace(minimalProject, `"eu"`, `"mars"`, 1),
		"no oauth":        strings.Replace(minimalProject, `oauth_token_env = "MP_OAUTH"`, "", 1),
		"two sources":     minimalProject + "oauth_token_file = \"x\"\n",
		"bad policy":      minimalProject + "on_failure = \"retry\"\n",
		"duplicate name":  minimalProject + minimalProject,
		"bad duration":    "batch_window = \"soon\"\n" + minimalProject,
		"limit too high":  minimalProject + "max_ids_per_request = 5000\n",
		"timeout < lease": "job_timeout = \"30s\"\nrequest_lease = \"1m\"\n" + minimalProject,
		"poll share 1":    "poll_share = 1.0\n" + minimalProject,
	} {
		_, err := ParseConfig(text)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), "SENTINEL") {
			t.Errorf("%s: error quotes the file: %v", name, err)
		}
	}
}

func TestConfigSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.toml")
	if err := os.WriteFile(path, []byte(minimalProject+"api_secret_env = \"MP_SECRET\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cfg.Project("web")
	t.Setenv("MP_OAUTH", "oauth-value")
	t.Setenv("MP_SECRET", "")
	if _, err := cfg.Secrets(p); err == nil || !strings.Contains(err.Error(), "project_token_file") {
		t.Fatalf("missing token file: %v", err)
	}
	// Relative to the configuration file; the trailing newline is trimmed.
	if err := os.WriteFile(filepath.Join(dir, "token.txt"), []byte("project-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Secrets(p); err == nil || !strings.Contains(err.Error(), "MP_SECRET") {
		t.Fatalf("empty env var: %v", err)
	}
	t.Setenv("MP_SECRET", "secret-value")
	s, err := cfg.Secrets(p)
	if err != nil {
		t.Fatal(err)
	}
	if s != (Secrets{"oauth-value", "project-value", "secret-value"}) {
		t.Errorf("secrets %+v", s)
	}
	if got := cfg.DatabaseURL(); got != "sqlite:"+filepath.Join(dir, "mpgdpr-worker.db") {
		t.Errorf("default database %s", got)
	}
}

func TestPollIntervalBound(t *testing.T) {
	minW, maxW := DefaultPollMin, DefaultPollMax
	// Count the polls of a task over 30 days, each at the interval its
	// age gives; the first hour and any later hour stay within the bound.
	age, polls, firstHour := time.Duration(0), 0, 0
	perHour := map[int]int{}
	for age < 30*24*time.Hour {
		polls++
		perHour[int(age/time.Hour)]++
		if age < time.Hour {
			firstHour++
		}
		age += PollInterval(age, minW, maxW)
	}
	if firstHour > 60 {
		t.Errorf("%d polls in the first hour, more than 3600/poll_min", firstHour)
	}
	for h, n := range perHour {
		if h >= 1 && n > max(1, 8*3600/(h*3600)+1) {
			t.Errorf("hour %d: %d polls", h, n)
		}
	}
	if polls > 200 {
		t.Errorf("%d polls over 30 days", polls)
	}
	t.Logf("30 days: %d polls, %d in the first hour", polls, firstHour)
}
