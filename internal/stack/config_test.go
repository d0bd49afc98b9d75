package stack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/netsel/netsel/catalog"
)

// TestReadersUseReaderUser: with a reader user, CoreDNS and Caddy log in to
// etcd as that user, not as the writer; without one, as the writer.
func TestReadersUseReaderUser(t *testing.T) {
	const (
		writer, writerPassword = "netsel-registrar", "registrar-secret"
		reader, readerPassword = "netsel-reader", "reader-secret"
	)
	c := &Config{
		Etcd: Etcd{Endpoints: []string{"https://127.0.0.1:2379"},
			Username: writer, Password: writerPassword,
			ReaderUsername: reader, ReaderPassword: readerPassword},
		Keyspace: catalog.MustKeyspace(catalog.DefaultPrefix),
		DNS:      &DNS{Addr: "127.0.0.1:5353", Zone: "netsel."},
		Proxy:    &Proxy{HTTPAddr: "127.0.0.1:8081", Zone: "netsel."},
	}
	check := func(wantUser, wantPassword, notUser string) {
		t.Helper()
		corefile, err := Corefile(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("credentials %q %q", wantUser, wantPassword); !strings.Contains(corefile, want) || strings.Contains(corefile, notUser) {
			t.Errorf("Corefile does not log in as %s only:\n%s", wantUser, corefile)
		}
		caddyJSON, err := CaddyConfig(c, "test")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`"username":%q`, wantUser); !strings.Contains(string(caddyJSON), want) || strings.Contains(string(caddyJSON), notUser) {
			t.Errorf("Caddy config does not log in as %s only:\n%s", wantUser, caddyJSON)
		}
	}
	check(reader, readerPassword, writer)
	c.Etcd.ReaderUsername, c.Etcd.ReaderPassword = "", ""
	check(writer, writerPassword, reader)
}

// TestCorefileForward: upstreams add a root block that forwards through a
// cache; without them, names outside the zone have no server block.
func TestCorefileForward(t *testing.T) {
	c := &Config{
		Etcd:     Etcd{Endpoints: []string{"http://127.0.0.1:2379"}},
		Keyspace: catalog.MustKeyspace(catalog.DefaultPrefix),
		DNS:      &DNS{Addr: "127.0.0.1:53", Zone: "netsel."},
	}
	cf, err := Corefile(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cf, "forward") || strings.Contains(cf, "\n.:53 {") {
		t.Errorf("Corefile forwards without upstreams:\n%s", cf)
	}
	c.DNS.Forward = []string{"127.0.0.9:53", "[::1]:5300"}
	if cf, err = Corefile(c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cf, "\n.:53 {") || !strings.Contains(cf, `forward . "127.0.0.9:53" "[::1]:5300"`) || !strings.Contains(cf, "cache") {
		t.Errorf("Corefile does not forward through a cache:\n%s", cf)
	}
}

// TestProxyTagsHeader: the HTTP proxy's upstream source takes tags from
// a header only when TagsHeader is set (-http-tags-header).
func TestProxyTagsHeader(t *testing.T) {
	c := &Config{
		Etcd:     Etcd{Endpoints: []string{"http://127.0.0.1:2379"}},
		Keyspace: catalog.MustKeyspace(catalog.DefaultPrefix),
		Proxy:    &Proxy{HTTPAddr: "127.0.0.1:8081", Zone: "netsel."},
	}
	for _, header := range []string{"", "X-Netsel-Tag"} {
		c.Proxy.TagsHeader = header
		b, err := CaddyConfig(c, "test")
		if err != nil {
			t.Fatal(err)
		}
		want := `"dynamic_upstreams":{"source":"netsel"}`
		if header != "" {
			want = `"dynamic_upstreams":{"source":"netsel","tags_header":"X-Netsel-Tag"}`
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("TagsHeader %q: no %s in\n%s", header, want, b)
		}
	}
}

// TestLocality: the stack's locality reaches the netsel block and the Caddy
// app; without one, neither names a locality.
func TestLocality(t *testing.T) {
	c := &Config{
		Etcd:     Etcd{Endpoints: []string{"http://127.0.0.1:2379"}},
		Keyspace: catalog.MustKeyspace(catalog.DefaultPrefix),
		DNS:      &DNS{Addr: "127.0.0.1:5353", Zone: "netsel."},
		Proxy:    &Proxy{HTTPAddr: "127.0.0.1:8081", Zone: "netsel."},
	}
	for _, locality := range []string{"eu-west-1a", ""} {
		c.Locality = locality
		cf, err := Corefile(c)
		if err != nil {
			t.Fatal(err)
		}
		caddyJSON, err := CaddyConfig(c, "test")
		if err != nil {
			t.Fatal(err)
		}
		wantDNS, wantCaddy := `locality "eu-west-1a"`, `"locality":"eu-west-1a"`
		if locality == "" {
			wantDNS, wantCaddy = "locality", `"locality"`
			if strings.Contains(cf, wantDNS) || strings.Contains(string(caddyJSON), wantCaddy) {
				t.Errorf("no locality, but the Corefile or the Caddy config names one:\n%s\n%s", cf, caddyJSON)
			}
			continue
		}
		if !strings.Contains(cf, wantDNS) || !strings.Contains(string(caddyJSON), wantCaddy) {
			t.Errorf("locality %s missing from the Corefile or the Caddy config:\n%s\n%s", locality, cf, caddyJSON)
		}
	}
}
