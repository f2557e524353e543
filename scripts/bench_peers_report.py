"""Formats the many-peers section of docs/benchmarks.md from scripts/bench.sh's peer runs:
argv[1] ';'-separated lines, each groups of "N Mpps cycles/packet RSS-KiB CPU-%" (decap rate
and cycles per packet with N peers; resident KiB and management-lcore CPU % with N idle
peers) for N = 1 first, then "seconds RSS-KiB" of the appliance loading argv[2] peers and
the seconds `appliancectl peer add` took to add argv[4] - 1 peers to a running hub of one;
argv[3] seconds per run."""
import statistics
import sys

med = statistics.median
load_n, secs, add_n = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) - 1
runs = []
for line in sys.argv[1].split(';'):
    v = line.split()
    if not v:
        continue
    groups = [v[i:i + 5] for i in range(0, len(v) - 3, 5)]
    runs.append(({int(g[0]): [float(x) for x in g[1:]] for g in groups}, [float(x) for x in v[-3:]]))
counts = sorted(n for n in runs[0][0] if n > 1)
print(f"""
## Many peers: a hub's decapsulation rate, and what an idle peer costs

`BENCH_ONLY=peers BENCH_SECS={secs} bash scripts/bench.sh` (after `make build-release`),
`scripts/bench_peers.py` for the inputs. **Decapsulation**: one worker, hugepages; a
`net_pcap` source replays 1024 tunnel packets in clear, packet i from peer i mod N (each
peer its own outer address, found by one hash lookup; its own lanes, reorder state and
counters), each carrying a 64-byte frame from that peer's site to a LAN host; `net_null`
sink. The same packets from one peer, alternated with it in the same run, are the
reference. With N in the hundreds every packet of a burst comes from another peer: the
worst case for the caches. **Idle peers**: the same appliance with N encrypted peers that
are not there (default probes and BFD): once they count as unreachable (3 s without a
word), its resident memory beyond the mempool (`VmRSS`; the mempool is in hugepages, which
`VmRSS` leaves out) and its management lcore's CPU (the main thread's user and system time
over {secs} s), against one such peer. **Load**: {load_n:,} peers in clear, from the start
of the process until its control socket answers `show peers`. **Live add**: `appliancectl
peer add` of {add_n:,} peers (one request) to a running hub of one peer, in clear. Goals: ≥ 0.9× one peer's
rate at 1,000 peers; ≤ 64 KiB per idle peer; ≤ 20 % of a core at 1,000 peers.
""")
head = "| run | decap, 1 peer (Mpps) | cycles/packet |"
line = "|---|---|---|"
for n in counts:
    head += f" decap, {n:,} peers (Mpps) | cycles/packet | ÷ 1 peer |"
    line += "---|---|---|"
print(head)
print(line)
for i, (by_n, _) in enumerate(runs, 1):
    d1, c1 = by_n[1][0], by_n[1][1]
    row = f"| {i} | {d1:.2f} | {c1:.0f} |"
    for n in counts:
        d, c = by_n[n][0], by_n[n][1]
        row += f" {d:.2f} | {c:.0f} | {d / d1:.2f} |"
    print(row)
print()
head = "| run | RSS, 1 idle peer (MiB) | mgmt CPU (%) |"
line = "|---|---|---|"
for n in counts:
    head += f" RSS, {n:,} idle (MiB) | per idle peer (KiB) | mgmt CPU (%) |"
    line += "---|---|---|"
head += f" load {load_n:,} peers (s) | RSS then (MiB) | add {add_n:,} live (s) |"
line += "---|---|---|"
print(head)
print(line)
for i, (by_n, load) in enumerate(runs, 1):
    r1, u1 = by_n[1][2], by_n[1][3]
    row = f"| {i} | {r1 / 1024:.1f} | {u1:.1f} |"
    for n in counts:
        r, u = by_n[n][2], by_n[n][3]
        row += f" {r / 1024:.1f} | {(r - r1) / (n - 1):.0f} | {u:.1f} |"
    row += f" {load[0]:.2f} | {load[1] / 1024:.1f} | {load[2]:.2f} |"
    print(row)
top = counts[-1]
ratio = med([r[0][top][0] / r[0][1][0] for r in runs])
per_peer = med([(r[0][top][2] - r[0][1][2]) / (top - 1) for r in runs])
cpu = med([r[0][top][3] for r in runs])
met = {True: "met", False: "not met"}
print(f"""
Median at {top:,} peers: decapsulation at **{ratio:.2f}×** one peer's rate (goal 0.9×:
{met[ratio >= 0.9]}); an idle peer costs **{per_peer:.0f} KiB** of resident memory (goal
64 KiB: {met[per_peer <= 64]}); {top:,} unreachable peers cost the management lcore
**{cpu:.1f} %** of a core (goal 20 %: {met[cpu <= 20]}). {load_n:,} peers load and start in
{med([r[1][0] for r in runs]):.2f} s; {add_n:,} peers are added to a running hub in one request
in {med([r[1][2] for r in runs]):.2f} s.

Where the decapsulation time goes (`perf record` on the worker, 1,000 peers, 2026-12-07):
each packet is the only one of its peer in the burst, so the peer's receiver, its table,
its path counters and its lane are each out of cache (a few misses a packet that the
one-peer run never takes). Per-peer work that grew with the number of peers was taken out
first: path health is one word per peer (not a read of every path), a poll visits only
the peers that hold packets, and lane counters are published once a millisecond for all
peers together, which took 1,000 peers from 0.35× to about 0.48×. What remains is the
per-peer state itself. An idle peer holds no reorder lane and no replay window: they are
made when its lanes and paths first carry a packet, from spares the management lcore keeps
ready. The per-peer memory is read at 1,000 peers: at 100 it is below what the reference
holds on its shelves (one peer's lanes get large rings from the whole pool, and the shelf
keeps 8 MiB of them ready; a hundred peers' rings are small), so the difference is
negative there.
""")
