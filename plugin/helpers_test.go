package netsel

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// env is a CoreDNS with a netsel block in front of a fresh embedded etcd.
type env struct {
	etcd     *testenv.Etcd
	ks       catalog.Keyspace
	udp, tcp string
}

// defaultBlock is the netsel block of most tests; %s is the etcd URL.
const defaultBlock = `netsel netsel. 127.77.0.0/16 {
        endpoint %s
        ttl 7
    }`

// startEnv starts etcd and CoreDNS; block is the netsel block, with one %s
// for the etcd URL, and extra follows it in the server block.
func startEnv(t *testing.T, block, extra string) *env {
	t.Helper()
	e := &env{etcd: testenv.StartEtcd(t), ks: catalog.MustKeyspace(catalog.DefaultPrefix)}
	e.udp, e.tcp = testenv.StartCoreDNS(t, corefile(fmt.Sprintf(block, e.etcd.URL), extra))
	return e
}

// regularFront is a plugin that, put before netsel, has it answer every
// question the regular way (a dns.Msg through WriteMsg): loadbalance's
// writer shuffles the address records of the messages written to it, which
// bytes written past it would skip.
const regularFront = "loadbalance round_robin"

func corefile(block, extra string) string {
	return fmt.Sprintf(".:0 {\n    bind 127.0.0.1\n    %s\n    %s\n}\n", block, extra)
}

func (e *env) putService(t *testing.T, name, vip string, ports ...catalog.Port) {
	t.Helper()
	if len(ports) == 0 {
		ports = []catalog.Port{{Name: catalog.DefaultPortName, Port: 80, Protocol: catalog.ProtocolTCP}}
	}
	s := &catalog.Service{Name: name, VIP: netip.MustParseAddr(vip), Ports: ports, Created: time.Now()}
	b, err := catalog.EncodeService(s)
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, e.ks.ServiceKey(name), string(b))
	e.put(t, e.ks.VIPKey(s.VIP), name)
}

// putInstance writes in, on lease when lease is not zero, and returns the
// revision of the write.
func (e *env) putInstance(t *testing.T, in *catalog.Instance, lease clientv3.LeaseID) int64 {
	t.Helper()
	if in.Weight == 0 {
		in.Weight = 1
	}
	b, err := catalog.EncodeInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	return e.put(t, e.ks.InstanceKey(in.Service, in.ID), string(b), opts...)
}

func (e *env) put(t *testing.T, key, val string, opts ...clientv3.OpOption) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.etcd.Client.Put(ctx, key, val, opts...)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return resp.Header.Revision
}

func (e *env) del(t *testing.T, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.etcd.Client.Delete(ctx, key); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

func inst(svc, id, addr string, port int) *catalog.Instance {
	return &catalog.Instance{ID: id, Service: svc, Address: netip.MustParseAddr(addr), Port: port, Weight: 1, Registered: time.Now()}
}

// query asks qname/qtype over proto ("udp" or "tcp") and fails the test on a
// transport error or a message that does not parse.
func query(t testing.TB, addr, proto, qname string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	return exchange(t, addr, proto, m)
}

func exchange(t testing.TB, addr, proto string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%v over %s: %v", m.Question, proto, err)
	}
	return r
}

// waitFor polls qname/qtype over UDP until cond holds on the reply.
func (e *env) waitFor(t *testing.T, timeout time.Duration, qname string, qtype uint16, cond func(*dns.Msg) bool, what string) {
	t.Helper()
	var last *dns.Msg
	testenv.Eventually(t, timeout, func() bool {
		last = query(t, e.udp, "udp", qname, qtype)
		return cond(last)
	}, "%s %s: %s; last reply:\n%v", qname, dns.TypeToString[qtype], what, lazy(func() string {
		if last == nil {
			return "none"
		}
		return last.String()
	}))
}

// lazy is a fmt.Stringer evaluated when printed.
type lazy func() string

func (l lazy) String() string { return l() }

// waitReady waits until the plugin answers (the index has synced).
func (e *env) waitReady(t *testing.T) {
	t.Helper()
	e.waitFor(t, 10*time.Second, "netsel.", dns.TypeSOA, func(m *dns.Msg) bool {
		return m.Rcode == dns.RcodeSuccess
	}, "not ready")
}
