//go:build !unix

package pgtest

import (
	"context"
	"errors"
	"testing"
)

// Cluster is a throwaway PostgreSQL server; on this system Start is not
// supported: set MPGDPR_TEST_POSTGRES_URL to a cluster of your own.
type Cluster struct{}

var errUnsupported = errors.New("pgtest: starting a throwaway cluster needs a Unix system; set " + EnvURL)

// Start is not supported on this system.
func Start(context.Context) (*Cluster, error) { return nil, errUnsupported }

// URL is empty: no cluster is started on this system.
func (c *Cluster) URL() string { return "" }

// Down does nothing on this system.
func (c *Cluster) Down() {}

// Up is not supported on this system.
func (c *Cluster) Up(context.Context) error { return errUnsupported }

// Stop does nothing on this system.
func (c *Cluster) Stop() error { return nil }

// Dump is not supported on this system: it skips the test.
func Dump(t testing.TB, _ string) []byte {
	t.Skip("pgtest: pg_dump is found only on Unix systems")
	return nil
}
