// Package pgtest gives tests a fresh PostgreSQL database each.
//
// The databases live on the cluster named by MPGDPR_TEST_POSTGRES_URL (an
// admin URL: a role that may CREATE DATABASE), which `make test` provides
// through scripts/pgtest-cluster. Without it, the first test that asks
// starts a throwaway cluster of its own (see Start), stopped when the test
// binary ends: call Main from TestMain.
//
// Where no PostgreSQL can be had, tests that need it are skipped, except in
// CI (the CI environment variable set): there they fail with the reason,
// since a skipped test there would hide a broken setup.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/privacykit/mpgdpr/internal/redact"
)

// EnvURL is the environment variable naming the cluster to make test
// databases on.
const EnvURL = "MPGDPR_TEST_POSTGRES_URL"

var (
	mainCalled atomic.Bool
	once       sync.Once
	admin      string   // admin URL, once known
	adminErr   error    // why there is none
	cluster    *Cluster // started by this binary, if any
	createMu   sync.Mutex
)

// Main runs the tests and then stops the cluster this binary started, if
// any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with more to do after the tests: it runs them,
// stops the cluster this binary started, if any, and returns the exit code.
func Run(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}

// adminURL is the cluster's admin URL: MPGDPR_TEST_POSTGRES_URL, or a
// cluster started now (once per binary).
func adminURL() (string, error) {
	once.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			admin = u
			return
		}
		if !mainCalled.Load() {
			adminErr = fmt.Errorf("pgtest: %s is unset and TestMain does not call pgtest.Main, which would stop a cluster started here", EnvURL)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := Start(ctx)
		if err != nil {
			adminErr = fmt.Errorf("%s is unset and a cluster could not be started: %w", EnvURL, err)
			return
		}
		cluster, admin = c, c.URL()
	})
	return admin, adminErr
}

// URL returns the URL of a new, empty database for this test, dropped when
// the test ends. It skips the test if PostgreSQL cannot be had, or fails
// it in CI or when MPGDPR_TEST_POSTGRES_URL is set but does not work.
func URL(t testing.TB) string {
	t.Helper()
	a, err := adminURL()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("no PostgreSQL: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("mpgdpr_test_%d_%s", os.Getpid(), hex.EncodeToString(b[:]))
	u, err := databaseURL(a, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := adminExec(a, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database on %s: %v", redact.URL(a), err)
	}
	t.Cleanup(func() {
		// FORCE: a test's pool may still hold connections.
		if err := adminExec(a, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return u
}

// NewCluster starts a cluster of the test's own, stopped and removed when
// the test ends, for tests that stop the database (Down, Up) or must not
// share it. It skips or fails as URL does. Most tests want URL: a cluster
// costs seconds to make.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("no PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// adminExec runs one statement on the admin database. CREATE DATABASE calls are
// serialised within the binary: concurrent copies of template1 can fail.
func adminExec(adminURL, sql string) error {
	createMu.Lock()
	defer createMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// databaseURL is admin with its database replaced by name.
func databaseURL(admin, name string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgtest: %s must be a postgres:// URL", EnvURL)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}
