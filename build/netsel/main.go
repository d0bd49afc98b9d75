// Command netsel runs NetSel on one machine — embedded etcd, the registrar,
// the DNS server and the proxies — and is a small CLI over the registrar's
// REST API.
//
//	netsel [serve] [flags]        run everything (the default)
//	netsel agent -etcd URL        run one host's part of a many-host NetSel
//	netsel services               list services
//	netsel instances NAME         show a service and its live instances
//	netsel register NAME ...      register an instance and keep it alive
//	netsel deregister NAME ID     remove an instance now
//	netsel delete-service NAME    remove an empty service, free its VIP
//	netsel watch [NAME]           print changes as they happen
//	netsel maint NAME ID          take an instance out of rotation (-off: back)
//	netsel drain NAME ID          drain an instance, confirmed, then deregister it
//	netsel readers                list the DNS servers and proxies reading the catalog
//	netsel snapshot save FILE     save the services and their VIPs (restore: write them back)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `netsel — service registration and discovery over etcd.

Usage:
  netsel [serve] [flags]          run embedded etcd, the registrar, DNS and the proxies
  netsel agent -etcd URL [flags]  run DNS, the proxies and a registrar on this host, over an etcd cluster
  netsel services                 list registered services
  netsel instances NAME           show a service, its VIP and its live instances
  netsel register NAME [flags]    register an instance and heartbeat until Ctrl-C
  netsel deregister NAME ID       deregister an instance now
  netsel delete-service NAME      remove a service with no instances and free its VIP
  netsel watch [NAME]             print the service (or all services) on every change
  netsel maint NAME ID [-off]     take an instance out of rotation, or (-off) put it back
  netsel drain NAME ID            stop new traffic to an instance, wait until every DNS
                                  server and proxy confirms, then deregister it
  netsel readers                  list the DNS servers and proxies, the catalog revision
                                  each serves and their connections per instance
  netsel snapshot save FILE       save every service, its VIP and ports to FILE (admin)
  netsel snapshot restore [-force] FILE
                                  write them back in one transaction, all or nothing (admin)

Run "netsel COMMAND -h" for the flags of a command; flags may come before or
after the names.
Client commands talk to the registrar at $NETSEL_REGISTRAR (default http://127.0.0.1:9000).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a command and returns the process exit code. Commands
// that run until interrupted stop when ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr, false)
	case "agent":
		err = serve(ctx, args, stderr, true)
	case "services":
		err = cmdServices(ctx, args, stdout, stderr)
	case "instances":
		err = cmdInstances(ctx, args, stdout, stderr)
	case "register":
		err = cmdRegister(ctx, args, stdout, stderr)
	case "deregister":
		err = cmdDeregister(ctx, args, stdout, stderr)
	case "delete-service":
		err = cmdDeleteService(ctx, args, stdout, stderr)
	case "watch":
		err = cmdWatch(ctx, args, stdout, stderr)
	case "maint":
		err = cmdMaint(ctx, args, stdout, stderr)
	case "drain":
		err = cmdDrain(ctx, args, stdout, stderr)
	case "readers":
		err = cmdReaders(ctx, args, stdout, stderr)
	case "snapshot":
		err = cmdSnapshot(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "netsel: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errNotConfirmed):
		fmt.Fprintf(stderr, "netsel %s: %v\n", cmd, err)
		return 3
	default:
		fmt.Fprintf(stderr, "netsel %s: %v\n", cmd, err)
		return 1
	}
}

// errUsage reports bad command-line use, already explained to the user.
var errUsage = errors.New("usage")
