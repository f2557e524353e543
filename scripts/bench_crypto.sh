#!/usr/bin/env bash
# The encrypted tunnel, one worker per side: two appliances joined by a memif
# link (shared memory, no kernel), site A encapsulating and sealing what a
# net_pcap source replays into its LAN port, site B opening and decapsulating
# it and routing it to a net_null sink. They make their keys with a real
# handshake first. Runs alternate: in clear, AES-256-GCM, ChaCha20-Poly1305,
# at 64 B frames and 1400 B inner packets; beside them the cipher alone on one
# core (`openssl speed -evp`, same sizes). Prints one line per run:
#   <mode> <size> <A wan tx Mpps> <B lan tx Mpps>
# and per cipher and size: `openssl <cipher> <size> <bytes/s>`.
# Called by scripts/bench.sh (root, hugepages set up by it).
set -euo pipefail
SECS=${BENCH_SECS:-8}
RUNS=${BENCH_RUNS:-3}
W=$(mktemp -d /tmp/appliance-bench-crypto.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${BENCH_KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT INT TERM
BIN=target/release
$BIN/appliance genkey "$W/a.key"
$BIN/appliance genkey "$W/b.key"
PUB_A=$($BIN/appliance pubkey "$W/a.key")
PUB_B=$($BIN/appliance pubkey "$W/b.key")
for size in 46 1400; do python3 scripts/bench_pcap.py "$W/in-$size.pcap" "$size"; done

profile() { # site cpus ports...
  printf 'name = "bench-crypto-%s"\npoll_mode = "busy"\n[eal]\nlcores = "0-1"\ncpus = [%s]\nmemory_mb = 512\nhugepages = "on"\n[mempool]\nmbufs = 16383\ncache = 512\n' "$1" "$2"
}
memif() { printf '[[ports]]\nname = "wan"\ndriver = "memif"\ndevargs = "role=%s,socket=%s/memif.sock"\n' "$1" "$W"; }
# Site A: lan = the pcap source (its frames to 10.20.x.y), wan = memif server.
# Site B: wan = memif client, lan = the null sink behind a static next hop.
site_a_profile() {
  profile a "0, 1"
  printf '[[ports]]\nname = "lan"\ndriver = "pcap"\nrx_pcap = "%s"\ntx_pcap = "%s/a-lan.out"\ndevargs = "infinite_rx=1"\n' "$1" "$W"
  memif server
}
site_b_profile() {
  profile b "1, 0"
  memif client
  printf '[[ports]]\nname = "lan"\ndriver = "null"\ndevargs = "no-rx=1"\n'
}
keys() { # mode private peer-public
  if [ "$1" = none ]; then echo 'encryption = "none"'
  else printf 'encryption = "%s"\nprivate_key = "%s"\npeer_public_key = "%s"\n' "$1" "$2" "$3"; fi
}
site_a_config() { # mode
  cat <<CFG
[[interfaces]]
port = "lan"
address = "10.10.1.1/24"
[[interfaces]]
port = "wan"
address = "10.10.2.1/24"
[[neighbors]]
address = "10.10.1.10"
mac = "02:00:00:00:00:10"
[control]
socket = "$W/a.sock"
metrics = ""
[tunnel]
prefixes = ["10.20.0.0/16"]
default_scheduler = "flow-hash"
bfd = { enabled = false }
$(keys "$1" "$W/a.key" "$PUB_B")
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.10.2.2"
rate = "100gbit"
CFG
}
site_b_config() { # mode
  cat <<CFG
[[interfaces]]
port = "wan"
address = "10.10.2.2/24"
[[interfaces]]
port = "lan"
address = "10.30.0.1/24"
[[routes]]
prefix = "10.20.0.0/16"
via = "10.30.0.2"
[[neighbors]]
address = "10.30.0.2"
mac = "02:00:00:00:00:30"
[control]
socket = "$W/b.sock"
metrics = ""
[tunnel]
prefixes = ["10.10.1.0/24"]
default_scheduler = "flow-hash"
bfd = { enabled = false }
$(keys "$1" "$W/b.key" "$PUB_A")
[[tunnel.paths]]
name = "a"
id = 0
interface = "wan"
remote = "10.10.2.1"
rate = "100gbit"
CFG
}
# Packets the appliance behind socket $1 sent on port index $2.
tx_port() {
  $BIN/appliancectl --json --socket "$1" show stats |
    python3 -c "import json,sys; print(json.load(sys.stdin)['data']['tx_packets'][$2])"
}
cipher_of() {
  $BIN/appliancectl --json --socket "$1" show tunnel 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)['data']['encryption']['cipher'] or '')" 2>/dev/null || true
}
pair_run() { # mode size
  site_b_profile > "$W/b-profile.toml"; site_b_config "$1" > "$W/b.toml"
  site_a_profile "$W/in-$2.pcap" > "$W/a-profile.toml"; site_a_config "$1" > "$W/a.toml"
  rm -f "$W/a.sock" "$W/b.sock" "$W/memif.sock"
  $BIN/appliance --profile "$W/a-profile.toml" --config "$W/a.toml" >"$W/a.log" 2>&1 &
  local pa=$!; PIDS+=("$pa")
  sleep 1
  $BIN/appliance --profile "$W/b-profile.toml" --config "$W/b.toml" >"$W/b.log" 2>&1 &
  local pb=$!; PIDS+=("$pb")
  for _ in $(seq 150); do [ -S "$W/a.sock" ] && [ -S "$W/b.sock" ] && break; sleep 0.1; done
  if [ "$1" != none ]; then
    for _ in $(seq 100); do [ -n "$(cipher_of "$W/a.sock")" ] && [ -n "$(cipher_of "$W/b.sock")" ] && break; sleep 0.1; done
  fi
  sleep 2
  local a0 b0 t0 a1 b1 t1
  a0=$(tx_port "$W/a.sock" 1); b0=$(tx_port "$W/b.sock" 1); t0=$(date +%s.%N)
  sleep "$SECS"
  a1=$(tx_port "$W/a.sock" 1); b1=$(tx_port "$W/b.sock" 1); t1=$(date +%s.%N)
  local c; c=$(cipher_of "$W/b.sock")
  kill -INT "$pa" "$pb"
  local ra=0 rb=0
  wait "$pa" || ra=$?
  wait "$pb" || rb=$?
  if [ "$ra" != 0 ] || [ "$rb" != 0 ]; then
    echo "bench_crypto: $1 $2: site A exited $ra, site B $rb" >&2
    tail -n 15 "$W/a.log" >&2
  fi
  if [ "$1" != none ] && [ "$c" != "$1" ]; then
    echo "bench_crypto: $1 run had cipher '$c'" >&2; tail -n 5 "$W/a.log" "$W/b.log" >&2
  fi
  python3 -c "print('$1 $2 %.3f %.3f' % (($a1 - $a0) / ($t1 - $t0) / 1e6, ($b1 - $b0) / ($t1 - $t0) / 1e6))"
}
openssl_run() { # cipher size: bytes/s of one core
  openssl speed -evp "$1" -bytes "$2" -seconds 3 2>/dev/null |
    awk -v c="$1" 'tolower($1) == c { v = $NF; sub(/k$/, "", v); printf "%.0f\n", v * 1000 }'
}
for r in $(seq "$RUNS"); do
  for size in 46 1400; do
    for mode in none aes-256-gcm chacha20-poly1305; do
      pair_run "$mode" "$size"
    done
    for c in aes-256-gcm chacha20-poly1305; do
      echo "openssl $c $size $(openssl_run "$c" "$size")"
    done
  done
done
