#!/usr/bin/env bash
# The demo, in two acts, each in its own network namespaces, everything
# removed at the end (also on Ctrl-C or failure):
#   1. host A -- appliance -- host B: ping (IPv4, and IPv6 with host A configured by
#      the appliance's router advertisements), a short iperf3, the counters;
#   2. two sites: host A -- appliance A == two emulated WAN links of unequal
#      rate and delay == appliance B -- host B: one iperf3 TCP stream through
#      the multipath tunnel (wlb), and `show paths` with both links carrying it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo needs root (network namespaces, AF_PACKET)" >&2; exit 1; }

BIN=target/debug
[ -x target/release/appliance ] && [ target/release/appliance -nt target/debug/appliance ] && BIN=target/release
id=$$
A=demo-a-$id; B=demo-b-$id; APP=demo-app-$id
SA=demo-sa-$id; SB=demo-sb-$id; HA=demo-ha-$id; HB=demo-hb-$id; EMU=demo-emu-$id
SOCK=/run/appliance/demo.sock
DIR=$(mktemp -d /tmp/appliance-demo.XXXXXX)
LOG=$DIR/act1.log
PID=; PIDS=()

cleanup() {
  [ -n "$PID" ] && kill -INT "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  for ns in $A $B $APP $SA $SB $HA $HB $EMU; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The message of each appliance log line (ts=... level=... target=... msg="...").
msg() { sed -E 's/^.* msg="(.*)"( suppressed=[0-9]+)?$/\1/; s/\\"/"/g'; }

step "topology: $A (10.10.1.10) -- [$APP: appliance] -- $B (10.10.2.2)"
for ns in $A $B $APP; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n $A link add eth0 type veth peer name apl-lan netns $APP
ip -n $B link add eth0 type veth peer name apl-wan netns $APP
for pair in "$A eth0" "$B eth0" "$APP apl-lan" "$APP apl-wan"; do
  set -- $pair
  # Hosts keep Linux's default offloads: the appliance completes partial
  # checksums and cuts TSO super-frames itself (docs/datapath.md).
  ip -n "$1" link set "$2" up
done
# The appliance's namespace stands for NICs the kernel no longer drives: its
# kernel must not answer IPv6 for the addresses the appliance derives.
ip netns exec $APP sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $A addr add 10.10.1.10/24 dev eth0; ip -n $A route add default via 10.10.1.1
ip -n $B addr add 10.10.2.2/24 dev eth0;  ip -n $B route add default via 10.10.2.1
# Host A's IPv6 comes from the appliance's router advertisements; host B's is set by hand.
ip -n $B -6 addr add fd00:10:2::2/64 dev eth0; ip -n $B -6 route add default via fd00:10:2::1

step "start the appliance (hw-profiles/vm-af-packet.toml, configs/demo.toml)"
ip netns exec $APP $BIN/appliance --profile hw-profiles/vm-af-packet.toml --config configs/demo.toml >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S $SOCK ] && break; kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }; sleep 0.2; done
grep -E "port |workers running" "$LOG" | msg
CTL="$BIN/appliancectl --socket $SOCK"

step "host A pings the appliance, then host B through it"
ip netns exec $A ping -c 3 -i 0.2 10.10.1.1
ip netns exec $A ping -c 3 -i 0.2 10.10.2.2

step "IPv6: host A's address and default route come from the appliance's router advertisement"
for _ in $(seq 50); do
  ip -n $A -6 addr show dev eth0 scope global -tentative | grep -q fd00:10:1: && \
    ip -n $A -6 route show default | grep -q fe80:: && break
  sleep 0.2
done
ip -n $A -6 addr show dev eth0 scope global; ip -n $A -6 route show default
ip netns exec $A ping -6 -c 3 -i 0.2 fd00:10:2::2

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

# ---------------------------------------------------------------- act 2: the tunnel
step "act 2: $HA (10.1.0.2) -- [$SA] == link a 30 Mbit/s 10 ms, link b 8 Mbit/s 30 ms == [$SB] -- $HB (10.2.0.2)"
for ns in $SA $SB $HA $HB $EMU; do
  ip netns add "$ns"; ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
pair() { # ns1 dev1 ns2 dev2: a veth pair, both ends up, Linux's default offloads
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up; ip -n "$3" link set "$4" up
}
pair $HA eth0 $SA lan; pair $HB eth0 $SB lan
for i in 0 1; do pair $SA wan$i $EMU ea$i; pair $EMU eb$i $SB wan$i; done
ip -n $HA addr add 10.1.0.2/24 dev eth0; ip -n $HA route add default via 10.1.0.1
ip -n $HB addr add 10.2.0.2/24 dev eth0; ip -n $HB route add default via 10.2.0.1
cat > "$DIR/wanem.toml" <<'EOF'
[[link]]
name = "a"
a_iface = "ea0"
b_iface = "eb0"
both = { rate = "30mbit", delay = "10ms", queue = "100ms" }
[[link]]
name = "b"
a_iface = "ea1"
b_iface = "eb1"
both = { rate = "8mbit", delay = "30ms", queue = "100ms" }
EOF
ip netns exec $EMU chrt --rr 1 $BIN/wan-emulator --config "$DIR/wanem.toml" >"$DIR/wanem.log" 2>&1 &
PIDS+=($!)
step "each site's key pair (appliance genkey / pubkey, as wg genkey | wg pubkey)"
for site in a b; do
  $BIN/appliance genkey "$DIR/site-$site.key"
  echo "site $site public key: $($BIN/appliance pubkey "$DIR/site-$site.key")"
done
for site in a b; do
  if [ $site = a ]; then here=1; other=2; cpus="0, 1"; else here=2; other=1; cpus="1, 0"; fi
  # The VM profile, its lcores spread so the two sites' workers use different CPUs.
  sed -e '/^\[\[ports\]\]/,$d' -e "s/^lcores = \"0-1\"/cpus = [$cpus]\nlcores = \"0-1\"/" \
    hw-profiles/vm-af-packet.toml > "$DIR/profile-$site.toml"
  for port in lan wan0 wan1; do
    printf '[[ports]]\nname = "%s"\ndriver = "af_packet"\niface = "%s"\nframecnt = 4096\n\n' $port $port \
      >> "$DIR/profile-$site.toml"
  done
  peer=b; [ $site = b ] && peer=a
  sed -e "s/@HERE@/$here/g" -e "s/@OTHER@/$other/g" -e "s#@SOCK@#$DIR/site-$site.sock#" \
    -e "s#@KEY@#$DIR/site-$site.key#" -e "s#@PEERKEY@#$($BIN/appliance pubkey "$DIR/site-$peer.key")#" \
    configs/site.toml.in > "$DIR/site-$site.toml"
done
for site in a b; do
  ns=$SA; [ $site = b ] && ns=$SB
  ip netns exec $ns $BIN/appliance --profile "$DIR/profile-$site.toml" --config "$DIR/site-$site.toml" \
    >"$DIR/site-$site.log" 2>&1 &
  PIDS+=($!)
done
CTLA="$BIN/appliancectl --socket $DIR/site-a.sock"
CTLB="$BIN/appliancectl --socket $DIR/site-b.sock"
for _ in $(seq 150); do [ -S "$DIR/site-a.sock" ] && [ -S "$DIR/site-b.sock" ] && break; sleep 0.2; done
for _ in $(seq 50); do
  [ "$($CTLA --json show paths 2>/dev/null | grep -o '"state":"up"' | wc -l)" = 2 ] && break; sleep 0.2
done
grep -h "tunnel path\|tunnel handshake\|tunnel encrypted" "$DIR"/site-*.log | msg || true

step "host A pings host B through the tunnel (two routed hops: ttl=62)"
ip netns exec $HA ping -c 3 -i 0.2 10.2.0.2

step "iperf3 TCP, one stream, host A -> host B, 8 s (links: 30 + 8 Mbit/s)"
ip netns exec $HB iperf3 -s -1 -D -B 10.2.0.2 -p 5201
sleep 0.5
ip netns exec $HA iperf3 -c 10.2.0.2 -p 5201 -t 8 -C cubic > "$DIR/iperf.txt" &
IPERF=$!
sleep 5
step "appliancectl show paths (site A, while the stream runs: both links carry it)"
$CTLA show paths
wait $IPERF || true
tail -4 "$DIR/iperf.txt"
step "appliancectl show classes (site A)"; $CTLA show classes
step "appliancectl show tunnel (site B: what its reorder buffer did)"; $CTLB show tunnel

