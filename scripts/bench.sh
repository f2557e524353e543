#!/usr/bin/env bash
# Routed forwarding pps on one worker against dpdk-testpmd on the same vdevs,
# in the same run, written to docs/benchmarks.md. A report, not a test.
# BENCH_ONLY=routing: the IPv4 and IPv6 routed runs and testpmd alone, on stdout.
#
# Source: net_pcap with infinite_rx=1 replays 1024 distinct 64 B UDP/IPv4
# frames from memory (a packet source that costs both programs the same);
# sink: net_null with no-rx=1. The appliance routes each frame (checks,
# LPM, neighbour, MAC rewrite, TTL - 1 with checksum update); testpmd's
# 5tswap swaps L2-L4 addresses of the same frames.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench needs root (hugepages)" >&2; exit 1; }
SECS=${BENCH_SECS:-8}
RUNS=${BENCH_RUNS:-3}
W=$(mktemp -d /tmp/appliance-bench.XXXXXX)
old_huge=$(cat /proc/sys/vm/nr_hugepages)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "$old_huge" > /proc/sys/vm/nr_hugepages
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
echo 768 > /proc/sys/vm/nr_hugepages

python3 scripts/bench_pcap.py "$W/in.pcap"
python3 scripts/bench_pcap.py "$W/in6.pcap" 0 ipv6

sed -e "s#@W@#$W#g" scripts/bench-profile.toml.in > "$W/profile.toml"
sed -e "s#@W@/in.pcap#$W/in6.pcap#" -e "s#@W@#$W#g" scripts/bench-profile.toml.in > "$W/profile6.toml"
sed -e "s#@W@#$W#g" scripts/bench-config.toml.in > "$W/config.toml"

# Packets the appliance sent on port index $1.
tx_port() {
  target/release/appliancectl --json --socket "$W/ctl.sock" show stats |
    python3 -c "import json,sys; print(json.load(sys.stdin)['data']['tx_packets'][$1])"
}

# Starts the appliance with profile $1 and config $2 and waits for its control socket;
# its pid in APP_PID.
start_appliance() {
  target/release/appliance --profile "$1" --config "$2" >"$W/app.log" 2>&1 &
  APP_PID=$!
  PIDS+=("$APP_PID")
  for _ in $(seq 100); do [ -S "$W/ctl.sock" ] && break; sleep 0.1; done
}

# Mpps sent on port index $3 by the appliance with profile $1 and config $2.
appliance_pps() {
  start_appliance "$1" "$2"
  local pid=$APP_PID
  sleep 2
  local a t0 b t1
  a=$(tx_port "$3"); t0=$(date +%s.%N)
  # The worker's CPU (lcore 1) over the same window: cycles per packet beside the rate.
  # Hardware cycle counters are often missing in a VM: its busy time (cpu-clock) at
  # the CPU's clock rate (/proc/cpuinfo) stands in for them.
  perf stat -x, -e cpu-clock -C 1 -o "$W/perf.csv" sleep "$SECS" 2>/dev/null || sleep "$SECS"
  b=$(tx_port "$3"); t1=$(date +%s.%N)
  kill -INT "$pid"; wait "$pid" || true
  python3 - "$W/perf.csv" "$((b - a))" "$W/last.cpp" <<'PY' 2>/dev/null || echo 0 > "$W/last.cpp"
import csv, sys
ms = next(float(r[0]) for r in csv.reader(open(sys.argv[1])) if len(r) > 2 and r[2] == 'cpu-clock')
mhz = next(float(l.split(':')[1]) for l in open('/proc/cpuinfo') if l.startswith('cpu MHz'))
open(sys.argv[3], 'w').write('%.0f' % (ms * 1e-3 * mhz * 1e6 / max(int(sys.argv[2]), 1)))
PY
  python3 -c "print(($b - $a) / ($t1 - $t0) / 1e6)"
}

appliance_run() {
  appliance_pps "$W/profile.toml" "$W/config.toml" 1
}

# The same routed path for IPv6 frames (LPM6, neighbour, MAC rewrite, hop limit - 1).
appliance6_run() {
  appliance_pps "$W/profile6.toml" "$W/config.toml" 1
}

# The tunnel: encapsulation (lan -> wan) or decapsulation (wan -> lan), 64 B inner frames.
python3 scripts/bench_tunnel_pcap.py "$W"
pcap_port() { printf '[[ports]]\nname = "%s"\ndriver = "pcap"\nrx_pcap = "%s"\ntx_pcap = "%s"\ndevargs = "infinite_rx=1"\n' "$1" "$2" "$W/$1.out"; }
null_port() { printf '[[ports]]\nname = "%s"\ndriver = "null"\ndevargs = "no-rx=1"\n' "$1"; }
{ sed -n '/^name/,/^cache/p' scripts/bench-tunnel-profile.toml.in; pcap_port lan "$W/encap.pcap"; null_port wan; } > "$W/encap-profile.toml"
{ sed -n '/^name/,/^cache/p' scripts/bench-tunnel-profile.toml.in; null_port lan; pcap_port wan "$W/decap.pcap"; } > "$W/decap-profile.toml"
for sched in wlb flow-hash; do
  sed -e "s#@W@#$W#g" -e "s#@SCHED@#$sched#" -e "s#@SHAPING@#true#" scripts/bench-tunnel-config.toml.in > "$W/tunnel-$sched.toml"
done
sed -e "s#@W@#$W#g" -e "s#@SCHED@#wlb#" -e "s#@SHAPING@#false#" scripts/bench-tunnel-config.toml.in > "$W/tunnel-wlb-unshaped.toml"
tunnel_run() {
  case "$1" in
    encap-*) appliance_pps "$W/encap-profile.toml" "$W/tunnel-${1#encap-}.toml" 1 ;;
    decap) appliance_pps "$W/decap-profile.toml" "$W/tunnel-flow-hash.toml" 0 ;;
  esac
}

# Many peers: the decapsulation rate with N peers against one (packets spread round robin
# over them, in clear: each found by its source address), and what an idle peer costs when
# it is not there (encrypted, default probes and BFD): resident memory beyond the mempool
# (hugepages, not in VmRSS) and the management lcore's CPU; then how long 10,000 peers take
# to load and start.
PEER_COUNTS=${BENCH_PEERS:-"100 1000"}
LOAD_PEERS=10000
ADD_PEERS=1000
for n in 1 $PEER_COUNTS; do
  python3 scripts/bench_peers.py "$W" "$n" clear
  python3 scripts/bench_peers.py "$W" "$n" idle target/release/appliance
  { sed -n '/^name/,/^cache/p' scripts/bench-tunnel-profile.toml.in; null_port lan; pcap_port wan "$W/decap-$n.pcap"; } > "$W/decap-$n-profile.toml"
done
python3 scripts/bench_peers.py "$W" "$LOAD_PEERS" clear
python3 scripts/bench_peers.py "$W" "$ADD_PEERS" clear
{ sed -n '/^name/,/^cache/p' scripts/bench-tunnel-profile.toml.in; null_port lan; null_port wan; } > "$W/idle-profile.toml"
peers_decap_run() {
  appliance_pps "$W/decap-$1-profile.toml" "$W/peers-$1-clear.toml" 0
}
# "RSS-KiB mgmt-CPU-%" of the appliance with $1 unreachable peers, once they count as
# unreachable (3 s without a word: probes once a second per path).
peers_idle_run() {
  start_appliance "$W/idle-profile.toml" "$W/peers-$1-idle.toml"
  local pid=$APP_PID
  sleep 5
  local rss a b
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  # The management lcore is the main thread: its user and system ticks over SECS.
  a=$(awk '{print $14 + $15}' "/proc/$pid/task/$pid/stat")
  sleep "$SECS"
  b=$(awk '{print $14 + $15}' "/proc/$pid/task/$pid/stat")
  kill -INT "$pid"; wait "$pid" || true
  python3 -c "import os; print($rss, round(($b - $a) * 100 / os.sysconf('SC_CLK_TCK') / $SECS, 2))"
}
# "seconds RSS-KiB": from the start of the appliance with $LOAD_PEERS peers (in clear) until
# its control socket answers, and its resident memory then.
peers_load_run() {
  rm -f "$W/ctl.sock"
  local t0 t1 pid rss
  t0=$(date +%s.%N)
  target/release/appliance --profile "$W/idle-profile.toml" --config "$W/peers-$LOAD_PEERS-clear.toml" >"$W/app.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 600); do [ -S "$W/ctl.sock" ] && break; sleep 0.05; done
  target/release/appliancectl --socket "$W/ctl.sock" --json show peers >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  kill -INT "$pid"; wait "$pid" || true
  python3 -c "print(round($t1 - $t0, 2), $rss)"
}
# Seconds `appliancectl peer add` takes to add peers 1 to $1 - 1 to a running hub of peer 0
# alone (in clear), in one request.
peers_add_run() {
  rm -f "$W/ctl.sock"
  start_appliance "$W/idle-profile.toml" "$W/peers-1-clear.toml"
  local pid=$APP_PID t0 t1
  t0=$(date +%s.%N)
  target/release/appliancectl --socket "$W/ctl.sock" peer add "$W/add-$1.toml" >"$W/add.log" 2>&1 || echo "peer add failed: $(cat "$W/add.log")" >&2
  t1=$(date +%s.%N)
  kill -INT "$pid"; wait "$pid" || true
  python3 -c "print(round($t1 - $t0, 2))"
}
# One run of the peers' figures: "N Mpps cycles/packet RSS-KiB mgmt-CPU-%" for N = 1 and each
# of PEER_COUNTS, then "seconds RSS-KiB" of the load and the seconds of the live add
# (scripts/bench_peers_report.py).
peers_runs() {
  local out="" n d
  for n in 1 $PEER_COUNTS; do
    d=$(peers_decap_run "$n")
    out+="$n $d $(cat "$W/last.cpp") $(peers_idle_run "$n") "
  done
  echo "$out$(peers_load_run) $(peers_add_run "$ADD_PEERS")"
}
if [ "${BENCH_ONLY:-}" = peers ]; then
  P=""
  for r in $(seq "$RUNS"); do
    line=$(peers_runs)
    echo "run $r (per N: N, decap Mpps, cycles/packet, RSS KiB and mgmt CPU % with N idle peers; then $LOAD_PEERS peers' load s and RSS KiB, and s to add $((ADD_PEERS - 1)) live): $line"
    P+="$line;"
  done
  python3 scripts/bench_peers_report.py "$P" "$LOAD_PEERS" "$SECS" "$ADD_PEERS"
  exit 0
fi

testpmd_run() {
  timeout -s INT $((SECS + 4)) dpdk-testpmd -l 0-1 --in-memory -m 512 --no-pci \
    --vdev="net_pcap0,rx_pcap=$W/in.pcap,tx_pcap=$W/tp.out.pcap,infinite_rx=1" --vdev=net_null1,no-rx=1 -- \
    --forward-mode=5tswap --port-topology=paired --total-num-mbufs=16384 --stats-period=1 --auto-start \
    >"$W/testpmd.log" 2>&1 </dev/null || true
  python3 scripts/bench_testpmd_pps.py "$W/testpmd.log"
}

A=()
A6=()
AC=()
A6C=()
T=()
PR=""
EW=()
EF=()
EU=()
D=()
for r in $(seq "$RUNS"); do
  A+=("$(appliance_run)")
  AC+=("$(cat "$W/last.cpp")")
  T+=("$(testpmd_run)")
  A6+=("$(appliance6_run)")
  A6C+=("$(cat "$W/last.cpp")")
  if [ "${BENCH_ONLY:-}" = routing ]; then
    echo "run $r: IPv4 ${A[-1]} Mpps (${AC[-1]} cycles/packet), IPv6 ${A6[-1]} Mpps (${A6C[-1]} cycles/packet), testpmd 5tswap ${T[-1]} Mpps"
    continue
  fi
  EW+=("$(tunnel_run encap-wlb)")
  EF+=("$(tunnel_run encap-flow-hash)")
  EU+=("$(tunnel_run encap-wlb-unshaped)")
    D+=("$(tunnel_run decap)")
  PR+="$(peers_runs);"
  echo "run $r: appliance ${A[-1]} Mpps, IPv6 ${A6[-1]} Mpps, testpmd 5tswap ${T[-1]} Mpps, encap wlb ${EW[-1]}, encap flow-hash ${EF[-1]}, encap wlb unshaped ${EU[-1]}, decap ${D[-1]} Mpps"
done
if [ "${BENCH_ONLY:-}" = routing ]; then
  # The routed forwarding tables alone, on stdout (docs/benchmarks.md is left as it is).
  python3 scripts/bench_report.py "${A[*]}" "${T[*]}" "$SECS" "$RUNS" "" "" "" "" "" "${A6[*]}" "${AC[*]}" "${A6C[*]}" | sed -n '/^## Routed/,/^## Forwarding over/p' | sed '$d'
  exit 0
fi
VETH=$(BENCH_SECS=$SECS BENCH_RUNS=$RUNS bash scripts/bench_veth.sh | tr '\n' ';')
echo "af_packet veth runs (appliance testpmd-io): $VETH"
OFFLOADS=$(BENCH_SECS=$SECS BENCH_RUNS=$RUNS bash scripts/bench_offloads.sh | tr '\n' ';')
CRYPTO=$(BENCH_SECS=$SECS BENCH_RUNS=$RUNS bash scripts/bench_crypto.sh | tr '\n' ';')
echo "encrypted tunnel runs (mode size A-Mpps B-Mpps; openssl cipher size bytes/s): $CRYPTO"
echo "offload runs (mode mbit/s packets cpu-s us/packet gso-frames): $OFFLOADS"
mkdir -p docs
python3 scripts/bench_report.py "${A[*]}" "${T[*]}" "$SECS" "$RUNS" "$VETH" "${EW[*]}" "${EF[*]}" "${D[*]}" "${EU[*]}" "${A6[*]}" "${AC[*]}" "${A6C[*]}" > docs/benchmarks.md
python3 scripts/bench_offloads_report.py "$OFFLOADS" "$SECS" >> docs/benchmarks.md
python3 scripts/bench_crypto_report.py "$CRYPTO" "${T[*]}" >> docs/benchmarks.md
python3 scripts/bench_peers_report.py "$PR" "$LOAD_PEERS" "$SECS" "$ADD_PEERS" >> docs/benchmarks.md
# Route scale: config load, table build and lookups for 10k, 100k and 1M routes.
ROUTES=$(cargo bench -q -p appliance --bench routes)
cat >> docs/benchmarks.md <<MDEOF

## Route scale

\`cargo bench -p appliance --bench routes\` (appliance/benches/routes.rs): a config with N
static routes shaped like an Internet table (60 % /24, the rest /23 to /8), loaded as the
appliance loads it (TOML parse and every check), then the longest-prefix-match table built
from it; lookups of random addresses against one probe of a hash map with as many keys, in
the same run. Memory is the growth of the process's resident set.

$ROUTES
MDEOF
cat docs/benchmarks.md
