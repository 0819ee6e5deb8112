package worker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/privacykit/mpgdpr/worker/evidence"
)

const testIDKey = "0123456789abcdef-SENTINEL-KEY"

func loadKeyConfig(t *testing.T, extra string) (*Config, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "w.toml")
	if err := os.WriteFile(path, []byte(extra+minimalProject), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

func wantHasher(t *testing.T, h *evidence.IDHasher, key string) {
	t.Helper()
	want, err := evidence.NewIDHasher([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if h.Hash("alice") != want.Hash("alice") {
		t.Errorf("the hasher does not use the configured key")
	}
}

func TestIDKeyFromEnv(t *testing.T) {
	t.Setenv("MPGDPR_TEST_IDKEY", testIDKey+"\n")
	cfg, dir := loadKeyConfig(t, "id_key_env = \"MPGDPR_TEST_IDKEY\"\n")
	h, err := cfg.IDHasher(true)
	if err != nil {
		t.Fatal(err)
	}
	wantHasher(t, h, testIDKey)
	if cfg.IDKeyPath() != "" {
		t.Errorf("IDKeyPath %q with id_key_env", cfg.IDKeyPath())
	}
	if _, err := os.Stat(filepath.Join(dir, DefaultIDKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a default key file was created although id_key_env is set: %v", err)
	}
}

func TestIDKeyFromFile(t *testing.T) {
	cfg, dir := loadKeyConfig(t, "id_key_file = \"keys/id.key\"\n")
	if _, err := cfg.IDHasher(true); err == nil {
		t.Fatal("a missing id_key_file was created or accepted")
	}
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "id.key"), []byte("  "+testIDKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := cfg.IDHasher(false)
	if err != nil {
		t.Fatal(err)
	}
	wantHasher(t, h, testIDKey)
	// The same file through --hash-ids gives the same hashes.
	h2, err := evidence.LoadIDHasher(cfg.IDKeyPath())
	if err != nil || h2.Hash("bob") != h.Hash("bob") {
		t.Errorf("--hash-ids %s disagrees: %v", cfg.IDKeyPath(), err)
	}
}

func TestIDKeyDefaultFileCreated(t *testing.T) {
	cfg, dir := loadKeyConfig(t, "")
	path := filepath.Join(dir, DefaultIDKeyFile)
	if cfg.IDKeyPath() != path {
		t.Fatalf("IDKeyPath %q, want %q", cfg.IDKeyPath(), path)
	}
	if _, err := cfg.IDHasher(false); err == nil {
		t.Fatal("IDHasher(false) accepted a missing default key")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("IDHasher(false) created the key: %v", err)
	}
	// Concurrent first starts agree on one key.
	hs := make([]*evidence.IDHasher, 8)
	var wg sync.WaitGroup
	for i := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := cfg.IDHasher(true)
			if err != nil {
				t.Error(err)
			}
			hs[i] = h
		}()
	}
	wg.Wait()
	for _, h := range hs[1:] {
		if h == nil || hs[0] == nil || h.Hash("x") != hs[0].Hash("x") {
			t.Fatal("concurrent first starts made different keys")
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if k := strings.TrimSpace(string(b)); len(k) != 64 || strings.Trim(k, "0123456789abcdef") != "" {
		t.Errorf("key file holds %d characters, want 64 hex", len(k))
	}
	wantHasher(t, hs[0], strings.TrimSpace(string(b)))
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left beside the key: %v", entries)
	}
	// A second start reads the same key.
	h, err := cfg.IDHasher(true)
	if err != nil || h.Hash("x") != hs[0].Hash("x") {
		t.Errorf("second start: %v", err)
	}
}

func TestIDKeyRefusedInline(t *testing.T) {
	for name, text := range map[string]string{
		"inline": "id_key = \"" + testIDKey + "\"\n",
		"both":   "id_key_env = \"X\"\nid_key_file = \"" + testIDKey + "\"\n",
	} {
		_, err := ParseConfig(text + minimalProject)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), "SENTINEL") {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
}

func TestIDKeyErrorsNeverShowTheKey(t *testing.T) {
	short := "SENTINEL-short" // below evidence.MinKeyBytes
	t.Setenv("MPGDPR_TEST_IDKEY", short)
	cfg, dir := loadKeyConfig(t, "id_key_env = \"MPGDPR_TEST_IDKEY\"\n")
	_, err := cfg.IDHasher(true)
	var ce *ConfigError
	if !errors.As(err, &ce) || strings.Contains(err.Error(), "SENTINEL") || !strings.Contains(err.Error(), "MPGDPR_TEST_IDKEY") {
		t.Errorf("short env key: %v", err)
	}
	cfg2, _ := loadKeyConfig(t, "id_key_env = \"MPGDPR_TEST_UNSET_KEY\"\n")
	if _, err := cfg2.IDHasher(true); !errors.As(err, &ce) || !strings.Contains(err.Error(), "not set") {
		t.Errorf("unset env: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.IDKeyEnv, cfg.IDKeyFile = "", "k"
	if _, err := cfg.IDHasher(false); !errors.As(err, &ce) || strings.Contains(err.Error(), "SENTINEL") || !strings.Contains(err.Error(), "shorter") {
		t.Errorf("short file key: %v", err)
	}
}
