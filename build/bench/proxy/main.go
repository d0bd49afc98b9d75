// Command proxy holds the small programs build/bench/proxy/run.sh needs
// around wrk, iperf3 and HAProxy: an embedded etcd, backends, a minimal
// io.Copy proxy, catalog writes, and two measurements (new connections per
// second, and how soon a new service's VIP listener opens).
//
//	go build -o /tmp/nsbench ./build/bench/proxy
//	/tmp/nsbench <command> [flags]
package main

import (
	"flag"
	"fmt"
	"os"
)

var commands = map[string]func(args []string) error{
	"etcd":             cmdEtcd,
	"http":             cmdHTTP,
	"echo":             cmdEcho,
	"copyproxy":        cmdCopyProxy,
	"register":         cmdRegister,
	"connrate":         cmdConnRate,
	"listener-latency": cmdListenerLatency,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: proxy etcd|http|echo|copyproxy|register|connrate|listener-latency [flags]")
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func parse(name string, fs *flag.FlagSet, args []string) error {
	fs.Init(name, flag.ContinueOnError)
	return fs.Parse(args)
}
