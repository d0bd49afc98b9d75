#!/usr/bin/env bash
# cluster.sh: NetSel on three hosts, all on this one Linux machine.
#
# It is the README's "Many hosts" set-up on network namespaces: hosts
# netsel-h1..netsel-h3 (198.18.0.10-12/24) plugged into one bridge that lives
# in a fourth namespace, netsel-sw; nothing is routed to or from this
# machine's own network. On them it starts an etcd cluster, one member on
# each host; "netsel agent" on every host (the registrar on the host's
# address; DNS, 127.0.0.1:5353, and the HTTP proxy, 127.0.0.1:8081, on its
# loopback; the VIP range 198.19.0.0/16 local to it); the example echo
# service on h1 and h2. Then it prints what to type to find and reach the
# service from h3, and waits.
#
# Usage, as root, from anywhere in the repository:
#   sudo examples/cluster/cluster.sh          bring it up; Ctrl-C stops it
#   sudo examples/cluster/cluster.sh -check   bring it up, run the example
#       client on h3 (and dig and curl, if installed), tear it down; exit 0
#       when every check passed
#
# Needs: root; ip (iproute2), setsid (util-linux), timeout (coreutils);
# Debian's etcd server, /usr/bin/etcd (package etcd-server; $NETSEL_ETCD
# names another); and go, to build netsel and the example service and
# client into its temp dir (sudo may drop go from PATH: sudo env
# "PATH=$PATH" examples/cluster/cluster.sh), or $NETSEL_BIN_DIR, a directory
# where they are built: go build -o DIR/ ./build/netsel ./examples/...
#
# On Ctrl-C, SIGTERM, or a failure while starting, it stops every process
# it started, by PID (SIGTERM, so that the agents remove their VIP routes;
# SIGKILL after a deadline), deletes the namespaces it created and its temp
# dir, where the logs are. It refuses to start if one of its namespaces
# exists. Killed with SIGKILL, it leaves them: kill the PIDs it printed, then
# ip netns del netsel-h1 (and h2, h3, sw).
#
# A test hook: NETSEL_CLUSTER_FAIL_AT=hosts|etcd|agent|service fails start-up
# on purpose right after that step.

# Functions that only traps and wait_until call look unreachable to it:
# shellcheck disable=SC2317
set -Eeuo pipefail

readonly prefix=netsel
readonly switch_ns=$prefix-sw
readonly hosts=(1 2 3)
readonly vip_cidr=198.19.0.0/16
readonly registrar_port=9000
readonly dns_addr=127.0.0.1:5353
readonly http_addr=127.0.0.1:8081
readonly etcd_bin=${NETSEL_ETCD:-/usr/bin/etcd}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly root

case ${1:-} in
'') check=false ;;
-check) check=true ;;
-h | -help | --help) sed -n '2,/^$/{/^$/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" && exit 0 ;;
*) echo "usage: $0 [-check]" >&2 && exit 2 ;;
esac

# What this run made, and so must undo.
tmp=''
created_ns=()
service_pids=()
agent_pids=()
etcd_pids=()
declare -A what=() # PID -> "role on namespace"
declare -A logs=() # PID -> its log file

ns() { echo "$prefix-h$1"; }
addr() { echo "198.18.0.$((9 + $1))"; } # h1..h3: .10-.12, as in the tests
registrar_url() { echo "http://$(addr "$1"):$registrar_port"; }
join() { # join SEP WORD...
	local IFS=$1
	shift
	echo "$*"
}

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

# alive PID: PID is a child of this script and has not exited.
alive() {
	local st
	st=$(awk '/^PPid:/ {p = $2} /^State:/ {s = $2} END {print p, s}' "/proc/$1/status" 2>/dev/null) || return 1
	[[ $st == "$$ "* && $st != *" Z" ]]
}

# start ROLE HOST PROGRAM ARGS...: runs PROGRAM in host HOST's namespace,
# in a session of its own (Ctrl-C reaches this script alone, which stops the
# processes in order), its output in a log file. Sets started to its PID.
start() {
	local role=$1 host=$2 log="$tmp/logs/$1-h$2.log"
	shift 2
	setsid ip netns exec "$(ns "$host")" "$@" >"$log" 2>&1 </dev/null &
	started=$!
	what[$started]="$role on $(ns "$host")"
	logs[$started]=$log
	printf '  %-8s on %s  pid %-8s log %s\n' "$role" "$(ns "$host")" "$started" "$log"
}

# running PID...: sets left to those of PIDs still running; fails if none.
running() {
	local pid
	left=()
	for pid; do
		if alive "$pid"; then left+=("$pid"); fi
	done
	((${#left[@]} > 0))
}

# stop SECONDS PID...: SIGTERM to each PID still running, SIGKILL to those
# still running SECONDS later.
stop() {
	local secs=$1 pid
	shift
	if ! running "$@"; then return 0; fi
	kill -TERM "${left[@]}"
	local deadline=$((SECONDS + secs))
	while running "$@" && ((SECONDS < deadline)); do sleep 0.1; done
	if ! running "$@"; then return 0; fi
	for pid in "${left[@]}"; do
		echo "  ${what[$pid]} (pid $pid) still running after ${secs}s: SIGKILL" >&2
	done
	kill -KILL "${left[@]}"
	deadline=$((SECONDS + 5))
	while running "$@" && ((SECONDS < deadline)); do sleep 0.1; done
	if running "$@"; then echo "cluster.sh: still running after SIGKILL: ${left[*]}" >&2; fi
}

cleanup() {
	local rc=$? pid ns
	set +e
	trap - ERR
	trap '' INT TERM HUP
	if ((${#created_ns[@]} > 0)); then echo "stopping (this takes a few seconds)"; fi
	stop 10 "${service_pids[@]}"
	stop 20 "${agent_pids[@]}" # they stop within -stop-timeout 10s
	for pid in "${etcd_pids[@]}"; do # one by one: each hands on its lead at once
		stop 10 "$pid"
	done
	if ((rc != 0)) && ! $stopped; then
		for pid in "${!logs[@]}"; do
			echo "--- last lines of ${what[$pid]} (${logs[$pid]}):" >&2 && tail -n 15 "${logs[$pid]}" >&2
		done
	fi
	for ((i = ${#created_ns[@]} - 1; i >= 0; i--)); do
		ns=${created_ns[i]}
		ip netns del "$ns" || echo "cluster.sh: could not delete namespace $ns" >&2
	done
	if [[ -n $tmp ]]; then rm -rf -- "$tmp"; fi
	exit "$rc"
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND until it succeeds; fails
# after SECONDS, saying that WHAT did not happen.
wait_until() {
	local secs=$1 awaited=$2 deadline=$((SECONDS + $1))
	shift 2
	until "$@"; do
		if ((SECONDS >= deadline)); then
			echo "cluster.sh: no $awaited within ${secs}s" >&2
			return 1
		fi
		sleep 0.2
	done
}

# step NAME MESSAGE FUNCTION: says MESSAGE and runs FUNCTION; then fails on
# purpose if NAME is $NETSEL_CLUSTER_FAIL_AT (a test hook).
step() {
	echo "$2"
	"$3"
	if [[ ${NETSEL_CLUSTER_FAIL_AT:-} == "$1" ]]; then die "failing after step $1 on purpose"; fi
}

# check_prerequisites names everything missing at once.
check_prerequisites() {
	local missing=() t
	if ((EUID != 0)); then missing+=("root: run it with sudo"); fi
	for t in ip setsid timeout; do
		if ! command -v "$t" >/dev/null; then missing+=("$t (packages iproute2, util-linux, coreutils)"); fi
	done
	if [[ ! -x $etcd_bin ]]; then missing+=("$etcd_bin (apt-get install etcd-server, or set NETSEL_ETCD)"); fi
	if [[ -n ${NETSEL_BIN_DIR:-} ]]; then
		for t in netsel service client; do
			if [[ ! -x $NETSEL_BIN_DIR/$t ]]; then missing+=("$NETSEL_BIN_DIR/$t (NETSEL_BIN_DIR)"); fi
		done
	elif ! command -v go >/dev/null; then
		missing+=("go, to build the programs (or NETSEL_BIN_DIR with them built)")
	fi
	if ((${#missing[@]} > 0)); then
		printf 'cluster.sh: missing:\n%s\n' "$(printf '  %s\n' "${missing[@]}")" >&2 && exit 1
	fi
	local taken=()
	for t in "$switch_ns" $(for h in "${hosts[@]}"; do ns "$h"; done); do
		if [[ -e /run/netns/$t ]]; then taken+=("$t"); fi
	done
	if ((${#taken[@]} > 0)); then
		die "namespace(s) ${taken[*]} exist already: is another cluster.sh running? (ip netns del NAME removes a stale one)"
	fi
}

# make_hosts creates the switch namespace, its bridge, and each host: a
# namespace with lo up and eth0 at its address, the other end of its veth
# pair on the bridge. No default route: the hosts reach one another alone.
make_hosts() {
	ip netns add "$switch_ns"
	created_ns+=("$switch_ns")
	ip -n "$switch_ns" link add br0 type bridge
	ip -n "$switch_ns" link set br0 up
	local h n
	for h in "${hosts[@]}"; do
		n=$(ns "$h")
		ip netns add "$n"
		created_ns+=("$n")
		# IPv4 only, as the test bed's hosts.
		# shellcheck disable=SC2016 # expanded by sh
		ip netns exec "$n" sh -c 'f=/proc/sys/net/ipv6/conf/all/disable_ipv6; [ ! -e $f ] || echo 1 >$f'
		ip -n "$switch_ns" link add "h$h" type veth peer name eth0 netns "$n"
		ip -n "$switch_ns" link set "h$h" master br0
		ip -n "$switch_ns" link set "h$h" up
		ip -n "$n" link set lo up
		ip -n "$n" addr add "$(addr "$h")/24" dev eth0
		ip -n "$n" link set eth0 up
	done
}

# etcd_healthy HOST: the member on HOST answers /health with true (it has a
# leader). Plain bash over /dev/tcp: no curl needed.
etcd_healthy() {
	local out
	alive "${etcd_pids[$1 - 1]}" || die "etcd on $(ns "$1") exited"
	# shellcheck disable=SC2016 # expanded by the inner bash
	out=$(ip netns exec "$(ns "$1")" timeout 2 bash -c \
		'exec 3<>"/dev/tcp/$0/2379" && printf "GET /health HTTP/1.0\r\n\r\n" >&3 && cat <&3' "$(addr "$1")" 2>/dev/null) || return 1
	[[ $out == *'"health":"true"'* ]]
}

start_etcd() {
	local h a initial=() endpoints=()
	for h in "${hosts[@]}"; do
		initial+=("m$h=http://$(addr "$h"):2380")
		endpoints+=("http://$(addr "$h"):2379")
	done
	etcd_endpoints=$(join , "${endpoints[@]}")
	for h in "${hosts[@]}"; do
		a=$(addr "$h")
		# As internal/etcdproc.Args: fast elections, warnings only.
		start etcd "$h" "$etcd_bin" --name "m$h" --data-dir "$tmp/etcd-h$h" \
			--listen-client-urls "http://$a:2379" --advertise-client-urls "http://$a:2379" \
			--listen-peer-urls "http://$a:2380" --initial-advertise-peer-urls "http://$a:2380" \
			--initial-cluster "$(join , "${initial[@]}")" --initial-cluster-state new \
			--initial-cluster-token "netsel-example-$$" \
			--heartbeat-interval 100 --election-timeout 1000 --pre-vote \
			--logger zap --log-outputs stderr --log-level warn
		etcd_pids+=("$started")
	done
	for h in "${hosts[@]}"; do
		wait_until 30 "etcd on $(ns "$h") healthy" etcd_healthy "$h"
	done
}

# agent_ready HOST: the agent on HOST has logged that it is ready.
agent_ready() {
	local pid=${agent_pids[$1 - 1]}
	alive "$pid" || die "agent on $(ns "$1") exited"
	grep -q 'netsel ready' "${logs[$pid]}"
}

start_agents() {
	local h
	for h in "${hosts[@]}"; do
		start agent "$h" "$bin/netsel" agent -etcd "$etcd_endpoints" \
			-registrar "$(addr "$h"):$registrar_port" -dns "$dns_addr" -http "$http_addr" \
			-vip-cidr "$vip_cidr" -stop-timeout 10s
		agent_pids+=("$started")
	done
	for h in "${hosts[@]}"; do
		wait_until 60 "agent on $(ns "$h") ready" agent_ready "$h"
	done
}

# instances reads the echo service from h3's registrar: its first line says
# its VIP and ports, then one line an instance.
instances() {
	ip netns exec "$(ns 3)" timeout 5 "$bin/netsel" instances echo -registrar "$(registrar_url 3)" 2>/dev/null
}

# both_listed: h3's registrar lists the instances on h1 and h2.
both_listed() {
	local pid out
	for pid in "${service_pids[@]}"; do
		alive "$pid" || die "${what[$pid]} exited"
	done
	out=$(instances) || return 1
	[[ $out == *$'\n  h1 '* && $out == *$'\n  h2 '* ]]
}

start_services() {
	start service 1 "$bin/service" -name echo -id h1 -host "$(addr 1)" \
		-registrar "$(registrar_url 1),$(registrar_url 2)" -ttl 20s -interval 5s
	service_pids+=("$started")
	start service 2 "$bin/service" -name echo -id h2 -host "$(addr 2)" \
		-registrar "$(registrar_url 2),$(registrar_url 1)" -ttl 20s -interval 5s
	service_pids+=("$started")
	wait_until 30 "h3's registrar listing echo on h1 and h2" both_listed
	local first
	first=$(instances)
	first=${first%%$'\n'*}
	vip=$(awk '{print $3}' <<<"$first")
	vip_port=$(sed -n 's/.*[ ,]http=\([0-9]*\)\/.*/\1/p' <<<"$first")
	[[ -n $vip && -n $vip_port ]] || die "no VIP and http port in: $first"
}

# client_passes runs the example client on h3 and keeps its output.
client_passes() {
	client_out=$(ip netns exec "$(ns 3)" timeout 60 "$bin/client" -registrar "$(registrar_url 2)" 2>&1)
}

# run_checks runs, on h3, the commands it prints that need no extra tool
# (the example client), and dig and curl when installed; fails if one does.
run_checks() {
	local failed=0 out
	wait_until 30 "the example client passing on $(ns 3)" client_passes || true
	echo "$client_out"
	if ! [[ $client_out == *"all checks passed"* ]]; then failed=1; fi
	if command -v dig >/dev/null; then
		out=$(ip netns exec "$(ns 3)" dig +short @127.0.0.1 -p 5353 _http._tcp.echo.netsel SRV) || true
		echo "dig SRV: ${out//$'\n'/; }"
		if [[ $(grep -c . <<<"$out") != 2 ]]; then echo "FAIL: want 2 SRV records" >&2 && failed=1; fi
	fi
	if command -v curl >/dev/null; then
		for args in "http://$vip:$vip_port/" "-H Host:echo.netsel http://$http_addr/"; do
			# shellcheck disable=SC2086 # args are words on purpose
			out=$(ip netns exec "$(ns 3)" curl -sS --max-time 5 $args) || true
			echo "curl $args: $out"
			if [[ $out != "echo from "* ]]; then echo "FAIL: want an echo" >&2 && failed=1; fi
		done
	fi
	return "$failed"
}

print_howto() {
	local svc1=${service_pids[0]}
	cat <<EOF

NetSel runs on $(ns 1), $(ns 2) and $(ns 3); echo on h1 and h2. In another
terminal, as root, from h3:

  # the service, its VIP and instances, from the registrar's API
  ip netns exec $(ns 3) $bin/netsel instances echo -registrar $(registrar_url 3)
  # DNS: the VIP, and the instances (SRV)
  ip netns exec $(ns 3) dig @127.0.0.1 -p 5353 echo.netsel
  ip netns exec $(ns 3) dig @127.0.0.1 -p 5353 _http._tcp.echo.netsel SRV
  # HTTP through the VIP proxy, and through the HTTP proxy
  ip netns exec $(ns 3) curl -s http://$vip:$vip_port/
  ip netns exec $(ns 3) curl -s -H 'Host: echo.netsel' http://$http_addr/
  # every path at once: the example client
  ip netns exec $(ns 3) $bin/client -registrar $(registrar_url 2)
  # lose the instance on h1: the answers come from h2 alone
  kill $svc1

Logs: $tmp/logs. Stop with Ctrl-C.
EOF
}

check_prerequisites
trap cleanup EXIT
trap 'echo "cluster.sh: line $LINENO: $BASH_COMMAND: failed" >&2' ERR
stopped=false # by a signal, not by a failure
trap 'stopped=true; exit 130' INT
trap 'stopped=true; exit 143' TERM
trap 'stopped=true; exit 129' HUP
tmp=$(mktemp -d -t netsel-cluster.XXXXXX)
mkdir "$tmp/logs"
echo "temp dir (data, logs): $tmp"

if [[ -n ${NETSEL_BIN_DIR:-} ]]; then
	bin=$(cd "$NETSEL_BIN_DIR" && pwd)
else
	bin=$tmp/bin
	echo "building netsel, service and client into $bin"
	(cd "$root" && go build -o "$bin/" ./build/netsel ./examples/service ./examples/client)
fi

step hosts "creating hosts $(ns 1) $(ns 2) $(ns 3) on a bridge in $switch_ns" make_hosts
step etcd "starting etcd, one member on each host" start_etcd
step agent "starting netsel agent on each host" start_agents
step service "starting the echo service on h1 and h2" start_services
if $check; then
	run_checks || die "cluster check failed"
	echo "cluster check passed"
	exit 0
fi
print_howto
# Wait for Ctrl-C; say when a process exits (e.g. after kill $svc1).
declare -A reported=()
while wait -n; [[ $? -ne 127 ]]; do
	for pid in "${!what[@]}"; do
		if [[ -z ${reported[$pid]:-} ]] && ! alive "$pid"; then
			echo "${what[$pid]} (pid $pid) exited; its log: ${logs[$pid]}"
			reported[$pid]=1
		fi
	done
done
die "every process has exited"
