#!/usr/bin/env bash
# What a Linux host's default offloads cost the appliance: TCP from host A to
# host B routed through the appliance (vm-af-packet, one worker, adaptive
# polling) at a fixed rate, once with host A's TSO/GSO and checksum offload on
# (Linux's defaults: the appliance receives super-frames and partial checksums
# and segments/completes them) and once with them off (host A's kernel does
# that work and the appliance receives wire-size frames). Rounds alternate.
# Prints per run: "mode mbit_s wan_tx_pkts appliance_cpu_s us_per_pkt gso_frames".
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECS:-8}
RUNS=${BENCH_RUNS:-3}
RATE=${BENCH_RATE:-800M}
id=$$
A=boa$id; D=bod$id; B=bob$id
W=$(mktemp -d /tmp/appliance-boff.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $A $D $B; do ip netns del $ns 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
for ns in $A $D $B; do ip netns add $ns; ip -n $ns link set lo up; done
ip -n $A link add eth0 type veth peer name apl-lan netns $D
ip -n $B link add eth0 type veth peer name apl-wan netns $D
for p in "$A eth0" "$D apl-lan" "$D apl-wan" "$B eth0"; do
  set -- $p; ip -n $1 link set $2 up
  ip netns exec $1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n $A addr add 10.10.1.10/24 dev eth0; ip -n $A route add default via 10.10.1.1
ip -n $B addr add 10.10.2.2/24 dev eth0; ip -n $B route add default via 10.10.2.1
sed -e "s#/run/appliance/demo.sock#$W/ctl.sock#" -e 's#127.0.0.1:9469##' configs/demo.toml > "$W/config.toml"
CTL="target/release/appliancectl --json --socket $W/ctl.sock"

# Field $2 of port $1 from show ports (dotted path under the port).
port_field() {
  $CTL show ports | python3 -c "
import json, sys
p = [p for p in json.load(sys.stdin)['data'] if p['name'] == '$1'][0]
for k in '$2'.split('.'): p = p[k]
print(p)"
}
# utime + stime of a process, in seconds.
cpu_s() { python3 -c "
f = open('/proc/$1/stat').read().rsplit(')', 1)[1].split()
import os; print((int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK'))"; }

run() { # on|off
  ip netns exec $A ethtool -K eth0 tx "$1" tso "$1" gso "$1" >/dev/null
  ip netns exec $D target/release/appliance --profile hw-profiles/vm-af-packet.toml \
    --config "$W/config.toml" >"$W/app.log" 2>&1 &
  local app=$!; PIDS+=($app)
  for _ in $(seq 100); do [ -S "$W/ctl.sock" ] && break; sleep 0.1; done
  ip netns exec $A ping -c 2 -i 0.2 -q 10.10.2.2 >/dev/null
  ip netns exec $B iperf3 -s -1 -B 10.10.2.2 -p 5291 >/dev/null 2>&1 &
  local srv=$!; PIDS+=($srv)
  sleep 0.3
  ip netns exec $A iperf3 -c 10.10.2.2 -p 5291 -b "$RATE" -t $((SECS + 2)) -J >"$W/iperf.json" &
  local cli=$!; PIDS+=($cli)
  sleep 1
  local p0 c0 g0 p1 c1 g1
  p0=$(port_field wan stats.opackets); c0=$(cpu_s $app); g0=$(port_field lan offload.gso_frames)
  sleep "$SECS"
  p1=$(port_field wan stats.opackets); c1=$(cpu_s $app); g1=$(port_field lan offload.gso_frames)
  wait $cli $srv 2>/dev/null || true
  kill -INT $app; wait $app 2>/dev/null || true
  local mbit
  mbit=$(python3 -c "import json; print(round(json.load(open('$W/iperf.json'))['end']['sum_received']['bits_per_second'] / 1e6, 1))")
  python3 -c "
p = $p1 - $p0; c = $c1 - $c0
print('$1', $mbit, p, round(c, 2), round(c / p * 1e6, 2) if p else 'nan', $g1 - $g0)"
}

for _ in $(seq "$RUNS"); do
  run on
  run off
done
