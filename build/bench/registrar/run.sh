#!/usr/bin/env bash
# Registrar benchmark: registrations/s and heartbeats/s through the NetSel
# registrar's REST API next to raw etcd Grant+Put and KeepAliveOnce, on one
# embedded etcd, plus expiry timings under load; then the catalog index's
# memory and apply/lookup costs. Prints markdown on stdout; see BENCHMARKS.md.
#
#   build/bench/registrar/run.sh                 # 64 clients, 10 s per case, 3 interleaved runs
#   build/bench/registrar/run.sh -runs 5 -cpuprofile /tmp/rb   # any flag of the program
#   CATALOG=0 build/bench/registrar/run.sh       # skip the catalog benchmarks
set -euo pipefail
cd "$(dirname "$0")/../../.."

bin=$(mktemp -d /tmp/netsel-regbench-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/regbench" ./build/bench/registrar

echo "Machine: $(nproc) CPUs, $(go env GOVERSION), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# embedded etcd logs its own shutdown as errors: keep them off the terminal.
"$bin/regbench" "$@" 2> >(grep -v '^{"level"' >&2)

if [ "${CATALOG:-1}" != 0 ]; then
	echo
	echo "## Catalog index at 100,000 instances (1,000 services × 100)"
	echo
	echo '```'
	go test -run '^$' -bench 'IndexMemory' -benchtime=1x ./catalog/ | grep '^Benchmark'
	go test -run '^$' -bench 'Apply|Lookup' -benchmem ./catalog/ | grep '^Benchmark'
	echo '```'
fi
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
