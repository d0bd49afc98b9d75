#!/usr/bin/env bash
# DNS benchmark of the netsel CoreDNS plugin against hosts, etcd, cache+etcd
# and a bare miekg/dns server answering from a Go map, on one machine, with
# dnsperf. Prints a markdown report on stdout; see BENCHMARKS.md.
#
#   build/bench/dns/run.sh            # DUR=10 RUNS=3 CLIENTS=4 by default
set -euo pipefail
cd "$(dirname "$0")/../../.."

DUR=${DUR:-10}          # seconds per dnsperf run
RUNS=${RUNS:-3}         # runs per case; medians are reported
CLIENTS=${CLIENTS:-4}   # dnsperf -c
FRESH=${FRESH:-1000}    # registrations for the freshness probe
W=$(mktemp -d /tmp/netsel-dnsbench.XXXXXX)
ETCD=http://127.0.0.1:23790

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
start() { # log-name command...
	local log=$1; shift
	"$@" >"$W/$log.log" 2>&1 &
	pids+=($!)
	echo $! >"$W/$log.pid"
}
wait_answer() { # port name type
	for _ in $(seq 600); do
		if dig +tries=1 +time=1 @127.0.0.1 -p "$1" "$2" "$3" 2>/dev/null | grep -q 'status: NOERROR' &&
			[ -n "$(dig +short +tries=1 +time=1 @127.0.0.1 -p "$1" "$2" "$3")" ]; then return 0; fi
		sleep 0.1
	done
	echo "no answer from port $1 for $2 $3" >&2
	exit 1
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$(cat "$W/$1.pid")/status"; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# once PORT QUERYFILE OUT: one dnsperf run, appending "qps mean_ms p99_ms" to OUT
once() {
	dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$DUR" -c "$CLIENTS" -T 1 -v >"$W/out" 2>&1
	lost=$(awk '/Queries lost/ {print $3}' "$W/out")
	[ "$lost" = 0 ] || echo "warning: port $1 lost $lost queries" >&2
	echo "$(awk '/Queries per second/ {print $4}' "$W/out") $("$W/dnsbench" latency <"$W/out")" >>"$3"
}
# medians OUT -> "qps mean_ms p99_ms", each the median over the runs in OUT
medians() {
	printf '%.0f %s %s\n' "$(cut -d' ' -f1 "$1" | median)" "$(cut -d' ' -f2 "$1" | median)" "$(cut -d' ' -f3 "$1" | median)"
}

go build -o "$W/coredns" ./build/coredns
go build -o "$W/dnsbench" ./build/bench/dns
go build -o "$W/netsel" ./build/netsel

start etcd "$W/dnsbench" etcd -listen 127.0.0.1:23790 -peer 127.0.0.1:23800 -dir "$W/etcd"
for _ in $(seq 100); do grep -q ready "$W/etcd.log" && break; sleep 0.1; done
"$W/dnsbench" load -etcd $ETCD -services 1000 -instances 3 -skydns -out "$W"

corefile() { # name port body
	printf 'netsel.:%s {\n    bind 127.0.0.1\n%s\n}\n' "$2" "$3" >"$W/Corefile.$1"
	start "$1" "$W/coredns" -conf "$W/Corefile.$1"
}
corefile netsel 25301 "    netsel {
        endpoint $ETCD
    }"
corefile hosts 25302 "    hosts $W/hosts netsel. {
        reload 0
    }"
corefile etcd 25303 "    etcd netsel. {
        endpoint $ETCD
        path /skydns
    }"
corefile cache-etcd 25304 "    cache 30
    etcd netsel. {
        endpoint $ETCD
        path /skydns
    }"
start map "$W/dnsbench" mapserve -addr 127.0.0.1:25305 -services 1000 -instances 3
for port in 25301 25302 25303 25304 25305; do wait_answer $port svc00999.netsel. A; done

# netsel at 10,000 and 100,000 instances, each under its own prefix of the
# same etcd, served by its own CoreDNS and measured in the same interleaved
# runs as the 1,000-service case.
scale="3334:25306 33334:25307"
for s in $scale; do
	n=${s%%:*} port=${s##*:}
	mkdir -p "$W/s$n"
	"$W/dnsbench" load -etcd $ETCD -prefix "/netsel$n/" -services "$n" -instances 3 -out "$W/s$n"
	corefile "netsel$n" "$port" "    netsel {
        endpoint $ETCD
        prefix /netsel$n/
    }"
	wait_answer "$port" "svc$(printf %05d $((n - 1))).netsel." SRV
	echo "$(rss_mb "netsel$n")" >"$W/rss0.s$n"
done

# Runs are interleaved (run 1 of every case, then run 2, ...) so that load
# from other processes on the machine falls on every case alike.
cases="netsel:25301:a netsel:25301:srv hosts:25302:a etcd:25303:a etcd:25303:srv cache-etcd:25304:a cache-etcd:25304:srv map:25305:a map:25305:srv"
for s in $scale; do
	n=${s%%:*} port=${s##*:}
	cases="$cases s$n:$port:s$n/a s$n:$port:s$n/srv"
done
for _ in $(seq "$RUNS"); do
	for c in $cases; do
		IFS=: read -r name port q <<<"$c"
		once "$port" "$W/$q.txt" "$W/res.$name.${q##*/}"
	done
done

echo "## DNS: 1,000 services x 3 instances (dnsperf -l $DUR -c $CLIENTS -T 1, median of $RUNS interleaved runs)"
echo
echo "| server | A QPS | A mean ms | A p99 ms | SRV QPS | SRV mean ms | SRV p99 ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for name in netsel hosts etcd cache-etcd map; do
	read -r aq am ap <<<"$(medians "$W/res.$name.a")"
	if [ -f "$W/res.$name.srv" ]; then
		read -r sq sm sp <<<"$(medians "$W/res.$name.srv")"
	else
		sq=n/a sm=n/a sp=n/a # hosts has no SRV records
	fi
	echo "| $name | $aq | $am | $ap | $sq | $sm | $sp |"
done
echo
echo "RSS after the runs (MB): netsel $(rss_mb netsel), hosts $(rss_mb hosts), etcd $(rss_mb etcd), cache-etcd $(rss_mb cache-etcd), map $(rss_mb map)"
echo

echo "## netsel at scale (same interleaved runs)"
echo
echo "| instances | services | A QPS | A p99 ms | SRV QPS | SRV p99 ms | RSS MB after sync | RSS MB after runs |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
read -r aq _ ap <<<"$(medians "$W/res.netsel.a")"
read -r sq _ sp <<<"$(medians "$W/res.netsel.srv")"
echo "| 3000 | 1000 | $aq | $ap | $sq | $sp | — | $(rss_mb netsel) |"
for s in $scale; do
	n=${s%%:*}
	read -r aq _ ap <<<"$(medians "$W/res.s$n.a")"
	read -r sq _ sp <<<"$(medians "$W/res.s$n.srv")"
	echo "| $((n * 3)) | $n | $aq | $ap | $sq | $sp | $(cat "$W/rss0.s$n") | $(rss_mb "netsel$n") |"
	kill "$(cat "$W/netsel$n.pid")"
done
echo

echo "## Freshness"
echo
echo "Time to the first DNS answer with a new instance (netsel, 1,000 services loaded), from the"
echo "registration's HTTP 200 through a real registrar, and from the start of a raw etcd put:"
echo
start registrar "$W/netsel" -etcd $ETCD -registrar 127.0.0.1:29000 -dns '' -http '' -vip-proxy=false -log-level warn
for _ in $(seq 100); do curl -sf 127.0.0.1:29000/v1/health >/dev/null && break; sleep 0.1; done
"$W/dnsbench" fresh -registrar http://127.0.0.1:29000 -dns 127.0.0.1:25301 -n "$FRESH"
"$W/dnsbench" fresh -etcd $ETCD -dns 127.0.0.1:25301 -n "$FRESH"
