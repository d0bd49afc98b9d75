package catalog

import "testing"

func TestReaderConfirms(t *testing.T) {
	r := &Reader{ID: "p", Revision: 10, Connections: map[string]int{"web/a": 2, "web/b": 0}}
	for _, tc := range []struct {
		rev  int64
		conn string
		want bool
	}{
		{9, "", true},
		{10, "", true},
		{11, "", false},
		{10, "web/a", false},
		{10, "web/b", true},
		{10, "web/c", true},
		{11, "web/c", false},
	} {
		if got := r.Confirms(tc.rev, tc.conn); got != tc.want {
			t.Errorf("Confirms(%d, %q) = %v, want %v", tc.rev, tc.conn, got, tc.want)
		}
	}
}
