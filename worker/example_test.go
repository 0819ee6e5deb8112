package worker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
)

// A worker on a SQLite file erases one person in two projects (two fake
// Mixpanel servers standing in for the US and EU regions).
func Example() {
	dir, _ := os.MkdirTemp("", "worker-example-")
	defer os.RemoveAll(dir)
	us, eu := mpgdprtest.NewServer(), mpgdprtest.NewServer()
	defer us.Close()
	defer eu.Close()
	// Secrets come from files (or environment variables), never the config.
	for name, f := range map[string]*mpgdprtest.Server{"us": us, "eu": eu} {
		_ = os.WriteFile(filepath.Join(dir, name+".oauth"), []byte(f.OAuthToken()), 0o600)
		_ = os.WriteFile(filepath.Join(dir, name+".token"), []byte(f.ProjectToken()), 0o600)
	}
	config := fmt.Sprintf(`
batch_window = "200ms"
poll_min = "20ms"
poll_max = "50ms"
[[project]]
name = "web-us"
base_url = %q          # region = "us" against Mixpanel
oauth_token_file = "us.oauth"
project_token_file = "us.token"
rate = 100
[[project]]
name = "web-eu"
base_url = %q          # region = "eu"
oauth_token_file = "eu.oauth"
project_token_file = "eu.token"
rate = 100
`, us.URL(), eu.URL())
	path := filepath.Join(dir, "worker.toml")
	_ = os.WriteFile(path, []byte(config), 0o600)

	cfg, err := worker.LoadConfig(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	svc, closeDB, err := worker.Open(ctx, cfg, "") // a SQLite file beside the config
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeDB()
	res, err := svc.Enqueue(ctx, worker.Request{
		Reference: "DSR-1001", Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR,
		DistinctIDs: []string{"user-42"}, AllProjects: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("enqueued for", res.Projects)

	if err := svc.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Stop(ctx)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rs, _ := svc.RequestStatus(ctx, "DSR-1001")
		if rs != nil && rs.Items[0].State == worker.StateDone && rs.Items[1].State == worker.StateDone {
			for _, it := range rs.Items {
				fmt.Println(it.Project, it.State, it.Tasks[0].Status)
			}
			return
		}
	}
	fmt.Println("not done")
	// Output:
	// enqueued for [web-eu web-us]
	// web-eu done SUCCESS
	// web-us done SUCCESS
}
