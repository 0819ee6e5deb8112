package worker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/privacykit/mpgdpr/worker/evidence"
)

// DefaultIDKeyFile is the ID key's file, beside the configuration file,
// when the configuration names neither id_key_env nor id_key_file.
const DefaultIDKeyFile = "mpgdpr-worker.idkey"

// idKeyBytes is the size of a key the worker creates: 32 random bytes,
// written as 64 hexadecimal characters.
const idKeyBytes = 32

func (c *Config) checkIDKey() error {
	if c.InlineIDKey != "" {
		return &ConfigError{Field: "id_key", Problem: "a key written in the file is refused: use id_key_env (an environment variable's name) or id_key_file (a file's path)"}
	}
	if c.IDKeyEnv != "" && c.IDKeyFile != "" {
		return &ConfigError{Field: "id_key", Problem: "give id_key_env or id_key_file, not both"}
	}
	return nil
}

// IDKeyPath is the file the ID key is read from: id_key_file, or
// DefaultIDKeyFile beside the configuration file; empty when the key comes
// from an environment variable (id_key_env).
func (c *Config) IDKeyPath() string {
	switch {
	case c.IDKeyEnv != "":
		return ""
	case c.IDKeyFile != "":
		return c.path(c.IDKeyFile)
	}
	return c.path(DefaultIDKeyFile)
}

// IDHasher returns the keyed hash under which distinct IDs enter the
// evidence (chained events, digests of rows, purged rows): the key is read
// from id_key_env or id_key_file, or from DefaultIDKeyFile beside the
// configuration file. With create, a missing default file is created (32
// random bytes, hex, mode 0600; two processes starting together agree on
// one key); a missing id_key_file or unset id_key_env is always an error.
// The key file's text (whitespace trimmed) is the key, as for
// `mpgdpr report --hash-ids FILE`. Errors name the variable or file, never
// the key.
func (c *Config) IDHasher(create bool) (*evidence.IDHasher, error) {
	if c.IDKeyEnv != "" {
		v, ok := os.LookupEnv(c.IDKeyEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, &ConfigError{Field: "id_key_env", Problem: fmt.Sprintf("environment variable %s is not set", c.IDKeyEnv)}
		}
		h, err := evidence.NewIDHasher([]byte(strings.TrimSpace(v)))
		if err != nil {
			return nil, &ConfigError{Field: "id_key_env", Problem: fmt.Sprintf("environment variable %s: the key is shorter than %d bytes", c.IDKeyEnv, evidence.MinKeyBytes)}
		}
		return h, nil
	}
	field, path := "id_key_file", c.IDKeyPath()
	if c.IDKeyFile == "" {
		field = "id_key (default " + DefaultIDKeyFile + ")"
		if create {
			if err := createIDKey(path); err != nil {
				return nil, &ConfigError{Field: field, Problem: fmt.Sprintf("cannot create %s: %v", path, pathless(err))}
			}
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, &ConfigError{Field: field, Problem: fmt.Sprintf("cannot read %s", path)}
	}
	if !st.Mode().IsRegular() || st.Size() > 64<<10 {
		return nil, &ConfigError{Field: field, Problem: fmt.Sprintf("%s is not a regular file of at most 64 KiB", path)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Field: field, Problem: fmt.Sprintf("cannot read %s", path)}
	}
	h, err := evidence.NewIDHasher([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, &ConfigError{Field: field, Problem: fmt.Sprintf("%s: the key is shorter than %d bytes", path, evidence.MinKeyBytes)}
	}
	return h, nil
}

// createIDKey writes a new random key at path unless a file is there
// already. The key is written whole to a temporary file first and linked
// into place, so a process starting at the same moment reads either no
// file or the complete one, and both end up with the same key.
func createIDKey(path string) error {
	if _, err := os.Lstat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil // there already (or unreadable: IDHasher says so)
	}
	key := make([]byte, idKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// pathless is err's text without the path an *fs.PathError repeats.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
