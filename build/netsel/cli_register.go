package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/netsel/netsel/registrar/client"
)

// cmdRegister registers an instance and keeps it alive until ctx ends (or
// once, with -once).
func cmdRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		reg      client.Registration
		ports    = portsFlag{}
		meta     = metaFlag{}
		protos   = metaFlag{}
		checks   checksFlag
		interval time.Duration
		drain    time.Duration
		once     bool
	)
	fs, cf, c, err := clientCommand("register", "register NAME -port PORT [flags]\n\nRegisters an instance and heartbeats until interrupted, then drains it (see \"netsel drain\") and deregisters it",
		args, 1, 1, stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&reg.ID, "id", "", "instance id (default: a random one, picked before the first attempt and kept across retries and fail-overs)")
			fs.StringVar(&reg.Address, "address", "", "the instance's IP address; a registrar serving many hosts refuses loopback ones (default: filled in by the client library with this host's source address on the route to the registrar, or, when that is loopback, by the registrar: its host address, or the address the request came from when it serves one host)")
			fs.IntVar(&reg.Port, "port", 0, "the instance's port (required)")
			fs.Var(ports, "named-port", "a named port NAME=PORT (repeatable)")
			fs.Var(protos, "protocol", "what a port carries, NAME=tcp|udp|http|h2c|grpc (repeatable; NAME is a -named-port, or default for -port; the service's first registration sets them; default tcp)")
			fs.DurationVar(&reg.TTL, "ttl", 60*time.Second, "how long the instance outlives its last heartbeat")
			fs.IntVar(&reg.Weight, "weight", 1, "relative share of traffic")
			fs.Var((*tagsFlag)(&reg.Tags), "tag", "a tag DNS names, ?tag= and the HTTP proxy's tags select by (repeatable or comma-separated)")
			fs.Var(meta, "meta", "a meta KEY=VALUE (repeatable)")
			fs.StringVar(&reg.Zone, "zone", "", "the instance's zone (the locality readers prefer; not the DNS zone)")
			fs.Var(&checks, "check", "a health check the registrars run: http[:PATH][@PORT], tcp[@PORT] or grpc[:SERVICE][@PORT] (repeatable; PORT names a -named-port, default the main port)")
			fs.DurationVar(&checks.interval, "check-interval", 0, "time between a check's probes, 1s-1h (0: the registrar's default, 10s)")
			fs.DurationVar(&checks.timeout, "check-timeout", 0, "longest wait for one probe (0: the registrar's default, 2s or the interval)")
			fs.DurationVar(&interval, "interval", 10*time.Second, "time between heartbeats")
			fs.BoolVar(&once, "once", false, "register once and exit; the instance expires after -ttl")
			fs.DurationVar(&drain, "drain-timeout", 10*time.Second, "on interrupt, longest wait for every DNS server and proxy to stop sending the instance new traffic before it is deregistered (0: deregister at once)")
		})
	if err != nil {
		return err
	}
	reg.Service = fs.Arg(0)
	if len(ports) > 0 {
		reg.Ports = ports
	}
	if len(meta) > 0 {
		reg.Meta = meta
	}
	if len(protos) > 0 {
		reg.Protocols = protos
	}
	reg.Checks = checks.list()
	if once {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		a, err := c.Register(ctx, reg)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, a)
		}
		fmt.Fprintf(stdout, "registered %s/%s: vip %s port %d ttl %v instance %s\n", reg.Service, a.ID, a.VIP, a.Port, time.Duration(a.TTL), a.Address)
		return nil
	}
	if drain <= 0 {
		drain = -1 // KeepaliveOptions: no drain
	}
	return c.Keepalive(ctx, reg, client.KeepaliveOptions{
		Interval:     interval,
		DrainTimeout: drain,
		OnEvent: func(ev client.Event) {
			switch ev.Kind {
			case client.EventRegistered:
				fmt.Fprintf(stdout, "registered %s/%s: vip %s port %d ttl %v instance %s (Ctrl-C drains and deregisters)\n",
					reg.Service, ev.Assignment.ID, ev.Assignment.VIP, ev.Assignment.Port, time.Duration(ev.Assignment.TTL), ev.Assignment.Address)
			case client.EventExpired:
				fmt.Fprintf(stdout, "instance expired; registering again\n")
			case client.EventRetry:
				fmt.Fprintf(stderr, "retrying: %v\n", ev.Err)
			case client.EventDrained:
				switch {
				case ev.Err != nil:
					fmt.Fprintf(stderr, "drain failed: %v\n", ev.Err)
				case ev.Drain.Confirmed:
					fmt.Fprintf(stdout, "drained: every reader confirmed after %s\n", time.Duration(ev.Drain.Waited).Round(time.Millisecond))
				default:
					fmt.Fprintf(stderr, "drain not confirmed (%s) by %d of %d readers\n", ev.Drain.Ended, len(ev.Drain.Pending), ev.Drain.Readers)
				}
			case client.EventDeregistered:
				if ev.Err != nil {
					fmt.Fprintf(stderr, "deregister failed (the instance expires with its TTL): %v\n", ev.Err)
				} else {
					fmt.Fprintf(stdout, "deregistered\n")
				}
			}
		},
	})
}
