#!/usr/bin/env bash
# NetSel soak test (issue 5, "Soak"), run from anywhere in the repository:
#   build/bench/soak/run.sh                          # 10 minutes, 10,000 instances
#   build/bench/soak/run.sh -duration 2m -instances 2000
# Builds the runner (./build/netsel) and the soak program, then runs the
# soak on loopback: a 3-member etcd cluster of /usr/bin/etcd (Debian 3.4),
# the runner over it, 10,000 instances kept alive through the Go client,
# DNS, HTTP-proxy and VIP-proxy traffic all along, a SIGKILL + restart of the
# runner at 25% and a SIGKILL + restart of the etcd leader at 50%. Progress
# goes to stderr, the markdown report to stdout; see BENCHMARKS.md.
# Extra arguments go to the soak program (go run ./build/bench/soak -h).
set -euo pipefail
cd "$(dirname "$0")/../../.."

BIN=$(mktemp -d /tmp/netsel-soak-bin.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
echo "building" >&2
go build -o "$BIN/netsel" ./build/netsel
go build -o "$BIN/soak" ./build/bench/soak
uptime >&2
"$BIN/soak" -netsel "$BIN/netsel" \
	-duration 10m -instances 10000 -services 100 \
	-interval 10s -ttl 30s \
	-dns-qps 300 -http-rps 50 -tcp-cps 20 \
	-runner-kill-at 0.25 -runner-down 5s \
	-etcd-stop-at 0.5 -etcd-down 20s -etcd-member leader -etcd-signal kill \
	"$@"
uptime >&2
