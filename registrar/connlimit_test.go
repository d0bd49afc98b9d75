package registrar

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestConnLimitVictims plays the clients of a full connection bound: a new
// connection closes the silent one accepted longest ago, never one with a
// request waiting to be read, one serving a request, or one younger than
// newConnGrace.
func TestConnLimitVictims(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evicted := 0
	l := newConnLimit(3, func() { evicted++ })
	lln := l.listener(ln)
	defer lln.Close()

	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := lln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		select {
		case s := <-accepted:
			return c, s
		case <-time.After(5 * time.Second):
			t.Fatal("not accepted within 5s")
		}
		return nil, nil
	}
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}

	silentOld, _ := dial()
	withInput, _ := dial()
	_, busy := dial()
	if _, err := withInput.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	l.connState(busy, http.StateActive)
	time.Sleep(newConnGrace) // the fault's length: the three come of age
	dial()                   // a fourth: the silent one makes room
	if !closed(silentOld) {
		t.Fatal("the silent connection was not closed to make room")
	}
	if evicted != 1 {
		t.Fatalf("%d evictions, want 1", evicted)
	}

	// Now: the one with input, the busy one and the fourth, young. A fifth
	// finds no victim until the fourth comes of age.
	start := time.Now()
	dial()
	if waited := time.Since(start); waited < newConnGrace/2 {
		t.Errorf("a young silent connection was closed after %v", waited)
	}
	if closed(withInput) {
		t.Error("the connection with a request waiting was closed")
	}
}
