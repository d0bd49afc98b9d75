package etcdendpoint

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		ep      string
		wantErr string // empty: accepted
	}{
		{"http://127.0.0.1:2379", ""},
		{"https://etcd-0.example.org:2379/", ""},
		{"http://[::1]:2379", ""},
		{"unix:///run/etcd.sock", ""},
		{"unixs://etcd.sock", ""},
		{"127.0.0.1:2379", "is not a URL"},
		{"ftp://127.0.0.1:2379", "scheme must be"},
		{"not-a-url", "scheme must be"},
		{"http://:2379", "has no host"},
		{"http://127.0.0.1", "needs host:port"},
		{"http://h:99999", "not in 1-65535"},
		{"http://h:0", "not in 1-65535"},
		{"http://h:2379/v3", "scheme://host:port only"},
		{"http://h:2379?x=1", "scheme://host:port only"},
		{"http://u:p@h:2379", "scheme://host:port only"},
		{"unix://", "has no socket path"},
		{"http://%zz", "is not a URL"},
	}
	for _, tt := range tests {
		err := Check(tt.ep)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Check(%q) = %v, want it accepted", tt.ep, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Check(%q) = %v, want an error containing %q", tt.ep, err, tt.wantErr)
		}
	}
}
