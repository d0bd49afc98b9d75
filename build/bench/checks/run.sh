#!/usr/bin/env bash
# Health checks benchmark (issue 11): two registrars share the HTTP checks
# of 10,000 instances every 10 s on one embedded etcd; probes/s per
# registrar, CPU per 1,000 probes, etcd writes in steady state and per state
# change, and registration/heartbeat throughput with checks off vs on, side
# by side. Prints markdown on stdout; see BENCHMARKS.md. About 5 minutes.
#
#   build/bench/checks/run.sh                      # the defaults: -instances 10000 -window 30s -flip 100 -rounds 3
#   build/bench/checks/run.sh -rounds 5 -dir /dev/shm   # any flag of the program
set -euo pipefail
cd "$(dirname "$0")/../../.."

bin=$(mktemp -d /tmp/netsel-checkbench-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/checkbench" ./build/bench/checks

echo "Machine: $(nproc) CPUs, $(go env GOVERSION), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# embedded etcd logs its own shutdown as errors: keep them off the terminal.
"$bin/checkbench" "$@" 2> >(grep -v '^{"level"' >&2)
