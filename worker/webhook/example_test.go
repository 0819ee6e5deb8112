package webhook_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr/worker/webhook"
)

// A receiver checks the signature on the raw body before parsing it, and
// remembers delivery ids to ignore a notice delivered twice.
func Example() {
	key := []byte("0123456789abcdef0123456789abcdef") // from your secret store
	seen := map[string]bool{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(key, r.Header.Get(webhook.SignatureHeader), body, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		id := r.Header.Get(webhook.DeliveryHeader)
		if !seen[id] {
			seen[id] = true
			fmt.Println("notice:", string(body))
		}
		w.WriteHeader(http.StatusNoContent)
	})

	// What the worker sends (twice: the first answer was lost, say).
	body := []byte(`{"reference":"DSR-4711","state":"done"}`)
	for range 2 {
		req := httptest.NewRequest(http.MethodPost, "/hooks/dsr", strings.NewReader(string(body)))
		req.Header.Set(webhook.SignatureHeader, webhook.Sign(key, time.Now(), body))
		req.Header.Set(webhook.DeliveryHeader, "dlv_1")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}

	// A forged notice.
	err := webhook.Verify(key, webhook.Sign([]byte("another key of 32 bytes or more.."), time.Now(), body), body, 0, time.Now())
	fmt.Println(errors.Is(err, webhook.ErrBadSignature))
	// Output:
	// notice: {"reference":"DSR-4711","state":"done"}
	// 204
	// 204
	// true
}
