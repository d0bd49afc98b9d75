package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

// probeService is the service the client registers to check the API.
const probeService = "netsel-client-probe"

// checkRegistrar registers a probe instance, heartbeats it, checks the
// registrar lists it, deregisters it and checks it is gone.
func checkRegistrar(ck *checker, c *client.Client) {
	var a *client.Assignment
	ok := ck.check("register probe instance", func(ctx context.Context) (string, error) {
		var err error
		a, err = c.Register(ctx, client.Registration{
			Service: probeService, Port: 9, // the client library fills in the address
			TTL: 10 * time.Second,
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("id %s vip %s port %d ttl %v", a.ID, a.VIP, a.Port, time.Duration(a.TTL)), nil
	})
	if !ok {
		return
	}
	ck.check("heartbeat probe instance (x3)", func(ctx context.Context) (string, error) {
		for i := 0; i < 3; i++ {
			if err := c.Heartbeat(ctx, probeService, a.ID); err != nil {
				return "", err
			}
		}
		return "200 OK", nil
	})
	ck.check("probe instance listed", func(ctx context.Context) (string, error) {
		svc, err := c.Service(ctx, probeService)
		if err != nil {
			return "", err
		}
		if !hasInstance(svc, a.ID) {
			return "", fmt.Errorf("instance %s not among %d instances", a.ID, len(svc.Instances))
		}
		if svc.VIP != a.VIP {
			return "", fmt.Errorf("service VIP %s, registration said %s", svc.VIP, a.VIP)
		}
		return fmt.Sprintf("%d instance(s), vip %s", len(svc.Instances), svc.VIP), nil
	})
	ck.check("deregister probe instance", func(ctx context.Context) (string, error) {
		if err := c.Deregister(ctx, probeService, a.ID); err != nil {
			return "", err
		}
		err := c.Heartbeat(ctx, probeService, a.ID)
		if !errors.Is(err, client.ErrNotFound) {
			return "", fmt.Errorf("heartbeat after deregister: got %v, want 404", err)
		}
		return "gone; heartbeat now 404", nil
	})
	ck.check("delete probe service", func(ctx context.Context) (string, error) {
		if err := c.DeleteService(ctx, probeService); err != nil {
			return "", err
		}
		return "service and its VIP freed", nil
	})
}

func hasInstance(svc *api.ServiceView, id string) bool {
	for _, in := range svc.Instances {
		if in.ID == id {
			return true
		}
	}
	return false
}

// findService looks the echo service up through the registrar API.
func findService(ck *checker, c *client.Client, name string) (*api.ServiceView, bool) {
	var svc *api.ServiceView
	ok := ck.check("find "+name+" through the API", func(ctx context.Context) (string, error) {
		var err error
		svc, err = c.Service(ctx, name)
		if errors.Is(err, client.ErrNotFound) {
			return "", fmt.Errorf("service %q is not registered: start it with `go run ./examples/service`", name)
		}
		if err != nil {
			return "", err
		}
		if len(svc.Instances) == 0 {
			return "", fmt.Errorf("service %q has no live instances", name)
		}
		return fmt.Sprintf("vip %s, %d instance(s)", svc.VIP, len(svc.Instances)), nil
	})
	return svc, ok
}
