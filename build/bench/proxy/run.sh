#!/usr/bin/env bash
# Proxy benchmarks for NetSel, run from the repository root:
#   build/bench/proxy/run.sh            # RUNS=5 WRK_DUR=8s IPERF_DUR=5s CONN_DUR=3s
# HTTP (wrk, same Caddy binary and process): (a) reverse_proxy to a static
# upstream, (b) the root Caddyfile's route: netsel handler + dynamic netsel +
# netsel_weighted, (b2) dynamic netsel alone.
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
CF
wait_port $ETCD
"$TMP/nsbench" register -etcd http://$ETCD -service bench -vip ${VIP_ECHO%:*} -port ${ECHO##*:} -addr $HTTP_BACKEND -id http1
"$TMP/nsbench" register -etcd http://$ETCD -service iperf -vip ${VIP_IPERF%:*} -port ${IPERF##*:} -addr $IPERF
"$TMP/nsbench" register -etcd http://$ETCD -service echo -vip 127.77.100.3 -port ${ECHO##*:} -addr $ECHO
VIP_ECHO=127.77.100.3:18090
bg "$TMP/caddy" run --config "$TMP/Caddyfile" --adapter caddyfile
for p in $HTTP_BACKEND $ECHO $IPERF 127.0.0.1:18101 127.0.0.1:18102 127.0.0.1:18201 127.0.0.1:18202 127.0.0.1:18181 127.0.0.1:18182 $VIP_IPERF $VIP_ECHO; do
	wait_port $p
done
curl -fsS -H 'Host: bench.netsel' http://127.0.0.1:18182/ >/dev/null

RES="$TMP/results"
: >"$RES"
wrk_rps() { # url
	wrk -t2 -c"$WRK_CONNS" -d"$WRK_DUR" -H 'Host: bench.netsel' "$1" | awk '/Requests\/sec/ {print $2}'
}
iperf_gbps() { # host port
	iperf3 -c "$1" -p "$2" -t "$IPERF_DUR" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 2))'
}
sample() { echo "$1 $2" | tee -a "$RES" >&2; }

# warm-up
wrk -t2 -c"$WRK_CONNS" -d2s -H 'Host: bench.netsel' http://127.0.0.1:18181/ >/dev/null
wrk -t2 -c"$WRK_CONNS" -d2s -H 'Host: bench.netsel' http://127.0.0.1:18182/ >/dev/null

for run in $(seq 1 "$RUNS"); do
	echo "run $run/$RUNS" >&2
	sample http_a_static "$(wrk_rps http://127.0.0.1:18181/)"
	sample http_b_netsel "$(wrk_rps http://127.0.0.1:18182/)"
	sample http_b2_dynamic_only "$(wrk_rps http://127.0.0.1:18183/)"
	sample tcp_direct_gbps "$(iperf_gbps 127.0.0.1 ${IPERF##*:})"
	sample tcp_c_vip_gbps "$(iperf_gbps ${VIP_IPERF%:*} ${VIP_IPERF##*:})"
	sample tcp_d_iocopy_gbps "$(iperf_gbps 127.0.0.1 18101)"
	sample tcp_e_haproxy_gbps "$(iperf_gbps 127.0.0.1 18201)"
	sample conn_direct "$("$TMP/nsbench" connrate -addr $ECHO -d "$CONN_DUR")"
	sample conn_vip "$("$TMP/nsbench" connrate -addr $VIP_ECHO -d "$CONN_DUR")"
	sample conn_iocopy "$("$TMP/nsbench" connrate -addr 127.0.0.1:18102 -d "$CONN_DUR")"
	sample conn_haproxy "$("$TMP/nsbench" connrate -addr 127.0.0.1:18202 -d "$CONN_DUR")"
done
echo "listener open latency (etcd write -> first connection through the new VIP):"
"$TMP/nsbench" listener-latency -etcd http://$ETCD -n 30 -target $ECHO || echo "listener-latency failed" >&2
uptime >&2

python3 - "$RES" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.split()
    d[k].append(float(v))
m = {k: statistics.median(v) for k, v in d.items()}
print("\nmedians over %d runs:" % len(d["http_a_static"]))
for k in d:
    print(f"  {k:22s} {m[k]:>12.2f}   samples {d[k]}")
def r(a, b):
    # median of the per-run ratios: each run measures a and b back to back,
    # which cancels most of the drift of a shared machine's load
    return statistics.median(x / y for x, y in zip(d[a], d[b]))
print("\nratios (median of per-run ratios):")
print(f"  (b) netsel / (a) static HTTP           {r('http_b_netsel','http_a_static'):.3f}  (target >= 0.97)")
print(f"  (b2) dynamic only / (a) static HTTP    {r('http_b2_dynamic_only','http_a_static'):.3f}")
print(f"  (c) VIP / (d) io.Copy throughput       {r('tcp_c_vip_gbps','tcp_d_iocopy_gbps'):.3f}  (target >= 0.95)")
print(f"  (c) VIP / (e) HAProxy throughput       {r('tcp_c_vip_gbps','tcp_e_haproxy_gbps'):.3f}  (target >= 1.3)")
print(f"  (c) VIP / direct throughput            {r('tcp_c_vip_gbps','tcp_direct_gbps'):.3f}")
print(f"  VIP / io.Copy new conns/s              {r('conn_vip','conn_iocopy'):.3f}")
print(f"  VIP / HAProxy new conns/s              {r('conn_vip','conn_haproxy'):.3f}")
PY
