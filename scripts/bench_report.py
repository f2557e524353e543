"""Formats docs/benchmarks.md from the measured runs."""
import datetime
import os
import statistics
import sys

a = [float(x) for x in sys.argv[1].split()]
t = [float(x) for x in sys.argv[2].split()]
secs, runs = sys.argv[3], sys.argv[4]
ratios = [x / y for x, y in zip(a, t) if y > 0]
med = statistics.median
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
print(f"""# Benchmarks

Made by `make bench` on {datetime.date.today()}, {os.cpu_count()} vCPU ({cpu}).
This machine is shared and noisy: read the ratio, which is measured in the
same run on the same vdevs, not the absolute figures.

## Routed forwarding, one worker, hugepages

Source `net_pcap` (`infinite_rx=1`, 1024 distinct 64 B UDP frames replayed
from memory), sink `net_null` (`no-rx=1`), one forwarding lcore, `--in-memory`
hugepages. The appliance does the full IPv4 router path per packet (Ethernet,
IPv4 header and checksum checks, UDP length check, LPM, neighbour lookup, MAC
rewrite, TTL - 1 with incremental checksum). testpmd `5tswap` swaps L2-L4
addresses of the same frames. Goal: appliance ≥ 1/3 of testpmd per worker.

| run | appliance (Mpps) | testpmd 5tswap (Mpps) | ratio |
|---|---|---|---|""")
for i, (x, y) in enumerate(zip(a, t), 1):
    print(f"| {i} | {x:.2f} | {y:.2f} | {x / y if y else 0:.2f} |")
print(f"| **median** | **{med(a):.2f}** | **{med(t):.2f}** | **{med(ratios) if ratios else 0:.2f}** |")
print(f"""
{runs} alternating runs of {secs} s each.
""")
a6 = [float(x) for x in (sys.argv[10] if len(sys.argv) > 10 else '').split()]
if a6:
    print("""## IPv6 routed forwarding, one worker, hugepages

The same source and sink, 1024 distinct UDP/IPv6 frames (66 B, the smallest), alternating
with the IPv4 runs above. The appliance does the full IPv6 router path per packet (port's
IPv6 on, fixed header, the extension-header walk, martian and scope checks, the LPM over
/0-/128, neighbour lookup, MAC rewrite, hop limit - 1). Goal: ≥ 0.9× the IPv4 figure of the
same run.

Cycles per packet: the worker's CPU time over the measurement window (`perf stat -e cpu-clock
-C 1`; this VM has no hardware cycle counter) at the CPU's clock rate, divided by the packets
it sent; it busy-polls, so this is its whole cost per packet.

| run | IPv4 (Mpps) | cycles/packet | IPv6 (Mpps) | cycles/packet | IPv6 ÷ IPv4 | IPv6 ÷ testpmd |
|---|---|---|---|---|---|---|""")
    ac = [float(x) for x in (sys.argv[11] if len(sys.argv) > 11 else '').split()] or [0] * len(a6)
    a6c = [float(x) for x in (sys.argv[12] if len(sys.argv) > 12 else '').split()] or [0] * len(a6)
    for i, (x6, x4, y, c4, c6) in enumerate(zip(a6, a, t, ac, a6c), 1):
        print(f"| {i} | {x4:.2f} | {c4:.0f} | {x6:.2f} | {c6:.0f} | {x6 / x4 if x4 else 0:.2f} | {x6 / y if y else 0:.2f} |")
    r4 = [x6 / x4 for x6, x4 in zip(a6, a) if x4 > 0]
    rt = [x6 / y for x6, y in zip(a6, t) if y > 0]
    print(f"| **median** | **{med(a):.2f}** | **{med(ac):.0f}** | **{med(a6):.2f}** | **{med(a6c):.0f}** | **{med(r4 or [0]):.2f}** | **{med(rt or [0]):.2f}** |")
print(f"""
## Forwarding over af_packet veths (the kernel is the ceiling)

Generator `dpdk-testpmd --forward-mode=txonly` (64 B, af_packet, CPU 0) ->
device under test on two af_packet veths (forwarding lcore on CPU 1) ->
kernel sink; received = the sink veth's kernel RX counter, the same for
both (testpmd's af_packet PMD does not count the kernel's drops; the
appliance reads them itself as `rx-missed`). The appliance routes (TTL - 1,
MAC rewrite) on its own af_packet driver (virtio-net headers, docs/datapath.md);
testpmd `io` forwards unchanged on DPDK's PMD. Every veth keeps Linux's default
offloads. Goal: appliance ≥ 90% of testpmd io. Measured limit of this machine: about 0.45-0.5 Mpps per core.

| run | appliance (Mpps) | testpmd io (Mpps) | ratio |
|---|---|---|---|""")
veth = [tuple(float(x) for x in r.split()) for r in (sys.argv[5] if len(sys.argv) > 5 else '').split(';') if r.strip()]
for i, (x, y) in enumerate(veth, 1):
    print(f"| {i} | {x:.3f} | {y:.3f} | {x / y if y else 0:.2f} |")
if veth:
    va, vt = [x for x, _ in veth], [y for _, y in veth]
    vr = [x / y for x, y in veth if y > 0]
    print(f"| **median** | **{med(va):.3f}** | **{med(vt):.3f}** | **{med(vr) if vr else 0:.2f}** |")
enc_w = [float(x) for x in (sys.argv[6] if len(sys.argv) > 6 else '').split()]
enc_f = [float(x) for x in (sys.argv[7] if len(sys.argv) > 7 else '').split()]
dec = [float(x) for x in (sys.argv[8] if len(sys.argv) > 8 else '').split()]
enc_u = [float(x) for x in (sys.argv[9] if len(sys.argv) > 9 else '').split()]
if enc_w and enc_f and dec:
    print(f"""
## The tunnel: encapsulation and decapsulation, one worker, hugepages

The same source and sink. Encapsulation: the 1024 frames are routed into the tunnel
(one path; `wlb`, per packet in bytes, or `flow-hash`, per flow), classified,
scheduled, numbered on the worker's lane and sent with their outer Ethernet, IPv4, UDP
and tunnel headers (48 bytes), in clear (`encryption = "none"`: the tunnel's own path; the
encrypted tunnel has its section below). Decapsulation: 1024 tunnel packets from the peer (lane 0,
marked unordered as per-flow schedulers send them) are checked (outer headers, path,
inner IPv4), stripped and routed to the LAN. testpmd 5tswap is the same run's reference
(the table above). Goal: each ≥ 1/4 of testpmd per worker.

| run | encap wlb (Mpps) | ÷ testpmd | encap flow-hash (Mpps) | ÷ testpmd | decap (Mpps) | ÷ testpmd |
|---|---|---|---|---|---|---|""")
    for i, (w, f, d, y) in enumerate(zip(enc_w, enc_f, dec, t), 1):
        print(f"| {i} | {w:.2f} | {w / y if y else 0:.2f} | {f:.2f} | {f / y if y else 0:.2f} | {d:.2f} | {d / y if y else 0:.2f} |")
    r = lambda xs: med([x / y for x, y in zip(xs, t) if y > 0] or [0])
    print(f"| **median** | **{med(enc_w):.2f}** | **{r(enc_w):.2f}** | **{med(enc_f):.2f}** | **{r(enc_f):.2f}** | **{med(dec):.2f}** | **{r(dec):.2f}** |")
    print("""
How decapsulation got from 0.15x to 0.27-0.29x (`perf record` on the worker, spot checks of
one 5 s run each, 2026-11-30): decapsulating once before the reorder buffer, packing our
own addresses for the per-packet checks and moving mbuf length changes out of FFI calls
took it to 0.20x (6.8 Mpps). A fast pass then takes a clean packet from a path's peer
straight to the tunnel stage, so the general pipeline runs only on the inner packet
(7.5 to 7.8 Mpps); the parsed tunnel header is no longer returned through memory from a
call (store-forwarding stalls; 8.05); small IPv4 accessors are always inlined (8.4); and
the checksum fold lost its loop, whose branch was mispredicted on every header checked
(9.8). The same stall, in the outer header's checksum, had cost encapsulation 40 % of
`write_outer`. What is left is spread thin: the inner pipeline pass (LPM, neighbour
lookup, checks) about a third, the reorder stage's delay sample 6 %. With fat LTO the
inliner's choices move these figures: inlining the drain of the management lcore's frames
(af_packet ports only) into the worker loop cost encapsulation 20 % and decapsulation 8 % on
these ports, which have no such frames; it is now called out of line.""")
if enc_w and enc_u:
    print("""
### The shaper's cost

Encapsulation with `wlb` through the path's shaper (on by default) and without it
(`shaping = { enabled = false }`), alternating in the same runs. At 95 % of a 100 Gbit/s path
the shaper never holds a packet back, so every packet takes its idle path's way: its time
reserved on the shared rate clock (one atomic update) and sent at once, plus the backlog
published once per loop. A packet that finds a backlog goes through its tier's flow queue
and CoDel instead: when every packet did (before the idle way existed, same machine,
2026-12-07), encapsulation ran at 0.58× of unshaped, 69 ns more per packet; at WAN rates
(a 1 Gbit/s path is 85 000 full-size packets a second) that is under 1 % of a core.

| run | encap wlb shaped (Mpps) | unshaped (Mpps) | shaped ÷ unshaped | ns per packet added |
|---|---|---|---|---|""")
    for i, (w, u) in enumerate(zip(enc_w, enc_u), 1):
        added = (1e3 / w - 1e3 / u) if w and u else 0
        print(f"| {i} | {w:.2f} | {u:.2f} | {w / u if u else 0:.2f} | {added:.0f} |")
    ratios = [w / u for w, u in zip(enc_w, enc_u) if u > 0]
    adds = [1e3 / w - 1e3 / u for w, u in zip(enc_w, enc_u) if w > 0 and u > 0]
    print(f"| **median** | **{med(enc_w):.2f}** | **{med(enc_u):.2f}** | **{med(ratios or [0]):.2f}** | **{med(adds or [0]):.0f}** |")
print(f"""
Reproduce: `make bench`, or `BENCH_SECS={secs} BENCH_RUNS={runs} bash scripts/bench.sh`
after `make build-release` (`scripts/bench_veth.sh` alone for the veth part).
Not measured yet: the same on `net_af_xdp`.""")
