package checks

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/netsel/netsel/catalog"
)

// TestClip: clip keeps outputs short, valid UTF-8 and free of control
// characters, whatever an instance answers.
func TestClip(t *testing.T) {
	long := strings.Repeat("é", catalog.MaxCheckOutput) // 2 bytes each
	for _, tc := range []struct{ in, want string }{
		{"HTTP GET /: 200 OK", "HTTP GET /: 200 OK"},
		{"a\tb\r\nc", "a b  c"},
		{"\x1b[2Jx\x07\x7f", "?[2Jx??"},
		{"\u009b31m", "?31m"}, // C1 CSI
		{"bad\xffutf8", "badutf8"},
		{long, long[:catalog.MaxCheckOutput]},
		{"x" + long, "x" + long[:catalog.MaxCheckOutput-2]},
		{strings.Repeat("\u0085", catalog.MaxCheckOutput), strings.Repeat("?", catalog.MaxCheckOutput)},
	} {
		got := clip(tc.in)
		if got != tc.want {
			t.Errorf("clip(%.40q) = %.40q, want %.40q", tc.in, got, tc.want)
		}
		if len(got) > catalog.MaxCheckOutput || !utf8.ValidString(got) {
			t.Errorf("clip(%.40q): %d bytes, valid UTF-8 %v", tc.in, len(got), utf8.ValidString(got))
		}
	}
}
