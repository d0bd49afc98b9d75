#!/usr/bin/env bash
# DNS benchmark of the netsel plugin against CoreDNS's hosts plugin as
# operators run them: bare, with prometheus in front, with a client's EDNS0
# COOKIE in every query (as resolvers send), with multisocket, and NSD (C)
# serving a zone of the same names; all A questions of build/bench/dns's
# dataset (1,000 services x 3 instances), one binary (build/coredns), runs
# interleaved, medians reported. Prints a markdown table on stdout.
#
#   build/bench/dns/chain.sh     # DUR=10 RUNS=3 CLIENTS=8 by default
#
# Needs dnsperf, dig and nsd (apt-get install -y dnsperf bind9-dnsutils nsd;
# NSD is skipped when missing). Every server listens on 127.0.0.1 only, and
# NSD has no zone transfer or notify configured, so it sends no query.
set -euo pipefail
cd "$(dirname "$0")/../../.."

DUR=${DUR:-10}          # seconds per dnsperf run
RUNS=${RUNS:-3}         # runs per case; medians are reported
CLIENTS=${CLIENTS:-8}   # dnsperf -c
COOKIE=10:24a7c1e2f3d40b56 # EDNS0 option 10, an 8-byte client cookie
W=$(mktemp -d /tmp/netsel-dnschain.XXXXXX)
ETCD=http://127.0.0.1:23890

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
		if [ -n "$(dig +short +tries=1 +time=1 @127.0.0.1 -p "$1" "$2" "$3" 2>/dev/null)" ]; then return 0; fi
		sleep 0.1
	done
	echo "no answer from port $1 for $2 $3" >&2
	exit 1
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# cpu_ticks PID: CPU time (user + system, clock ticks) of PID and its
# descendants (NSD's server process is a grandchild of the one started)
cpu_ticks() {
	local t p
	# utime and stime are fields 14 and 15; the name (2) may hold spaces.
	t=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}')
	t=${t:-0}
	for p in $(pgrep -P "$1" || true); do
		t=$((t + $(cpu_ticks "$p")))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)

# once PORT SERVER OUT [dnsperf options...]: one run against the process
# started as SERVER, appending "qps mean_ms p99_ms cpu_us_per_query" to OUT
once() {
	local port=$1 pid out=$3 t0 t1; pid=$(cat "$W/$2.pid"); shift 3
	t0=$(cpu_ticks "$pid")
	dnsperf -s 127.0.0.1 -p "$port" -d "$W/a.txt" -l "$DUR" -c "$CLIENTS" -T 1 -v "$@" >"$W/out" 2>&1
	t1=$(cpu_ticks "$pid")
	lost=$(awk '/Queries lost/ {print $3}' "$W/out")
	[ "$lost" = 0 ] || echo "warning: port $port lost $lost queries" >&2
	done=$(awk '/Queries completed/ {print $3}' "$W/out")
	echo "$(awk '/Queries per second/ {print $4}' "$W/out") $("$W/dnsbench" latency <"$W/out")" \
		"$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$done" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')" >>"$out"
}

go build -o "$W/coredns" ./build/coredns
go build -o "$W/dnsbench" ./build/bench/dns

start etcd "$W/dnsbench" etcd -listen 127.0.0.1:23890 -peer 127.0.0.1:23900 -dir "$W/etcd"
for _ in $(seq 100); do grep -q ready "$W/etcd.log" && break; sleep 0.1; done
"$W/dnsbench" load -etcd $ETCD -services 1000 -instances 3 -out "$W" >/dev/null

corefile() { # name port front
	printf 'netsel.:%s {\n    bind 127.0.0.1\n%s\n    %s\n}\n' "$2" "$3" "$4" >"$W/Corefile.$1"
	start "$1" "$W/coredns" -conf "$W/Corefile.$1"
}
NETSEL="netsel {
        endpoint $ETCD
    }"
HOSTS="hosts $W/hosts netsel. {
        reload 0
    }"
corefile netsel 25401 "" "$NETSEL"
corefile hosts 25402 "" "$HOSTS"
corefile netsel-prom 25403 "    prometheus 127.0.0.1:29401" "$NETSEL"
corefile hosts-prom 25404 "    prometheus 127.0.0.1:29402" "$HOSTS"
corefile netsel-prom-ms 25405 "    prometheus 127.0.0.1:29403
    multisocket" "$NETSEL"
corefile hosts-prom-ms 25406 "    prometheus 127.0.0.1:29404
    multisocket" "$HOSTS"
corefile netsel-prom-cache 25407 "    prometheus 127.0.0.1:29405
    cache 30" "$NETSEL"
corefile hosts-prom-cache 25408 "    prometheus 127.0.0.1:29406
    cache 30" "$HOSTS"
ports="25401 25402 25403 25404 25405 25406 25407 25408"

# NSD: the same names in a zone file, one server process, loopback only.
if command -v nsd >/dev/null; then
	mkdir -p "$W/nsd"
	{
		printf '$ORIGIN netsel.\n$TTL 5\n@ SOA ns.dns.netsel. hostmaster.netsel. 1 7200 1800 86400 5\n@ NS ns.dns.netsel.\n'
		awk '{print $2 " A " $1}' "$W/hosts"
	} >"$W/nsd/netsel.zone"
	cat >"$W/nsd/nsd.conf" <<-EOF
	server:
	    ip-address: 127.0.0.1@25409
	    do-ip6: no
	    server-count: 1
	    username: ""
	    chroot: ""
	    database: ""
	    zonesdir: "$W/nsd"
	    zonelistfile: "$W/nsd/zone.list"
	    xfrdfile: "$W/nsd/xfrd.state"
	    pidfile: "$W/nsd/nsd.pid"
	    logfile: "$W/nsd/nsd.log"
	    hide-version: yes
	remote-control:
	    control-enable: no
	zone:
	    name: netsel.
	    zonefile: netsel.zone
	EOF
	start nsd nsd -d -c "$W/nsd/nsd.conf"
	ports="$ports 25409"
fi
for port in $ports; do wait_answer "$port" svc00999.netsel. A; done

# Runs are interleaved (run 1 of every case, then run 2, ...) so that load
# from other processes on the machine falls on every case alike.
# Each case is name:port:server[:E], E for a COOKIE in every query.
cases="netsel:25401:netsel hosts:25402:hosts netsel-prom:25403:netsel-prom hosts-prom:25404:hosts-prom
netsel-cookie:25401:netsel:E hosts-cookie:25402:hosts:E
netsel-prom-cookie:25403:netsel-prom:E hosts-prom-cookie:25404:hosts-prom:E
netsel-prom-ms:25405:netsel-prom-ms hosts-prom-ms:25406:hosts-prom-ms
netsel-prom-cache:25407:netsel-prom-cache hosts-prom-cache:25408:hosts-prom-cache"
case " $ports " in *" 25409 "*) cases="$cases nsd:25409:nsd nsd-cookie:25409:nsd:E" ;; esac
for _ in $(seq "$RUNS"); do
	for c in $cases; do
		IFS=: read -r name port server opt <<<"$c"
		if [ "$opt" = E ]; then
			once "$port" "$server" "$W/res.$name" -E "$COOKIE"
		else
			once "$port" "$server" "$W/res.$name"
		fi
	done
done

qps() { cut -d' ' -f1 "$W/res.$1" | median; }
col() { cut -d' ' -f"$2" "$W/res.$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "## DNS as operators run it: A, 1,000 services (dnsperf -l $DUR -c $CLIENTS -T 1, median of $RUNS interleaved runs)"
echo
echo "QPS and latency are dnsperf's; CPU is the server process's user + system time per query answered"
echo "(a ratio of CPUs is hosts' over netsel's: above 1, netsel spends less per query)."
echo
echo "| case | netsel QPS | hosts QPS | QPS netsel / hosts | netsel CPU µs/q | hosts CPU µs/q | CPU hosts / netsel | netsel mean / p99 ms | hosts mean / p99 ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
row() { # label netsel-case hosts-case
	printf '| %s | %.0f | %.0f | %s | %s | %s | %s | %s / %s | %s / %s |\n' "$1" "$(qps "$2")" "$(qps "$3")" \
		"$(ratio "$(qps "$2")" "$(qps "$3")")" "$(col "$2" 4)" "$(col "$3" 4)" "$(ratio "$(col "$3" 4)" "$(col "$2" 4)")" \
		"$(col "$2" 2)" "$(col "$2" 3)" "$(col "$3" 2)" "$(col "$3" 3)"
}
row bare netsel hosts
row "prometheus in front" netsel-prom hosts-prom
row "bare, COOKIE in queries" netsel-cookie hosts-cookie
row "prometheus, COOKIE in queries" netsel-prom-cookie hosts-prom-cookie
row "prometheus, multisocket" netsel-prom-ms hosts-prom-ms
row "prometheus, cache 30" netsel-prom-cache hosts-prom-cache
if [ -f "$W/res.nsd" ]; then
	echo
	echo "| NSD $(nsd -v 2>&1 | awk 'NR==1 {print $NF}') | QPS | CPU µs/q | mean / p99 ms | QPS netsel bare / NSD | QPS netsel prometheus / NSD | CPU NSD / netsel bare |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for c in nsd:netsel:netsel-prom:A nsd-cookie:netsel-cookie:netsel-prom-cookie:"A, COOKIE"; do
		IFS=: read -r n b p label <<<"$c"
		printf '| %s | %.0f | %s | %s / %s | %s | %s | %s |\n' "$label" "$(qps "$n")" "$(col "$n" 4)" "$(col "$n" 2)" "$(col "$n" 3)" \
			"$(ratio "$(qps "$b")" "$(qps "$n")")" "$(ratio "$(qps "$p")" "$(qps "$n")")" "$(ratio "$(col "$n" 4)" "$(col "$b" 4)")"
	done
fi
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs."
