package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// mapEntry holds the prebuilt records of one name.
type mapEntry struct {
	a     dns.RR
	srv   []dns.RR
	extra []dns.RR
}

// runMapServe serves the dataset from a Go map with a bare miekg/dns server:
// the ceiling a CoreDNS plugin can approach.
func runMapServe(args []string) error {
	fs := flag.NewFlagSet("mapserve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:25305", "listen address (UDP and TCP)")
	services := fs.Int("services", 1000, "services")
	per := fs.Int("instances", 3, "instances per service")
	fs.Parse(args)

	m := make(map[string]*mapEntry, *services)
	for i := range *services {
		name := serviceName(i) + ".netsel."
		e := &mapEntry{a: &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A: net.IP(serviceVIP(i).AsSlice())}}
		for j := range *per {
			target := instanceID(j) + "." + name
			e.srv = append(e.srv, &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
				Priority: 10, Weight: 1, Port: uint16(8000 + j), Target: target})
			e.extra = append(e.extra, &dns.A{Hdr: dns.RR_Header{Name: target, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A: net.IP(instanceAddr(i, j, *per).AsSlice())})
		}
		m[name] = e
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(r)
		resp.Authoritative = true
		if len(r.Question) == 1 {
			if e, ok := m[strings.ToLower(r.Question[0].Name)]; ok {
				switch r.Question[0].Qtype {
				case dns.TypeA:
					resp.Answer = []dns.RR{e.a}
				case dns.TypeSRV:
					resp.Answer = append([]dns.RR(nil), e.srv...)
					rand.Shuffle(len(resp.Answer), func(i, j int) { resp.Answer[i], resp.Answer[j] = resp.Answer[j], resp.Answer[i] })
					resp.Extra = e.extra
				}
			} else {
				resp.Rcode = dns.RcodeNameError
			}
		}
		w.WriteMsg(resp)
	})
	errc := make(chan error, 2)
	for _, proto := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *addr, Net: proto, Handler: h}
		go func() { errc <- srv.ListenAndServe() }()
		defer srv.Shutdown()
	}
	fmt.Println("map server on", *addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-errc:
		return err
	case <-sig:
		return nil
	}
}
