package mpgdprtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr/export"
)

// exportEpoch anchors the generated events, so every run builds the same
// files.
var exportEpoch = time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)

// ExportFiles returns the files an export for these distinct ids holds,
// name to contents: for each id, events/<id>.json (a JSON array of three
// events) and profiles/<id>.json (its profile), the id path-escaped. The
// contents depend only on the id, so a test can compare what it extracted.
func ExportFiles(distinctIDs ...string) map[string][]byte {
	files := make(map[string][]byte, 2*len(distinctIDs))
	for _, id := range distinctIDs {
		sum := sha256.Sum256([]byte(id))
		tag := hex.EncodeToString(sum[:4])
		var events []map[string]any
		for i, name := range []string{"Signed Up", "Viewed Page", "Purchased"} {
			events = append(events, map[string]any{
				"event": name,
				"properties": map[string]any{
					"distinct_id": id,
					"time":        exportEpoch.Add(time.Duration(i) * time.Hour).Unix(),
					"$insert_id":  fmt.Sprintf("%s-%d", tag, i),
					"mp_lib":      "web",
				},
			})
		}
		profile := map[string]any{
			"$distinct_id": id,
			"$properties": map[string]any{
				"$email":   "user-" + tag + "@example.invalid",
				"$name":    "Test User " + tag,
				"$created": exportEpoch.Format(time.RFC3339),
			},
		}
		name := url.PathEscape(id)
		files["events/"+name+".json"] = mustJSON(events)
		files["profiles/"+name+".json"] = mustJSON(profile)
	}
	return files
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// buildArchive writes the export as Mixpanel does: a zip whose entries are
// encrypted with the API secret (ZipCrypto).
func buildArchive(ids []string, secret string) ([]byte, error) {
	var buf bytes.Buffer
	zw := export.NewWriter(&buf, secret)
	files := ExportFiles(ids...)
	// Archive order follows the request's ids, events before profiles.
	for _, id := range ids {
		for _, dir := range []string{"events/", "profiles/"} {
			name := dir + url.PathEscape(id) + ".json"
			data, ok := files[name]
			if !ok {
				continue // a duplicate id, already written
			}
			delete(files, name)
			w, err := zw.Create(name)
			if err != nil {
				return nil, err
			}
			if _, err := w.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// serveDownload is the download host: /exports/<tracking id>.zip?sig=…,
// with no credentials needed, like the pre-signed storage link Mixpanel
// hands out. What credentials arrived anyway is recorded.
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request) {
	rec := Request{
		Time: s.cfg.now(), Host: r.Host, Method: r.Method, Path: r.URL.Path, Op: OpDownload,
		Bearer: s.bearerState(r), ProjectToken: s.tokenState(r),
	}
	// Recorded once: before a hang-up (the client may look as soon as its
	// connection drops), otherwise when the handler returns, which is before
	// net/http flushes the answer.
	recorded := false
	recordNow := func() {
		if !recorded {
			recorded = true
			s.record(rec)
		}
	}
	defer recordNow()
	f := s.takeFault(OpDownload, r)
	if f != nil {
		rec.Fault = f.kind()
		if !s.wait(r, f.Latency) {
			return
		}
		if f.Reset != NoReset {
			recordNow()
			reset(w)
			return
		}
		if f.answers() {
			writeFault(w, f)
			rec.Status = max(f.Status, http.StatusOK)
			return
		}
	}
	c := &capture{header: http.Header{}}
	s.exportTo(c, r)
	if c.code == 0 {
		c.code = http.StatusOK
	}
	rec.Status = c.code
	// Before emitting: a large answer (an export) or a cut one reaches the
	// client before this handler returns.
	recordNow()
	emit(w, c, f)
}

// exportTo answers a download: /exports/<tracking id>.zip?sig=… of a
// finished retrieval. Range requests are served, so clients can resume.
func (s *Server) exportTo(w *capture, r *http.Request) {
	fail := func(code int) { http.Error(w, http.StatusText(code), code) }
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fail(http.StatusMethodNotAllowed)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/exports/")
	id, zip := strings.CutSuffix(id, ".zip")
	if !ok || !zip {
		fail(http.StatusNotFound)
		return
	}
	s.mu.Lock()
	t, found := s.tasks[id]
	if found {
		s.settle(t)
	}
	if !found || t.Kind != Retrieval || t.Status != StatusSuccess {
		s.mu.Unlock()
		fail(http.StatusNotFound)
		return
	}
	if r.URL.Query().Get("sig") != t.sig {
		s.mu.Unlock()
		fail(http.StatusForbidden) // as a storage host answers a bad signature
		return
	}
	if t.archive == nil {
		var err error
		if t.archive, err = buildArchive(t.DistinctIDs, s.cfg.secret); err != nil {
			s.mu.Unlock()
			fail(http.StatusInternalServerError)
			return
		}
	}
	t.Downloads++
	data, modified := t.archive, t.since
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/zip")
	http.ServeContent(w, r, id+".zip", modified, bytes.NewReader(data))
}
