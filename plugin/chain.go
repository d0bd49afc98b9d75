package netsel

import (
	"context"
	"reflect"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// A precomputed reply is written as bytes (dns.ResponseWriter.Write). The
// plugins before netsel in the chain may have wrapped the writer: bytes
// written through a wrapper that rewrites or caches replies in WriteMsg
// (cache, rewrite, loadbalance, minimal, nsid, dnssec, ...) would skip its
// work, so behind one of those the reply goes the regular way. But the
// wrappers that only record what passes — the prometheus plugin's, log's
// and trace's recorders, and the writer plugin.NextOrFailure puts around
// every plugin's — pass bytes on as they are, and are told about the reply
// as WriteMsg would have told them: wireChain finds them.

// maxChain bounds the wrappers wireChain looks through; maxRecorders, the
// message recorders it fills in.
const (
	maxChain     = 16
	maxRecorders = 4
)

// wireChain is what stands between netsel and the server's ScrubWriter when
// every wrapper passes written bytes on as they are.
type wireChain struct {
	// recorders are the recorders on the way (prometheus's, log's, ...),
	// filled in by record; withMsg is set when one of them reads the
	// message written, not only its rcode and length (log's, trace's).
	recorders [maxRecorders]*dnstest.Recorder
	n         int
	withMsg   bool
}

// inspectChain reports whether bytes written to w reach CoreDNS's
// ScrubWriter, and so the client, as they are, and returns the recorders on
// the way.
func inspectChain(w dns.ResponseWriter) (wireChain, bool) {
	var c wireChain
	for range maxChain {
		var rec *dnstest.Recorder
		switch t := w.(type) {
		case *request.ScrubWriter:
			return c, true
		case *metrics.Recorder:
			rec = t.Recorder // prometheus reads the rcode and length
		case *dnstest.Recorder:
			rec, c.withMsg = t, true
		default:
			inner, ok := untrack(w)
			if !ok {
				return c, false
			}
			w = inner
			continue
		}
		if c.n == maxRecorders {
			return c, false
		}
		c.recorders[c.n] = rec
		c.n++
		w = rec.ResponseWriter
	}
	return c, false
}

// record leaves the recorders of c as WriteMsg would have left them had
// reply been written as a message: its rcode (NOERROR, as every precomputed
// reply's), its length and, for those that read it, the message. Write,
// which returned n and err, counted the bytes it wrote: over TCP, 2 more,
// for the length prefix, and none on an error.
func (c *wireChain) record(reply []byte, n int, err error) {
	if c.n == 0 {
		return
	}
	if err != nil {
		n = 0
	}
	var m *dns.Msg
	if c.withMsg {
		m = new(dns.Msg)
		if m.Unpack(reply) != nil {
			m = nil // cannot be: answerWire built it
		}
	}
	for _, r := range c.recorders[:c.n] {
		r.Len += len(reply) - n
		r.Rcode = dns.RcodeSuccess
		if m != nil {
			r.Msg = m
		}
	}
}

// trackerType is the type of the writer that plugin.NextOrFailure wraps
// around each plugin's writer to note which plugin wrote the reply, or nil
// when it passes the writer on as it is. The type is unexported, so it is
// learned from a call, as is where it keeps the writer it wraps.
var trackerType = probeTracker()

// probeTracker calls plugin.NextOrFailure with a handler that keeps the
// writer it gets, and returns its type when that is a struct pointer whose
// first field is the embedded dns.ResponseWriter passed in.
func probeTracker() reflect.Type {
	base := &request.ScrubWriter{}
	var got dns.ResponseWriter
	keep := plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, _ *dns.Msg) (int, error) {
		got = w
		return dns.RcodeSuccess, nil
	})
	plugin.NextOrFailure(pluginName, keep, context.Background(), base, new(dns.Msg))
	t := reflect.TypeOf(got)
	if got == nil || got == dns.ResponseWriter(base) || t.Kind() != reflect.Pointer ||
		t.Elem().Kind() != reflect.Struct || t.Elem().NumField() == 0 {
		return nil
	}
	if f := t.Elem().Field(0); !f.Anonymous || f.Type != reflect.TypeFor[dns.ResponseWriter]() {
		return nil
	}
	if inner, ok := reflect.ValueOf(got).Elem().Field(0).Interface().(dns.ResponseWriter); !ok || inner != dns.ResponseWriter(base) {
		return nil
	}
	return t
}

// untrack returns the writer that plugin.NextOrFailure's tracking writer w
// wraps; ok is false when w is not one.
func untrack(w dns.ResponseWriter) (inner dns.ResponseWriter, ok bool) {
	if trackerType == nil || reflect.TypeOf(w) != trackerType {
		return nil, false
	}
	inner, ok = reflect.ValueOf(w).Elem().Field(0).Interface().(dns.ResponseWriter)
	return inner, ok && inner != nil
}
