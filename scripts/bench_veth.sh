#!/usr/bin/env bash
# Forwarding over af_packet veths, where the kernel is the ceiling:
# generator (dpdk-testpmd txonly, CPU 0) -> DUT (forwarding on CPU 1) -> kernel sink.
# DUT = the appliance routing, or dpdk-testpmd io forwarding, on the same
# veths in the same run. Received = the sink veth's kernel RX counter
# (the af_packet PMD does not count its own kernel drops).
# Prints "appliance_mpps testpmd_mpps" per run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECS:-8}
RUNS=${BENCH_RUNS:-3}
id=$$
G=bvg$id; D=bvd$id; S=bvs$id
W=$(mktemp -d /tmp/appliance-bveth.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $G $D $S; do ip netns del $ns 2>/dev/null || true; done
  # testpmd killed with SIGKILL leaves its EAL runtime folder behind.
  rm -rf "$W" /var/run/dpdk/bvgen$id /var/run/dpdk/bvdut$id
}
trap cleanup EXIT INT TERM
for ns in $G $D $S; do ip netns add $ns; ip -n $ns link set lo up; done
ip -n $G link add g0 type veth peer name apl-lan netns $D
ip -n $S link add s0 type veth peer name apl-wan netns $D
for p in "$G g0" "$D apl-lan" "$D apl-wan" "$S s0"; do
  set -- $p; ip -n $1 link set $2 up
  ip netns exec $1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n $S addr add 10.10.2.2/24 dev s0
# The sink must not answer every datagram with an ICMP error.
ip netns exec $S sysctl -qw net.ipv4.icmp_ratelimit=1000000 net.ipv4.icmp_msgs_per_sec=1
DUT_MAC=$(ip netns exec $D cat /sys/class/net/apl-lan/address)
S_MAC=$(ip netns exec $S cat /sys/class/net/s0/address)

sed -e "s#/run/appliance/demo.sock#$W/ctl.sock#" -e 's#127.0.0.1:9469##' configs/demo.toml > "$W/config.toml"
printf '[[neighbors]]\naddress = "10.10.2.2"\nmac = "%s"\n' "$S_MAC" >> "$W/config.toml"
# Worker on CPU 1 (busy, like testpmd's forwarding lcore); the management
# lcore shares CPU 0 with the generator and mostly sleeps.
sed -e 's/poll_mode = "adaptive"/poll_mode = "busy"/' hw-profiles/vm-af-packet.toml > "$W/profile.toml"

sink_rx() { ip netns exec $S cat /sys/class/net/s0/statistics/rx_packets; }

generator() {
  ip netns exec $G dpdk-testpmd --lcores 0@0,1@0 --no-huge -m 512 --no-pci --file-prefix bvgen$id \
    --vdev=net_af_packet0,iface=g0,framecnt=16384 -- --total-num-mbufs=16384 --forward-mode=txonly \
    --txpkts=64 --tx-ip=10.10.1.10,10.20.0.1 --eth-peer=0,$DUT_MAC --auto-start --stats-period=60 \
    </dev/null >"$W/gen.log" 2>&1 &
  PIDS+=($!)
  echo $!
}

measure() {
  sleep 2
  local a b t0 t1
  a=$(sink_rx); t0=$(date +%s.%N); sleep "$SECS"; b=$(sink_rx); t1=$(date +%s.%N)
  python3 -c "print(($b - $a) / ($t1 - $t0) / 1e6)"
}

appliance_run() {
  ip netns exec $D target/release/appliance --profile "$W/profile.toml" --config "$W/config.toml" >"$W/app.log" 2>&1 &
  local dut=$!; PIDS+=($dut)
  for _ in $(seq 100); do [ -S "$W/ctl.sock" ] && break; sleep 0.1; done
  local gen; gen=$(generator)
  measure
  kill -KILL $gen; kill -INT $dut; wait $gen $dut 2>/dev/null || true
}

testpmd_run() {
  ip netns exec $D dpdk-testpmd -l 0-1 --no-huge -m 512 --no-pci --file-prefix bvdut$id \
    --vdev=net_af_packet0,iface=apl-lan,framecnt=16384 --vdev=net_af_packet1,iface=apl-wan,framecnt=16384 -- \
    --total-num-mbufs=16384 --forward-mode=io --auto-start --stats-period=60 </dev/null >"$W/dut.log" 2>&1 &
  local dut=$!; PIDS+=($dut)
  sleep 2
  local gen; gen=$(generator)
  measure
  kill -KILL $gen $dut; wait $gen $dut 2>/dev/null || true
}

for r in $(seq "$RUNS"); do
  a=$(appliance_run); t=$(testpmd_run)
  echo "$a $t"
done
