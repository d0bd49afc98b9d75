#!/usr/bin/env bash
# Before/after: the NetSel runner built from BASE (a git revision) and from
# the working tree, side by side in one run, runs interleaved:
# registrations/s and heartbeats/s (wrk on the REST API), DNS A and SRV QPS
# (dnsperf), HTTP through the proxy and through a VIP (wrk). Each runner is
# the whole stack with its embedded etcd; both stay up for the whole run.
# Prints every sample, medians and the median of per-run new/base ratios.
#
# The new runner gets NEW_FLAGS: by default a registration rate limit too
# high to bite (wrk registers from one IP as fast as it can), so the
# limiter runs on every request without refusing any.
#
#   BASE=7747637 RUNS=5 DUR=5 build/bench/ab/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
BASE=${BASE:-7747637}
RUNS=${RUNS:-5}
DUR=${DUR:-5}
C=${C:-64}
NEW_FLAGS=${NEW_FLAGS:--register-rate 1000000 -register-burst 1000000}
W=$(mktemp -d /tmp/netsel-ab.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; git worktree remove --force "$W/base-src" 2>/dev/null; rm -rf "$W"' EXIT

echo "building $BASE and the working tree" >&2
git worktree add -q --detach "$W/base-src" "$BASE"
(cd "$W/base-src" && go build -o "$W/netsel-base" ./build/netsel)
go build -o "$W/netsel-new" ./build/netsel
go build -o "$W/etcdload" ./build/bench/etcdload
go build -o "$W/nsbench" ./build/bench/proxy
BACKEND=127.0.0.1:18180
"$W/nsbench" http -addr $BACKEND >"$W/backend.log" 2>&1 &

declare -A REG DNS HTTP VIP
start() { # name regport dnsport httpport etcdport vipnet [flags...]
	local n=$1
	REG[$n]=127.0.0.1:$2 DNS[$n]=$3 HTTP[$n]=127.0.0.1:$4
	"$W/netsel-$n" -data-dir "$W/data-$n" -etcd-listen 127.0.0.1:$5 -etcd-peer 127.0.0.1:$(($5 + 1)) \
		-registrar "${REG[$n]}" -dns 127.0.0.1:$3 -http "${HTTP[$n]}" -vip-cidr "$6" \
		-log-level error "${@:7}" >"$W/$n.log" 2>&1 &
	for _ in $(seq 300); do curl -sf "http://${REG[$n]}/v1/health" >/dev/null && break; sleep 0.1; done
	curl -sf "http://${REG[$n]}/v1/health" >/dev/null || { echo "runner $n did not start:" >&2; cat "$W/$n.log" >&2; exit 1; }
	local ans
	ans=$(curl -sf -XPOST "http://${REG[$n]}/v1/services/bench/instances" -H 'Content-Type: application/json' \
		-d "{\"address\":\"127.0.0.1\",\"port\":${BACKEND#*:},\"id\":\"b1\",\"ttl\":\"1h\"}")
	VIP[$n]=$(echo "$ans" | sed -E 's/.*"vip":"([^"]+)".*"port":([0-9]+).*/\1:\2/')
	"$W/etcdload" -mode prereg -registrar "http://${REG[$n]}" -n 10000
}
start base 29911 25351 28091 23911 127.81.0.0/16
# shellcheck disable=SC2086 # NEW_FLAGS is a list of flags
start new 29921 25352 28092 23921 127.82.0.0/16 $NEW_FLAGS
printf 'bench.netsel A\nbench.netsel SRV\n' >"$W/queries"
sleep 1

wrk_rps() { wrk -t2 -c"$C" -d"${DUR}s" "$@" | tee -a "$W/wrk.log" | awk '/Requests\/sec/ {printf "%.0f", $2}'; }
dns_qps() { dnsperf -s 127.0.0.1 -p "$1" -d "$W/queries" -l "$DUR" -c 4 -T 1 2>&1 | awk '/Queries per second/ {printf "%.0f", $4}'; }
cases=${CASES:-register heartbeat dns http vip}
measure() { # case runner
	case $1 in
	register) wrk_rps -s build/bench/registrar/register.lua "http://${REG[$2]}" ;;
	heartbeat) wrk_rps -s build/bench/registrar/heartbeat.lua "http://${REG[$2]}" ;;
	dns) dns_qps "${DNS[$2]}" ;;
	http) wrk_rps -H 'Host: bench.netsel' "http://${HTTP[$2]}/" ;;
	vip) wrk_rps "http://${VIP[$2]}/" ;;
	esac
}
for r in $(seq "$RUNS"); do
	echo "run $r: load $(cut -d' ' -f1 /proc/loadavg)" >&2
	for c in $cases; do
		# Alternate which side goes first.
		if ((r % 2)); then b=$(measure "$c" base); n=$(measure "$c" new)
		else n=$(measure "$c" new); b=$(measure "$c" base); fi
		echo "$c $r $b $n" >>"$W/res"
	done
done
if grep -q "Non-2xx" "$W/wrk.log"; then echo "warning: wrk saw non-2xx answers:" >&2; grep -B3 Non-2xx "$W/wrk.log" >&2; fi
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "| case | base $BASE (median) | new (median) | new/base (median of per-run ratios) | runs |"
echo "| --- | ---: | ---: | ---: | --- |"
for c in $cases; do
	printf '| %s | %s | %s | **%s** | %s |\n' "$c" \
		"$(awk -v c="$c" '$1==c {print $3}' "$W/res" | median)" \
		"$(awk -v c="$c" '$1==c {print $4}' "$W/res" | median)" \
		"$(awk -v c="$c" '$1==c && $3>0 {printf "%.2f\n", $4/$3}' "$W/res" | median)" \
		"$(awk -v c="$c" '$1==c {printf "%s/%s ", $3, $4}' "$W/res")"
done
