//go:build unix

package main

// Helpers for the tests that run `mpgdpr fake` as a process and talk to it
// over HTTP only. This file and fake_http_test.go use nothing of the
// project: what they prove holds for any client in any language.

import (
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
)

// Credentials the fakes of these tests accept. They look like real ones
// so that a leak is noticed: none may appear in any output.
const (
	fakeOAuth   = "fake-oauth-Zq8Jw2Lk9Rt4Vn6Xb1Hc"
	fakeProject = "fake-project-Pm3Ds7Gf5Ya0Ue2Wi"
	fakeSecret  = "fake-secret-Ko4Nj8Bh6Tl1Qe9Rz"
	fakeControl = "fake-control-Ax5Cv7Bn3Mq8Lp2Ws"
)

// fakeEnv passes the credentials through the environment, as documented.
var fakeEnv = []string{
	"MPGDPR_FAKE_OAUTH_TOKEN=" + fakeOAuth,
	"MPGDPR_FAKE_PROJECT_TOKEN=" + fakeProject,
	"MPGDPR_FAKE_API_SECRET=" + fakeSecret,
}

// fakeProc is a running `mpgdpr fake` (a serveProc: its first line, the
// rest of stdout, stderr) and its --json first line, decoded.
type fakeProc struct {
	*serveProc
	ready fakeReadyLine
}

// fakeReadyLine is the --json first line.
type fakeReadyLine struct {
	APIURL       string `json:"api_url"`
	DownloadHost string `json:"download_host"`
	DownloadURL  string `json:"download_url"`
	ControlURL   string `json:"control_url"`
	PID          int    `json:"pid"`
}

// startFake starts `mpgdpr fake args...` and waits for its first line.
// With --json among args the line is decoded into p.ready.
func startFake(t *testing.T, env []string, args ...string) *fakeProc {
	t.Helper()
	p := &fakeProc{serveProc: startServe(t, env, append([]string{"fake"}, args...)...)}
	t.Cleanup(func() {
		// Before startServe's own cleanup (registered first, run last).
		_ = p.cmd.Process.Kill()
		<-p.done
		noLeak(t, "the fake's stderr", p.stderr.String())
	})
	noLeak(t, "the fake's first line", p.first)
	for _, a := range args {
		if a == "--json" {
			if err := json.Unmarshal([]byte(p.first), &p.ready); err != nil {
				t.Fatalf("first line %q: %v", p.first, err)
			}
		}
	}
	return p
}

// stop sends SIGTERM and waits for the exit status.
func (p *fakeProc) stop(t *testing.T) int {
	t.Helper()
	code := p.serveProc.stop(t)
	if p.rest.Len() > 0 {
		t.Errorf("stdout after the first line: %q", p.rest.String())
	}
	return code
}

// noLeak fails if s holds any of the fakes' credentials.
func noLeak(t *testing.T, where, s string) {
	t.Helper()
	for _, x := range []string{fakeOAuth, fakeProject, fakeSecret, fakeControl} {
		if strings.Contains(s, x) {
			t.Errorf("%s shows a credential (%.10s…): %s", where, x, s)
		}
	}
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lookTool finds an external tool, skipping the test if it is missing.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (make deps installs zip/unzip)", name)
	}
	return p
}
