package testenv

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// AnswerLoser is a TCP proxy on loopback that passes every request on to
// its target and loses the answer: once the target starts answering — so
// it has done what was asked — it closes the client's connection without
// a byte of the answer. A client sees a connection error after its request
// took effect, as when a network path dies at the worst moment.
type AnswerLoser struct {
	ln net.Listener
	// lost counts the answers lost.
	lost atomic.Int64
}

// StartAnswerLoser proxies a free loopback port to target until the test
// ends, losing every answer.
func StartAnswerLoser(t testing.TB, target string) *AnswerLoser {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("answer loser listen: %v", err)
	}
	p := &AnswerLoser{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(c, target)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

// Addr returns the proxy's host:port.
func (p *AnswerLoser) Addr() string { return p.ln.Addr().String() }

// Lost returns how many answers the proxy has lost.
func (p *AnswerLoser) Lost() int64 { return p.lost.Load() }

func (p *AnswerLoser) handle(c net.Conn, target string) {
	defer c.Close()
	u, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer u.Close()
	go io.Copy(u, c)
	// Wait for the first byte of the answer, then drop it and the
	// connection.
	u.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	if n, _ := u.Read(b[:]); n > 0 {
		p.lost.Add(1)
	}
}
