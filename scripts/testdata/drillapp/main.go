// Command drillapp is what scripts/release-drill builds in a new module that
// requires github.com/privacykit/mpgdpr and its worker at the version being
// released, fetched through a module proxy as a user would: the client
// files a deletion and checks it, then the worker, on a SQLite file, takes
// a request and follows it to the end. It runs against `mpgdpr fake` (its
// default tokens), whose API URL is DRILL_API_URL. It lives under testdata/
// so that the repository's own modules never build it.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "drillapp:", err)
		os.Exit(1)
	}
}

func run() error {
	api := os.Getenv("DRILL_API_URL")
	if api == "" {
		return fmt.Errorf("DRILL_API_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The library.
	c, err := mpgdpr.New(os.Getenv("DRILL_OAUTH"), os.Getenv("DRILL_PROJECT"), mpgdpr.WithBaseURL(api))
	if err != nil {
		return err
	}
	id, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"drill-user-1"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		return fmt.Errorf("CreateDeletion: %w", err)
	}
	task, err := c.CheckDeletion(ctx, id)
	if err != nil {
		return fmt.Errorf("CheckDeletion: %w", err)
	}
	fmt.Printf("drillapp: library %s: deletion %s is %s\n", mpgdpr.Version, id, task.Status)

	// The worker, on a SQLite file.
	dir, err := os.MkdirTemp("", "drillapp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Every path in the temporary directory: a config parsed from text
	// takes relative paths (the default ID key file too) from the current
	// directory. The ID key is the drill's own.
	if err := os.WriteFile(filepath.Join(dir, "id.key"), []byte("drillapp-id-key-0123456789abcdef\n"), 0o600); err != nil {
		return err
	}
	cfg, err := worker.ParseConfig(fmt.Sprintf(`batch_window = "200ms"
poll_min = "10ms"
poll_max = "40ms"
export_dir = %q
id_key_file = %q

[[project]]
name = "drill"
base_url = %q
rate = 50
oauth_token_env = "DRILL_OAUTH"
project_token_env = "DRILL_PROJECT"
`, filepath.Join(dir, "exports"), filepath.Join(dir, "id.key"), api))
	if err != nil {
		return err
	}
	svc, closeDB, err := worker.Open(ctx, cfg, "sqlite:"+filepath.Join(dir, "drill.db"))
	if err != nil {
		return err
	}
	defer closeDB()
	if _, err := svc.Enqueue(ctx, worker.Request{
		Reference:      "DRILL-1",
		Kind:           worker.Deletion,
		ComplianceType: mpgdpr.GDPR,
		DistinctIDs:    []string{"drill-user-2"},
		AllProjects:    true,
	}); err != nil {
		return fmt.Errorf("Enqueue: %w", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(runCtx, 5*time.Second) }()
	for {
		rs, err := svc.RequestStatus(ctx, "DRILL-1")
		if err != nil {
			return fmt.Errorf("RequestStatus: %w", err)
		}
		if len(rs.Items) == 1 && rs.Items[0].State == worker.StateDone {
			break
		}
		select {
		case err := <-ran:
			return fmt.Errorf("the worker stopped before DRILL-1 was done: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("DRILL-1 not done in time: %+v", rs.Items)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	if err := <-ran; err != nil {
		return fmt.Errorf("worker Run: %w", err)
	}
	fmt.Println("drillapp: worker: request DRILL-1 filed and followed to done")
	return nil
}
