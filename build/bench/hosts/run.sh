#!/usr/bin/env bash
# Issue 10's benchmark across hosts, run from the repository root as root:
#   build/bench/hosts/run.sh        # ROUNDS=5 IPERF_SECS=5 WRK_SECS=5 WRK_CONNS=50 FRESH=200
# Three network namespaces on one bridge (198.18.0.10-12, VIPs 198.19.0.0/16,
# nothing routed outside them), an etcd member and a NetSel agent on each;
# clients on host A, servers (iperf3, examples/service) on host B. Per round,
# back to back, order reversed every other round: iperf3 through A's VIP
# proxy, a Go io.Copy proxy on A, direct; wrk through A's VIP, HAProxy mode
# tcp on A, the Go io.Copy proxy, direct. Then FRESH registrations at A's
# registrar timed until B's DNS has them in its SRV answer. It prints every
# round and markdown tables of medians, each proxy's CPU (from /proc/PID/stat)
# per GB or per request, and ratios (multihost.BenchmarkHosts).
# Needs iperf3, wrk, haproxy (apt-get install -y iperf3 haproxy wrk) and
# /usr/bin/etcd (etcd-server); the test bed deletes its namespaces and kills
# its processes when it ends.
set -euo pipefail

for tool in iperf3 wrk haproxy ip; do
	command -v "$tool" >/dev/null || { echo "run.sh needs $tool" >&2; exit 1; }
done
export HOSTBENCH_ROUNDS=${ROUNDS:-5} HOSTBENCH_IPERF_SECS=${IPERF_SECS:-5} \
	HOSTBENCH_WRK_SECS=${WRK_SECS:-5} HOSTBENCH_WRK_CONNS=${WRK_CONNS:-50} HOSTBENCH_FRESH=${FRESH:-200}
# PERF=dir: perf record -g of each proxy during its wrk of round 1, into dir.
if [ -n "${PERF:-}" ]; then mkdir -p "$PERF"; export HOSTBENCH_PERF=$PERF; fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); rounds $HOSTBENCH_ROUNDS" >&2
exec go test ./multihost -run '^$' -bench '^BenchmarkHosts$' -benchtime 1x -timeout 30m -v
