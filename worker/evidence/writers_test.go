package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIDHasher(t *testing.T) {
	a, err := NewIDHasher([]byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewIDHasher([]byte("0123456789abcdef"))
	c, _ := NewIDHasher([]byte("0123456789abcdeF"))
	if a.Hash("alice") != b.Hash("alice") || a.Hash("alice") == c.Hash("alice") || a.Hash("alice") == a.Hash("bob") || len(a.Hash("x")) != 64 {
		t.Error("same key must give the same hash, another key or ID another")
	}
	// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" (a short key, so through the internal constructor).
	j := &IDHasher{key: []byte("Jefe")}
	if got := j.Hash("what do ya want for nothing?"); got != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Errorf("HMAC-SHA-256 %s", got)
	}
	if _, err := NewIDHasher([]byte("short")); err == nil {
		t.Error("a 5-byte key accepted")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("0123456789abcdef\n"), 0o600)
	f, err := LoadIDHasher(key)
	if err != nil || f.Hash("alice") != a.Hash("alice") {
		t.Errorf("from a file (newline trimmed): %v", err)
	}
	t.Setenv("MPGDPR_TEST_HASH_KEY", "0123456789abcdef")
	e, err := LoadIDHasher("env:MPGDPR_TEST_HASH_KEY")
	if err != nil || e.Hash("alice") != a.Hash("alice") {
		t.Errorf("from the environment: %v", err)
	}
	_, err = LoadIDHasher("env:MPGDPR_TEST_NO_SUCH")
	if err == nil || !strings.Contains(err.Error(), "MPGDPR_TEST_NO_SUCH") {
		t.Errorf("unset variable: %v", err)
	}
	os.WriteFile(key, []byte("secret-but-short"[:10]), 0o600)
	if _, err := LoadIDHasher(key); err == nil || strings.Contains(err.Error(), "secret-but") {
		t.Errorf("short key: %v (must not quote it)", err)
	}
}

func oneRecord() *Record {
	at := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	return &Record{Reference: "DSR-1", Project: "web", Kind: "retrieval", ComplianceType: "GDPR", DistinctIDs: []string{"alice", "al,ice \"q\""}, IDs: 2,
		ReceivedAt: at, SourceState: "done", Resubmissions: 1, CompletedAt: at.Add(36 * time.Hour),
		Tasks: []Task{
			{TaskID: "t1", Origin: "filed", FiledAt: at.Add(time.Minute), Statuses: []StatusSeen{{"FAILURE", at.Add(time.Hour)}}, DoneAt: at.Add(time.Hour)},
			{TaskID: "t2", Origin: "conflict", FiledAt: at.Add(2 * time.Hour), Statuses: []StatusSeen{{"PENDING", at.Add(3 * time.Hour)}, {"SUCCESS", at.Add(36 * time.Hour)}},
				DoneAt: at.Add(36 * time.Hour), ExportBytes: 1234, ExportSHA256: strings.Repeat("ab", 32)},
		},
		Notes:     []Note{{At: at.Add(time.Hour), Event: "resubmitted", TaskID: "t1", Detail: "FAILURE for alice: filed again"}},
		ChainHash: strings.Repeat("cd", 32)}
}

func TestCSVColumnsAndValues(t *testing.T) {
	for _, h := range []*IDHasher{nil, {key: []byte("0123456789abcdef")}} {
		var buf bytes.Buffer
		if _, err := Generate(context.Background(), SliceSource{oneRecord()}, nil, Filter{}, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), NewCSVWriter(&buf, h)); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil || len(rows) != 2 || !slices.Equal(rows[0], CSVColumns) {
			t.Fatalf("%v %v", rows, err)
		}
		got := map[string]string{}
		for i, c := range CSVColumns {
			got[c] = rows[1][i]
		}
		ids := `["alice","al,ice \"q\""]`
		if h != nil {
			ids = `["` + h.Hash("alice") + `","` + h.Hash(`al,ice "q"`) + `"]`
		}
		want := map[string]string{
			"reference": "DSR-1", "project": "web", "kind": "retrieval", "compliance_type": "GDPR", "ids": "2", "distinct_ids": ids,
			"received_at": "2026-01-31T09:00:00Z", "first_filed_at": "2026-01-31T09:01:00Z", "task_ids": "t1 t2", "conflict_task_ids": "t2",
			"last_status": "SUCCESS", "last_status_at": "2026-02-01T21:00:00Z", "completed_at": "2026-02-01T21:00:00Z", "days_to_complete": "1.50",
			"regulation": "GDPR", "deadline": "2026-02-28", "deadline_state": "met", "extended": "false", "export_bytes": "1234",
			"export_sha256": strings.Repeat("ab", 32), "resubmissions": "1", "source_state": "done", "chain_hash": strings.Repeat("cd", 32),
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("hashed %v: %s = %q, want %q", h != nil, k, got[k], v)
			}
		}
		if h != nil && (strings.Contains(got["notes"], "alice") || !strings.Contains(got["notes"], h.Hash("alice"))) || h == nil && !strings.Contains(got["notes"], "for alice") {
			t.Errorf("hashed %v: notes %q", h != nil, got["notes"])
		}
	}
	// An empty report still has its header.
	var buf bytes.Buffer
	w := NewCSVWriter(&buf, nil)
	if err := w.Close(); err != nil || strings.TrimSpace(buf.String()) != strings.Join(CSVColumns, ",") {
		t.Errorf("empty: %q %v", buf.String(), err)
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	open := oneRecord()
	open.Reference, open.CompletedAt = "DSR-2", time.Time{}
	n, err := Generate(context.Background(), SliceSource{oneRecord(), open}, nil, Filter{}, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), NewJSONLWriter(&buf, nil))
	if err != nil || n != 2 {
		t.Fatal(n, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var a, b map[string]any
	json.Unmarshal([]byte(lines[0]), &a)
	json.Unmarshal([]byte(lines[1]), &b)
	if a["v"] != 1.0 || a["days_to_complete"] != 1.5 || a["deadline"].(map[string]any)["state"] != "met" || len(a["tasks"].([]any)) != 2 {
		t.Errorf("line 1: %s", lines[0])
	}
	if b["completed_at"] != nil || b["days_to_complete"] != nil || b["deadline"].(map[string]any)["state"] != "overdue" {
		t.Errorf("line 2: %s", lines[1])
	}
}

func TestFilterAndErrors(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	open := oneRecord()
	open.Reference, open.CompletedAt = "DSR-2", time.Time{}
	other := oneRecord()
	other.Reference, other.Project, other.ReceivedAt = "DSR-3", "app", now.Add(-time.Hour)
	other.CompletedAt = time.Time{}
	src := SliceSource{oneRecord(), open, other}
	count := func(f Filter) int {
		var buf bytes.Buffer
		n, err := Generate(context.Background(), src, nil, f, now, NewJSONLWriter(&buf, nil))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for f, want := range map[*Filter]int{
		{}: 3, {State: "done"}: 1, {State: "open"}: 2, {State: "overdue"}: 1, {Project: "app"}: 1,
		{Since: now.Add(-2 * time.Hour)}: 1, {Until: now.Add(-2 * time.Hour)}: 2,
	} {
		if got := count(*f); got != want {
			t.Errorf("%+v: %d, want %d", *f, got, want)
		}
	}
	if _, err := Generate(context.Background(), src, nil, Filter{State: "late"}, now, NewJSONLWriter(&bytes.Buffer{}, nil)); err == nil {
		t.Error("a bad state accepted")
	}
	boom := errors.New("disk full")
	if _, err := Generate(context.Background(), src, nil, Filter{}, now, failing{boom}); !errors.Is(err, boom) {
		t.Errorf("a writer's error: %v", err)
	}
}

type failing struct{ err error }

func (f failing) Write(*Record) error { return f.err }
func (f failing) Close() error        { return nil }

func TestHeadsSignature(t *testing.T) {
	hf := &HeadsFile{V: 1, At: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Heads: []Head{{"web", 3, "aa"}, {"", 2, "bb"}}}
	seed := bytes.Repeat([]byte{7}, 32)
	key := ed25519.NewKeyFromSeed(seed)
	hf.Sign(key)
	pub := key.Public().(ed25519.PublicKey)
	if err := hf.VerifySignature(pub); err != nil {
		t.Fatal(err)
	}
	hf.Heads[0].Seq = 2
	if err := hf.VerifySignature(pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("an edited heads file verifies: %v", err)
	}
	hf.Signature = ""
	if err := hf.VerifySignature(pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("an unsigned heads file verifies: %v", err)
	}
}

// A purged record's IDs are already keyed hashes: every report shows them
// as they are (hashing them again would hide the person from 'report
// hash-id'), and JSON Lines says they are hashes.
func TestPurgedIDsShownAsStored(t *testing.T) {
	h, _ := NewIDHasher([]byte("a key of at least sixteen bytes"))
	stored := h.Hash("gone@example.com")
	r := oneRecord()
	r.DistinctIDs, r.IDs, r.IDsKeyed = []string{stored}, 1, true
	for _, hasher := range []*IDHasher{nil, h} {
		var c, j bytes.Buffer
		now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		if _, err := Generate(context.Background(), SliceSource{r}, nil, Filter{}, now, NewCSVWriter(&c, hasher)); err != nil {
			t.Fatal(err)
		}
		if _, err := Generate(context.Background(), SliceSource{r}, nil, Filter{}, now, NewJSONLWriter(&j, hasher)); err != nil {
			t.Fatal(err)
		}
		var rec JSONRecord
		if err := json.Unmarshal(j.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(c.String(), stored) || len(rec.DistinctIDs) != 1 || rec.DistinctIDs[0] != stored || !rec.IDsHashed {
			t.Errorf("hasher %v: csv %s json %+v", hasher != nil, c.String(), rec)
		}
	}
}
