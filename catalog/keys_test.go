package catalog

import (
	"net/netip"
	"testing"
)

func TestNewKeyspace(t *testing.T) {
	tests := []struct {
		prefix string
		want   string
		ok     bool
	}{
		{"", DefaultPrefix, true},
		{"/netsel/", "/netsel/", true},
		{"/a/b/", "/a/b/", true},
		{"/", "/", true},
		{"netsel/", "", false},
		{"/netsel", "", false},
		{"/a//b/", "", false},
	}
	for _, tt := range tests {
		ks, err := NewKeyspace(tt.prefix)
		if (err == nil) != tt.ok {
			t.Errorf("NewKeyspace(%q) error = %v, want ok=%v", tt.prefix, err, tt.ok)
			continue
		}
		if tt.ok && ks.Prefix() != tt.want {
			t.Errorf("NewKeyspace(%q).Prefix() = %q, want %q", tt.prefix, ks.Prefix(), tt.want)
		}
	}
}

func TestKeysRoundTrip(t *testing.T) {
	ks := MustKeyspace("/netsel/")
	vip := netip.MustParseAddr("127.77.0.9")
	tests := []struct {
		key  string
		want Key
	}{
		{ks.ServiceKey("web"), Key{Kind: KindService, Service: "web"}},
		{ks.InstanceKey("web", "i-1"), Key{Kind: KindInstance, Service: "web", ID: "i-1"}},
		{ks.VIPKey(vip), Key{Kind: KindVIP, VIP: vip}},
		{ks.VIPKey(netip.MustParseAddr("fd00::1")), Key{Kind: KindVIP, VIP: netip.MustParseAddr("fd00::1")}},
	}
	for _, tt := range tests {
		got, ok := ks.ParseKey(tt.key)
		if !ok || got != tt.want {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", tt.key, got, ok, tt.want)
		}
	}
	if want := "/netsel/instances/web/i-1"; ks.InstanceKey("web", "i-1") != want {
		t.Errorf("InstanceKey = %q, want %q", ks.InstanceKey("web", "i-1"), want)
	}
}

func TestParseKeyRejects(t *testing.T) {
	ks := MustKeyspace("/netsel/")
	for _, key := range []string{
		"/other/services/web",
		"/netsel/services/Web",
		"/netsel/services/",
		"/netsel/services/web/extra",
		"/netsel/instances/web",
		"/netsel/instances/web/",
		"/netsel/instances/web/a/b",
		"/netsel/vips/not-an-ip",
		"/netsel/vips/fe80::1%eth0",
		"/netsel/unknown/x",
		"/netsel/",
	} {
		if k, ok := ks.ParseKey(key); ok {
			t.Errorf("ParseKey(%q) = %+v, want rejection", key, k)
		}
	}
}
