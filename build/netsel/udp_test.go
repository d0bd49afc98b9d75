package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestRunnerUDP: an instance registers a port that carries udp; a client's
// datagrams to the service's VIP:port reach it and its answers come back
// from the VIP. A negative -vip-udp-idle-timeout or -vip-header-timeout stops
// the runner before it starts, naming the flags.
func TestRunnerUDP(t *testing.T) {
	bad := stackFlags(t, "127.83.0.0/16")
	bad.limits.vipUDPIdle = -time.Second
	if err := runStack(t.Context(), bad, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "-vip-udp-idle-timeout") {
		t.Errorf("-vip-udp-idle-timeout -1s: %v, want an error naming it", err)
	}

	f := stackFlags(t, "127.83.0.0/16")
	runTestStack(t, f)
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := c.Register(ctx, client.Registration{Service: "dns", ID: "a", Address: "127.0.0.1",
		Port: echo.LocalAddr().(*net.UDPAddr).Port, Protocols: map[string]string{"default": "udp"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	vip := net.JoinHostPort(a.VIP.String(), strconv.Itoa(a.Port))
	conn, err := net.Dial("udp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 2048)
	testenv.Eventually(t, 10*time.Second, func() bool {
		conn.Write([]byte("ping"))
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := conn.Read(buf)
		return err == nil && string(buf[:n]) == "echo:ping"
	}, "no answer through the UDP VIP %s", vip)
}
