package registrar

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// TestRecoverPanics: a handler that panics is answered 500 in JSON, and the
// server keeps serving.
func TestRecoverPanics(t *testing.T) {
	r := &Registrar{
		cfg:     Config{RequestTimeout: time.Second},
		log:     slog.New(slog.DiscardHandler),
		metrics: newMetrics(),
	}
	mux := http.NewServeMux()
	mux.Handle("GET /boom", r.endpoint("", func(http.ResponseWriter, *http.Request) error { panic("boom") }))
	mux.Handle("GET /ok", r.endpoint("", func(w http.ResponseWriter, _ *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
		return nil
	}))
	srv := httptest.NewServer(r.middleware(mux))
	defer srv.Close()

	for range 2 {
		resp, err := http.Get(srv.URL + "/boom")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e api.Error
		if resp.StatusCode != http.StatusInternalServerError || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Fatalf("panicking handler: %d %s, want a JSON 500", resp.StatusCode, b)
		}
	}
	resp, err := http.Get(srv.URL + "/ok")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after panics: %v %v", resp, err)
	}
	resp.Body.Close()
}
