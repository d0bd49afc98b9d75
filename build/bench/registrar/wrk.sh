#!/usr/bin/env bash
# Registrar vs raw etcd, measured as each is deployed and as each is usually
# benchmarked: the NetSel runner (embedded etcd + registrar in one process,
# `netsel -dns '' -http '' -vip-proxy=false`), its REST API driven by wrk,
# and its etcd driven directly by a Go clientv3 program (build/bench/etcdload),
# 64 connections / goroutines each, runs interleaved; prints medians and the
# median of per-run ratios.
#
# With EXTERNAL=1 the runner uses a separate etcd process (Debian's
# /usr/bin/etcd) through -etcd, as with an external cluster: the registrar
# then reaches etcd over gRPC as the raw client does, instead of in-process.
#
#   build/bench/registrar/wrk.sh            # RUNS=5 DUR=8 EXTERNAL=0
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-5}
DUR=${DUR:-8}
EXTERNAL=${EXTERNAL:-0}
C=${C:-64}
W=$(mktemp -d /tmp/netsel-regwrk.XXXXXX)
ETCD=127.0.0.1:23991
REG=127.0.0.1:29901
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

go build -o "$W/netsel" ./build/netsel
go build -o "$W/etcdload" ./build/bench/etcdload
for port in ${ETCD#*:} 23992 ${REG#*:}; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "port $port is taken: stop whatever listens there first" >&2; exit 1
	fi
done
etcdflags=(-data-dir "$W/data" -etcd-listen $ETCD -etcd-peer 127.0.0.1:23992)
if [ "$EXTERNAL" = 1 ]; then
	etcd --data-dir "$W/etcd" --listen-client-urls "http://$ETCD" --advertise-client-urls "http://$ETCD" \
		--listen-peer-urls http://127.0.0.1:23992 --initial-advertise-peer-urls http://127.0.0.1:23992 \
		--initial-cluster default=http://127.0.0.1:23992 --log-level error >"$W/etcd.log" 2>&1 &
	etcdflags=(-etcd "http://$ETCD")
	echo "external etcd: $(etcd --version | head -1)" >&2
fi
"$W/netsel" "${etcdflags[@]}" -registrar $REG \
	-dns '' -http '' -vip-proxy=false -log-level error >"$W/netsel.log" 2>&1 &
runner=$!
for _ in $(seq 200); do curl -sf http://$REG/v1/health >/dev/null && break; sleep 0.1; done
kill -0 $runner 2>/dev/null || { echo "the runner exited:" >&2; cat "$W/netsel.log" >&2; exit 1; }
"$W/etcdload" -mode prereg -registrar http://$REG -n 10000

wrk_rps() { wrk -t2 -c"$C" -d"${DUR}s" -s "$1" "http://$REG" | tee -a "$W/wrk.log" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }
load_ops() { "$W/etcdload" -etcd "http://$ETCD" -c "$C" -d "${DUR}s" "$@" | awk '{print $2}'; }
for r in $(seq "$RUNS"); do
	echo "run $r: load $(cut -d' ' -f1 /proc/loadavg)" >&2
	echo "$(load_ops -mode grantput) $(wrk_rps build/bench/registrar/register.lua) $(load_ops -mode keepalive -n 10000) $(wrk_rps build/bench/registrar/heartbeat.lua)" >>"$W/res"
done
if grep -q "Non-2xx" "$W/wrk.log"; then echo "warning: wrk saw non-2xx answers:" >&2; grep -B3 Non-2xx "$W/wrk.log" >&2; fi
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "| run | raw Grant+Put/s | REST register/s | ratio | raw KeepAliveOnce/s | REST heartbeat/s | ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
awk '{printf "| %d | %d | %d | %.2f | %d | %d | %.2f |\n", NR, $1, $2, $2/$1, $3, $4, $4/$3}' "$W/res"
printf '| median | %s | %s | **%s** | %s | %s | **%s** |\n' \
	"$(cut -d' ' -f1 "$W/res" | median)" "$(cut -d' ' -f2 "$W/res" | median)" \
	"$(awk '{printf "%.2f\n", $2/$1}' "$W/res" | median)" \
	"$(cut -d' ' -f3 "$W/res" | median)" "$(cut -d' ' -f4 "$W/res" | median)" \
	"$(awk '{printf "%.2f\n", $4/$3}' "$W/res" | median)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
