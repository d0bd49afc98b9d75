#!/usr/bin/env bash
# Proxy benchmarks for NetSel, run from the repository root:
#   build/bench/proxy/run.sh            # RUNS=5 WRK_DUR=8s IPERF_DUR=5s CONN_DUR=3s
#   ONLY=http build/bench/proxy/run.sh  # HTTP only (ONLY=tcp: TCP only)
# HTTP (wrk, same Caddy binary and process): (a) reverse_proxy to a static
# upstream, (b) the root Caddyfile's route: netsel handler + dynamic netsel +
# netsel_weighted, (b2) dynamic netsel alone. Against the same backend, in the
# same runs: direct, HAProxy in mode http, Caddy with its default transport,
# and the NetSel runner itself (go build ./build/netsel, its shipped config).
# TCP (iperf3): (c) NetSel VIP proxy, (d) minimal Go io.Copy proxy,
# (e) HAProxy in TCP mode, and direct. New connections/s through the same.
# Time for a new service's VIP listener to open after its etcd write.
# Prints every sample, then medians and ratios.
set -euo pipefail

RUNS=${RUNS:-5}
WRK_DUR=${WRK_DUR:-8s}
WRK_CONNS=${WRK_CONNS:-50}
IPERF_DUR=${IPERF_DUR:-5}
CONN_DUR=${CONN_DUR:-3s}
ONLY=${ONLY:-}
# CANDIDATES=1 adds two alternatives to the runner's shipped HTTP proxy:
# (f) route (b) with an HTTP/1.1-only, no-compression transport, and a second
# runner process with GOGC=400.
CANDIDATES=${CANDIDATES:-}
TMP=$(mktemp -d /tmp/netsel-bench-proxy.XXXXXX)
PIDS=()
cleanup() {
	status=$?
	if [ "$status" -ne 0 ]; then
		cp "$TMP/log" /tmp/netsel-bench-proxy.log 2>/dev/null || true
		echo "failed; the servers' log is in /tmp/netsel-bench-proxy.log; its last lines:" >&2
		tail -20 "$TMP/log" >&2 || true
	fi
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

ETCD=127.0.0.1:23790
HTTP_BACKEND=127.0.0.1:18080
ECHO=127.0.0.1:18090
IPERF=127.0.0.1:15201
VIP_IPERF=127.77.100.1:15201
VIP_ECHO=127.77.100.2:18090

echo "building" >&2
go build -o "$TMP/caddy" ./build/caddy
go build -o "$TMP/nsbench" ./build/bench/proxy
go build -o "$TMP/netsel" ./build/netsel

bg() { "$@" >>"$TMP/log" 2>&1 & PIDS+=($!); }
wait_port() { # host:port
	for _ in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nothing listening on $1" >&2; exit 1
}

bg "$TMP/nsbench" etcd -addr $ETCD -peer 127.0.0.1:23800 -dir "$TMP/etcd"
bg "$TMP/nsbench" http -addr $HTTP_BACKEND
bg "$TMP/nsbench" echo -addr $ECHO
bg iperf3 -s -B 127.0.0.1 -p ${IPERF##*:}
bg "$TMP/nsbench" copyproxy -listen 127.0.0.1:18101 -target $IPERF
bg "$TMP/nsbench" copyproxy -listen 127.0.0.1:18102 -target $ECHO
cat >"$TMP/haproxy.cfg" <<HA
global
	maxconn 8000
defaults
	mode tcp
	timeout connect 2s
	timeout client 60s
	timeout server 60s
frontend iperf
	bind 127.0.0.1:18201
	default_backend iperf
backend iperf
	server s1 $IPERF
frontend echo
	bind 127.0.0.1:18202
	default_backend echo
backend echo
	server s1 $ECHO
frontend http
	mode http
	bind 127.0.0.1:18203
	maxconn 4000
	option http-keep-alive
	timeout http-request 10s
	timeout http-keep-alive 60s
	default_backend http
backend http
	mode http
	http-reuse always
	server s1 $HTTP_BACKEND maxconn 1000
HA
bg haproxy -db -f "$TMP/haproxy.cfg"

TRANSPORT='transport http {
			dial_timeout 2s
			keepalive 90s
			keepalive_idle_conns 4096
			keepalive_idle_conns_per_host 512
		}'
cat >"$TMP/Caddyfile" <<CF
{
	admin off
	auto_https off
	netsel {
		endpoint http://$ETCD
		vip_proxy
	}
}
http://:18181 {
	bind 127.0.0.1
	reverse_proxy $HTTP_BACKEND {
		lb_retries 2
		fail_duration 10s
		$TRANSPORT
	}
}
http://:18182 {
	bind 127.0.0.1
	netsel
	reverse_proxy {
		dynamic netsel
		lb_policy netsel_weighted
		lb_retries 2
		fail_duration 10s
		$TRANSPORT
	}
}
http://:18183 {
	bind 127.0.0.1
	reverse_proxy {
		dynamic netsel
		lb_retries 2
		fail_duration 10s
		$TRANSPORT
	}
}
http://:18184 {
	bind 127.0.0.1
	reverse_proxy $HTTP_BACKEND
}
http://:18186 {
	bind 127.0.0.1
	netsel
	reverse_proxy {
		dynamic netsel
		lb_policy netsel_weighted
		lb_retries 2
		fail_duration 10s
		transport http {
			dial_timeout 2s
			keepalive 90s
			keepalive_idle_conns 4096
			keepalive_idle_conns_per_host 512
			versions 1.1
			compression off
		}
	}
}
CF
wait_port $ETCD
"$TMP/nsbench" register -etcd http://$ETCD -service bench -vip ${VIP_ECHO%:*} -port ${ECHO##*:} -addr $HTTP_BACKEND -id http1
"$TMP/nsbench" register -etcd http://$ETCD -service iperf -vip ${VIP_IPERF%:*} -port ${IPERF##*:} -addr $IPERF
"$TMP/nsbench" register -etcd http://$ETCD -service echo -vip 127.77.100.3 -port ${ECHO##*:} -addr $ECHO
VIP_ECHO=127.77.100.3:18090
bg "$TMP/caddy" run --config "$TMP/Caddyfile" --adapter caddyfile
# The runner exactly as shipped, on the bench's etcd, its HTTP proxy on
# 127.0.0.1:18185; no VIP proxy (the Caddy above owns the bench VIPs) and a
# VIP range nothing here uses.
bg "$TMP/netsel" serve -etcd http://$ETCD -registrar 127.0.0.1:19000 -dns 127.0.0.1:19053 \
	-http 127.0.0.1:18185 -vip-proxy=false -vip-cidr 127.78.0.0/16 -log-level warn
for p in $HTTP_BACKEND $ECHO $IPERF 127.0.0.1:18101 127.0.0.1:18102 127.0.0.1:18201 127.0.0.1:18202 127.0.0.1:18203 \
	127.0.0.1:18181 127.0.0.1:18182 127.0.0.1:18183 127.0.0.1:18184 127.0.0.1:18185 $VIP_IPERF $VIP_ECHO; do
	wait_port $p
done
if [ -n "$CANDIDATES" ]; then
	GOGC=400 bg "$TMP/netsel" serve -etcd http://$ETCD -registrar 127.0.0.1:19001 -dns 127.0.0.1:19054 \
		-http 127.0.0.1:18187 -vip-proxy=false -vip-cidr 127.79.0.0/16 -log-level warn
	wait_port 127.0.0.1:18187
fi
for p in 18181 18182 18183 18184 18185 18186 18203; do
	curl -fsS -o /dev/null -H 'Host: bench.netsel' http://127.0.0.1:$p/
done

RES="$TMP/results"
: >"$RES"
# wrk_sample NAME URL: records NAME (requests/s) and NAME_p99ms.
wrk_sample() {
	local out rps p99
	out=$(wrk -t2 -c"$WRK_CONNS" -d"$WRK_DUR" --latency -H 'Host: bench.netsel' "$2")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; print v}' <<<"$out")
	sample "$1" "$rps"
	sample "$1_p99ms" "$p99"
}
iperf_gbps() { # host port
	iperf3 -c "$1" -p "$2" -t "$IPERF_DUR" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 2))'
}
sample() { echo "$1 $2" | tee -a "$RES" >&2; }

HTTP_TARGETS=(
	http_direct=http://$HTTP_BACKEND/
	http_haproxy=http://127.0.0.1:18203/
	http_caddy_default=http://127.0.0.1:18184/
	http_runner=http://127.0.0.1:18185/
	http_a_static=http://127.0.0.1:18181/
	http_b_netsel=http://127.0.0.1:18182/
	http_b2_dynamic_only=http://127.0.0.1:18183/
)
if [ -n "$CANDIDATES" ]; then
	HTTP_TARGETS+=(http_f_h1_nocompress=http://127.0.0.1:18186/ http_runner_gogc400=http://127.0.0.1:18187/)
fi

if [ "$ONLY" != tcp ]; then
	# warm-up: every proxy fills its keep-alive pool
	for t in "${HTTP_TARGETS[@]}"; do
		wrk -t2 -c"$WRK_CONNS" -d1s -H 'Host: bench.netsel' "${t#*=}" >/dev/null
	done
fi

for run in $(seq 1 "$RUNS"); do
	echo "run $run/$RUNS" >&2
	if [ "$ONLY" != tcp ]; then
		# Interleaved, the order reversed every other run so that no target
		# always follows the same neighbour.
		targets=("${HTTP_TARGETS[@]}")
		if [ $((run % 2)) -eq 0 ]; then
			for ((i = ${#HTTP_TARGETS[@]} - 1, j = 0; i >= 0; i--, j++)); do targets[j]=${HTTP_TARGETS[i]}; done
		fi
		for t in "${targets[@]}"; do
			wrk_sample "${t%%=*}" "${t#*=}"
		done
	fi
	if [ "$ONLY" != http ]; then
		sample tcp_direct_gbps "$(iperf_gbps 127.0.0.1 ${IPERF##*:})"
		sample tcp_c_vip_gbps "$(iperf_gbps ${VIP_IPERF%:*} ${VIP_IPERF##*:})"
		sample tcp_d_iocopy_gbps "$(iperf_gbps 127.0.0.1 18101)"
		sample tcp_e_haproxy_gbps "$(iperf_gbps 127.0.0.1 18201)"
		sample conn_direct "$("$TMP/nsbench" connrate -addr $ECHO -d "$CONN_DUR")"
		sample conn_vip "$("$TMP/nsbench" connrate -addr $VIP_ECHO -d "$CONN_DUR")"
		sample conn_iocopy "$("$TMP/nsbench" connrate -addr 127.0.0.1:18102 -d "$CONN_DUR")"
		sample conn_haproxy "$("$TMP/nsbench" connrate -addr 127.0.0.1:18202 -d "$CONN_DUR")"
	fi
done
if [ "$ONLY" != http ]; then
echo "listener open latency (etcd write -> first connection through the new VIP):"
"$TMP/nsbench" listener-latency -etcd http://$ETCD -n 30 -target $ECHO || echo "listener-latency failed" >&2
fi
uptime >&2

python3 - "$RES" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.split()
    d[k].append(float(v))
m = {k: statistics.median(v) for k, v in d.items()}
print("\nmedians over %d runs:" % max(len(v) for v in d.values()))
for k in d:
    print(f"  {k:28s} {m[k]:>10.2f}   samples {d[k]}")
def r(a, b):
    # median of the per-run ratios: each run measures a and b back to back,
    # which cancels most of the drift of a shared machine's load
    return statistics.median(x / y for x, y in zip(d[a], d[b]))
rows = [
    ("(b) netsel / (a) static HTTP req/s", "http_b_netsel", "http_a_static", ">= 0.97"),
    ("(b) / (a) p99", "http_b_netsel_p99ms", "http_a_static_p99ms", "<= 1.1"),
    ("(b2) dynamic only / (a) static req/s", "http_b2_dynamic_only", "http_a_static", ""),
    ("runner / HAProxy http req/s", "http_runner", "http_haproxy", ">= 0.5 (stretch)"),
    ("runner / HAProxy http p99", "http_runner_p99ms", "http_haproxy_p99ms", ""),
    ("runner / direct req/s", "http_runner", "http_direct", ""),
    ("HAProxy http / direct req/s", "http_haproxy", "http_direct", "(issue: ~0.62)"),
    ("Caddy default / direct req/s", "http_caddy_default", "http_direct", "(issue: ~0.16)"),
    ("runner / Caddy default req/s", "http_runner", "http_caddy_default", ""),
    ("runner / (b) same route in caddy req/s", "http_runner", "http_b_netsel", ""),
    ("(f) h1-only, no compression / (b) req/s", "http_f_h1_nocompress", "http_b_netsel", ""),
    ("runner GOGC=400 / runner req/s", "http_runner_gogc400", "http_runner", ""),
    ("runner GOGC=400 / HAProxy http req/s", "http_runner_gogc400", "http_haproxy", ""),
    ("(c) VIP / (d) io.Copy throughput", "tcp_c_vip_gbps", "tcp_d_iocopy_gbps", ">= 0.95"),
    ("(c) VIP / (e) HAProxy throughput", "tcp_c_vip_gbps", "tcp_e_haproxy_gbps", ">= 1.3"),
    ("(c) VIP / direct throughput", "tcp_c_vip_gbps", "tcp_direct_gbps", ""),
    ("VIP / io.Copy new conns/s", "conn_vip", "conn_iocopy", ""),
    ("VIP / HAProxy new conns/s", "conn_vip", "conn_haproxy", ""),
]
print("\nratios (median of per-run ratios):")
for label, a, b, target in rows:
    if a in d and b in d:
        print(f"  {label:40s} {r(a, b):6.3f}  {target}")
PY
