// Command dnsbench holds the helpers of build/bench/dns/run.sh: an embedded
// etcd, the loader of the benchmark dataset, a bare miekg/dns server
// answering from a Go map, a freshness probe and a dnsperf output summarizer.
//
//	dnsbench etcd     -listen 127.0.0.1:23790 -dir DIR
//	dnsbench load     -etcd URL -prefix /netsel/ -services N -instances 3 [-skydns] [-out DIR]
//	dnsbench mapserve -addr 127.0.0.1:25305 -services N -instances 3
//	dnsbench fresh    -etcd URL -prefix /netsel/ -dns ADDR -n 1000
//	dnsbench latency  < dnsperf -v output
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsbench etcd|load|mapserve|fresh|latency [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"etcd":     runEtcd,
		"load":     runLoad,
		"mapserve": runMapServe,
		"fresh":    runFresh,
		"latency":  runLatency,
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "dnsbench: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := cmd(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "dnsbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
