package netsel

import (
	"encoding/binary"
	"net"
	"sync"

	"github.com/coredns/coredns/plugin/pkg/edns"
	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
)

// The answers asked most — a service's A/AAAA (its VIP) and SRV sets — are
// kept in wire form with the records, and written as bytes: no dns.Msg is
// built, copied, sized or packed per query. Everything else, and every
// answer that would not fit the client's buffer, goes the regular way
// (lookup, then WriteMsg, which CoreDNS's ScrubWriter truncates).

// ptrToQuestion is a compression pointer to the question's name, which
// starts right after the 12-byte header: answer records are owned by the
// name as asked.
var ptrToQuestion = []byte{0xc0, 12}

// packRR returns rr in wire form, uncompressed; with ownerIsQuestion its
// owner name is ptrToQuestion instead. It returns nil if rr does not pack.
func packRR(rr dns.RR, ownerIsQuestion bool) []byte {
	if ownerIsQuestion {
		rr = dns.Copy(rr)
		rr.Header().Name = "."
	}
	buf := make([]byte, dns.Len(rr))
	n, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return nil
	}
	if ownerIsQuestion {
		return append(append([]byte(nil), ptrToQuestion...), buf[1:n]...) // drop the root label
	}
	return buf[:n]
}

// maxWireUDP is the largest UDP reply answerWire sends, uncompressed: the
// size above which CoreDNS compresses UDP replies to avoid fragmentation
// (1220 bytes for IPv6, 1480 for IPv4; the smaller serves both).
const maxWireUDP = 1220

// wireReply is a reply answerWire built: buf is the message, order the
// shuffled positions of its SRV set.
type wireReply struct {
	buf   []byte
	order []int
}

// replyPool recycles wireReplies: put one back once buf is written.
var replyPool = sync.Pool{New: func() any {
	return &wireReply{buf: make([]byte, 0, 1024), order: make([]int, 0, 64)}
}}

// Header flag bits of the second 16-bit word of a DNS header.
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagCD = 1 << 4
)

// answerWire builds the reply to qtype for qname in wire form when it is a
// service's A/AAAA or SRV (default or named port) question that the cached
// records answer and the reply fits the client's buffer; w must be one that
// written bytes pass through as they are (see inspectChain). It returns nil
// when it does not, and the caller answers the regular way; else the caller
// writes the reply's buf and puts the reply back in replyPool. (Writing
// here would put this frame under the socket write's deep call chain and
// make every query grow its goroutine's stack.)
func (n *Netsel) answerWire(w dns.ResponseWriter, r *dns.Msg, snap *catalog.Snapshot, zone, qname string, qtype uint16) *wireReply {
	if r.Opcode != dns.OpcodeQuery || qname == zone || isReverse(zone) {
		return nil
	}
	var opt *dns.OPT
	if len(r.Extra) > 0 {
		// Only an OPT record (no TSIG). Its options (a client's COOKIE,
		// ...) are not answered, as on the regular path: its OPT record,
		// set before the ScrubWriter sees it, has none, and the
		// ScrubWriter copies none then.
		if opt = r.IsEdns0(); opt == nil || len(r.Extra) != 1 {
			return nil
		}
	}
	nm := parseName(qname, zone)
	if nm.kind != nameService && nm.kind != namePort {
		return nil // tag names, filtered per query, go the regular way
	}
	e, ok := snap.Service(nm.service)
	if !ok {
		return nil
	}
	rs := n.caches[zone].get(snap, e)
	var (
		vip []byte
		set []srvRR
	)
	switch {
	case nm.kind == nameService && (qtype == dns.TypeA || qtype == dns.TypeAAAA):
		if rs.vip.qtype() != qtype || rs.vip.wire == nil {
			return nil
		}
		vip = rs.vip.wire
	case qtype == dns.TypeSRV && nm.kind == nameService:
		set = rs.def
	case qtype == dns.TypeSRV && nm.kind == namePort:
		set = rs.ports[nm.port+"."+nm.proto]
	}
	if vip == nil && len(set) == 0 {
		return nil
	}

	tcp := isTCP(w)
	size := requestSize(tcp, opt)
	rep := replyPool.Get().(*wireReply)
	var pick srvPick
	if vip == nil {
		pick = pickSRV(set, replyRoom(size, r.Question[0].Name, opt != nil), rep.order)
		rep.order = pick.order
	}
	if !rep.build(r, opt, vip, set, pick, tcp, wireLimit(tcp, size)) {
		// Too big: the regular path compresses, or truncates and sets TC.
		rep.release()
		return nil
	}
	return rep
}

// maxPooledReply bounds the buffers kept for reuse, in bytes of reply and
// in SRV records: a rare large reply should not pin its buffers.
const maxPooledReply = 16 << 10

// release puts rep back in replyPool, unless its buffers grew large.
func (rep *wireReply) release() {
	if cap(rep.buf) <= maxPooledReply && cap(rep.order) <= maxPooledReply/64 {
		replyPool.Put(rep)
	}
}

// build makes rep.buf the reply to r: the VIP record vip, or the records of
// set that pick chose, with their glue as additional records and, over
// UDP, TC set when pick is a sample (over TCP a sample is the answer: TC
// would only send the client to ask again the same way);
// with opt, an OPT record as CoreDNS's SizeAndDo writes it: the client's
// buffer size, version 0, the client's DO bit, no options. It gives up,
// returning false, as soon as the reply would be longer than limit.
func (rep *wireReply) build(r *dns.Msg, opt *dns.OPT, vip []byte, set []srvRR, pick srvPick, tcp bool, limit int) bool {
	buf := rep.buf[:12]
	flags := uint16(flagQR | flagAA)
	if r.RecursionDesired {
		flags |= flagRD
	}
	if r.CheckingDisabled {
		flags |= flagCD
	}
	if pick.sampled && !tcp {
		flags |= flagTC
	}
	binary.BigEndian.PutUint16(buf[0:], r.Id)
	binary.BigEndian.PutUint16(buf[2:], flags)
	binary.BigEndian.PutUint16(buf[4:], 1) // one question
	binary.BigEndian.PutUint16(buf[8:], 0) // no authority records

	q := r.Question[0]
	buf = buf[:cap(buf)]
	off, err := dns.PackDomainName(q.Name, buf, 12, nil, false)
	if err != nil || off+4 > len(buf) {
		rep.buf = buf[:0]
		return false
	}
	buf = binary.BigEndian.AppendUint16(buf[:off], q.Qtype)
	buf = binary.BigEndian.AppendUint16(buf, q.Qclass)

	answers, extras := 0, 0
	if vip != nil {
		buf = append(buf, vip...)
		answers = 1
	} else {
		for _, i := range pick.order {
			if set[i].wire == nil || len(buf)+len(set[i].wire) > limit {
				rep.buf = buf[:0]
				return false
			}
			buf = append(buf, set[i].wire...)
		}
		for _, i := range pick.order {
			if g := set[i].glue; g != nil {
				if len(buf)+len(g) > limit {
					rep.buf = buf[:0]
					return false
				}
				buf = append(buf, g...)
				extras++
			}
		}
		answers = len(pick.order)
	}
	if opt != nil {
		buf = append(buf, 0) // the root name
		buf = binary.BigEndian.AppendUint16(buf, dns.TypeOPT)
		buf = binary.BigEndian.AppendUint16(buf, opt.UDPSize())
		// Extended RCODE 0, version 0, the query's DO bit and none of the
		// reserved flag bits (RFC 6891 6.1.4: zero in replies).
		buf = binary.BigEndian.AppendUint32(buf, opt.Hdr.Ttl&doBit)
		buf = binary.BigEndian.AppendUint16(buf, 0)
		extras++
	}
	binary.BigEndian.PutUint16(buf[6:], uint16(answers))
	binary.BigEndian.PutUint16(buf[10:], uint16(extras))
	rep.buf = buf
	return len(buf) <= limit
}

// doBit is the DO flag in an OPT record's TTL field.
const doBit = 0x8000

// requestSize is the largest reply a client takes, as CoreDNS's
// request.Size: 65535 over TCP, else the EDNS0 buffer size and at least 512.
func requestSize(tcp bool, opt *dns.OPT) int {
	if tcp {
		return dns.MaxMsgSize
	}
	size := uint16(0)
	if opt != nil {
		size = opt.UDPSize()
	}
	return int(edns.Size("udp", size))
}

// wireLimit is the largest reply answerWire may send: size, the
// requestSize, and over UDP at most maxWireUDP.
func wireLimit(tcp bool, size int) int {
	if tcp {
		return size
	}
	return min(size, maxWireUDP)
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}
