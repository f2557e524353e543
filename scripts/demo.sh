#!/usr/bin/env bash
# The demo: host A -- appliance (DPDK, af_packet on veths) -- host B, each in
# its own network namespace. Shows ping, a short iperf3 and the counters,
# then removes everything (also on Ctrl-C or failure).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo needs root (network namespaces, AF_PACKET)" >&2; exit 1; }

BIN=target/debug
[ -x target/release/appliance ] && [ target/release/appliance -nt target/debug/appliance ] && BIN=target/release
id=$$
A=demo-a-$id; B=demo-b-$id; APP=demo-app-$id
SOCK=/run/appliance/demo.sock
LOG=$(mktemp /tmp/appliance-demo.XXXXXX.log)
PID=

cleanup() {
  [ -n "$PID" ] && kill -INT "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  for ns in $A $B $APP; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "topology: $A (10.10.1.10) -- [$APP: appliance] -- $B (10.10.2.2)"
for ns in $A $B $APP; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n $A link add eth0 type veth peer name apl-lan netns $APP
ip -n $B link add eth0 type veth peer name apl-wan netns $APP
for pair in "$A eth0" "$B eth0" "$APP apl-lan" "$APP apl-wan"; do
  set -- $pair
  ip -n "$1" link set "$2" up
  # Kernel-side checksum offload would leave partial checksums in frames
  # the appliance forwards (see docs/datapath.md).
  ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n $A addr add 10.10.1.10/24 dev eth0; ip -n $A route add default via 10.10.1.1
ip -n $B addr add 10.10.2.2/24 dev eth0;  ip -n $B route add default via 10.10.2.1

step "start the appliance (hw-profiles/vm-af-packet.toml, configs/demo.toml)"
ip netns exec $APP $BIN/appliance --profile hw-profiles/vm-af-packet.toml --config configs/demo.toml >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S $SOCK ] && break; kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }; sleep 0.2; done
grep -E "port |workers running" "$LOG" | sed 's/^\[[^]]*\] //'
CTL="$BIN/appliancectl --socket $SOCK"

step "host A pings the appliance, then host B through it"
ip netns exec $A ping -c 3 -i 0.2 10.10.1.1
ip netns exec $A ping -c 3 -i 0.2 10.10.2.2

step "iperf3 TCP, host A -> host B, 5 s"
ip netns exec $B iperf3 -s -1 -D -B 10.10.2.2 -p 5201
sleep 0.5
ip netns exec $A iperf3 -c 10.10.2.2 -p 5201 -t 5 | tail -4

step "appliancectl show ports"; $CTL show ports
step "appliancectl show workers"; $CTL show workers
step "appliancectl show neighbors"; $CTL show neighbors
step "appliancectl show routes"; $CTL show routes
step "appliancectl show stats"; $CTL show stats

step "stop (SIGINT): workers drain, final counters"
kill -INT $PID; wait $PID || true; PID=
sed -n '/final counters/,$p' "$LOG"
rm -f "$LOG"
