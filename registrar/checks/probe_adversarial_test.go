package checks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAdversarialProbeOutputControl: a hostile instance answers its HTTP
// check with a body of terminal control sequences. The start of the body
// becomes the check's output, stored in etcd and shown by the API and by
// `netsel instances` (and logged in the "instance state changed" line):
// ESC [2J clears the operator's screen, a newline forges lines. clip only
// makes the output valid UTF-8.
// Expected: control characters (other than none) do not reach the output;
// they are dropped or escaped.
func TestAdversarialProbeOutputControl(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("\x1b[2J\x1b[Hok\r\nweb  b  127.0.0.9:80  passing\x07"))
	}))
	defer srv.Close()
	r := newProber(nil).probe(context.Background(), httpTarget(t, srv, "/", time.Second))
	out := clip(r.output)
	if i := strings.IndexFunc(out, func(c rune) bool { return c < ' ' || c == 0x7f }); i >= 0 {
		t.Errorf("output %q carries control character %q from the instance's body", out, out[i])
	}
}
