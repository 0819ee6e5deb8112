//go:build unix

package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestURL: each call is a database of its own, usable, and gone after the
// test.
func TestURL(t *testing.T) {
	var first string
	t.Run("a", func(t *testing.T) {
		first = URL(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE x (id int)"); err != nil {
			t.Fatal(err)
		}
		second := URL(t)
		if second == first {
			t.Fatalf("two calls gave one database: %s", first)
		}
		c2, err := pgx.Connect(ctx, second)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close(ctx)
		var n int
		if err := c2.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'x'").Scan(&n); err != nil || n != 0 {
			t.Fatalf("second database sees the first's table: n=%d err=%v", n, err)
		}
	})
	if first == "" {
		return // skipped
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, first)
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("database %s still exists after its test", first)
	}
}

// TestStartStop starts a cluster of its own, as the tests do without
// MPGDPR_TEST_POSTGRES_URL, and checks Stop removes everything.
func TestStartStop(t *testing.T) {
	if _, err := binDir(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		_ = c.Stop()
		t.Fatal(err)
	}
	var fsync string
	err = conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync)
	if err != nil || fsync != "off" {
		t.Errorf("fsync = %q, %v; want off", fsync, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (id int)"); err != nil {
		t.Error(err)
	}
	conn.Close(ctx)
	// Down and Up: same URL, data kept.
	c.Down()
	if conn, err := pgx.Connect(ctx, c.URL()); err == nil {
		conn.Close(ctx)
		t.Error("connected while the server was down")
	}
	if err := c.Up(ctx); err != nil {
		_ = c.Stop()
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, c.URL())
	if err != nil {
		_ = c.Stop()
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT * FROM kept"); err != nil {
		t.Errorf("table gone after Down and Up: %v", err)
	}
	conn.Close(ctx)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Stop: %v", c.dir, err)
	}
	select {
	case <-c.done:
	default:
		t.Error("postgres still running after Stop")
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
