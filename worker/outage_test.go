package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// cutProxy forwards TCP to target until cut: then it drops every
// connection and refuses new ones until restored, as a database that
// restarts does.
type cutProxy struct {
	target string
	mu     sync.Mutex
	ln     net.Listener
	addr   string
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	p := &cutProxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore(t *testing.T) {
	var ln net.Listener
	var err error
	for range 50 { // the port was just closed; take it again
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// The database goes away mid-run for a few seconds: the worker waits and
// resumes, and every request is filed once and followed to its end.
func TestPostgresOutageWorkerWaitsAndResumes(t *testing.T) {
	t.Parallel()
	fakes := twoFakes(t)
	direct := newPGEnv(t, fakes) // makes the database and its tables
	u, err := url.Parse(direct.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.addr
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w, err := NewPostgres(context.Background(), pool, direct.cfg, WithRiverConfig(testRiverConfig),
		WithClientOptions(mpgdpr.WithRetryPolicy(mpgdpr.NoRetries())))
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: direct.dir, cfg: direct.cfg, fakes: fakes, svc: w, url: u.String()}
	ctx := context.Background()
	e.start()
	const n = 20
	for i := range n {
		if _, err := direct.svc.Enqueue(ctx, Request{Reference: fmt.Sprintf("O-%d", i), Kind: Deletion, ComplianceType: mpgdpr.GDPR,
			DistinctIDs: []string{fmt.Sprintf("o-%d", i)}, AllProjects: true}); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			proxy.cut()
			time.Sleep(3 * time.Second)
			proxy.restore(t)
		}
	}
	waitFor(t, "every item done", func() bool { total, ok := direct.itemsIn(StateDone); return total == 2*n && ok })
	for name, f := range fakes {
		times := filedTimes(f, mpgdprtest.Deletion)
		for i := range n {
			if c := times[fmt.Sprintf("o-%d", i)]; c != 1 {
				t.Errorf("%s: o-%d filed %d times", name, i, c)
			}
		}
	}
}
