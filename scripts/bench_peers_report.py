"""Formats the many-peers section of docs/benchmarks.md from scripts/bench.sh's peer runs:
argv[1] ';'-separated lines "D1 C1 DN CN RSS1 CPU1 RSSN CPUN" (decap Mpps and cycles per
packet with 1 and N peers; resident KiB and management-lcore CPU % with 1 and N idle
peers), argv[2] N, argv[3] seconds per run."""
import statistics
import sys

med = statistics.median
runs = [[float(x) for x in l.split()] for l in sys.argv[1].split(';') if l.strip()]
n, secs = int(sys.argv[2]), sys.argv[3]
print(f"""
## Many peers: a hub's decapsulation rate, and what an idle peer costs

`BENCH_ONLY=peers BENCH_SECS={secs} bash scripts/bench.sh` (after `make build-release`),
`scripts/bench_peers.py` for the inputs. **Decapsulation**: one worker, hugepages; a
`net_pcap` source replays 1024 tunnel packets in clear, packet i from peer i mod N (each
peer its own outer address, found by one hash lookup; its own lanes, reorder state and
counters), each carrying a 64-byte frame from that peer's site to a LAN host; `net_null`
sink. The same packets from one peer, alternated with it in the same run, are the
reference. Goal: N = 1,000 at ≥ 0.9× one peer; wire format 2 holds N to 50 (the Key ID),
so N = {n} here. **Idle peers**: the same appliance with N encrypted peers that are not
there (default probes and BFD): once they count as unreachable (3 s without a word), its
resident memory beyond the mempool (`VmRSS`; the mempool is in hugepages, which `VmRSS`
leaves out) and its management lcore's CPU (the main thread's user and system time over
{secs} s), against one such peer. Goals: ≤ 64 KiB per idle peer; ≤ 20 % of a core at 1,000
peers.

| run | decap, 1 peer (Mpps) | cycles/packet | decap, {n} peers (Mpps) | cycles/packet | ÷ 1 peer | RSS, 1 idle peer (MiB) | RSS, {n} idle peers (MiB) | per idle peer (KiB) | mgmt CPU, 1 / {n} idle (%) |
|---|---|---|---|---|---|---|---|---|---|""")
ratios, per_peer = [], []
for i, (d1, c1, dn, cn, r1, u1, rn, un) in enumerate(runs, 1):
    ratios.append(dn / d1)
    per_peer.append((rn - r1) / (n - 1))
    print(f"| {i} | {d1:.2f} | {c1:.0f} | {dn:.2f} | {cn:.0f} | {dn / d1:.2f} | {r1 / 1024:.1f} | "
          f"{rn / 1024:.1f} | {(rn - r1) / (n - 1):.0f} | {u1:.1f} / {un:.1f} |")
met = {True: "met", False: "not met"}
print(f"""
Median: {n} peers decapsulate at **{med(ratios):.2f}×** one peer's rate (goal 0.9×:
{met[med(ratios) >= 0.9]}); an idle peer costs **{med(per_peer):.0f} KiB** of resident memory
(goal 64 KiB: {met[med(per_peer) <= 64]}); {n} unreachable peers cost the management lcore
{med([r[7] for r in runs]):.1f} % of a core.

Where it goes (`perf record` on the worker with {n} peers, 2026-12-07): with each packet of a
burst from another peer, each touches that peer's own lane, reorder and counter state (cache
misses the one-peer run never takes); the per-burst work that grew with the number of peers
(each peer's path state read, each sender drained, each receiver polled) was made lazy
first, which took {n} peers from 0.63× to about 0.77×. The memory is almost all anti-replay
windows: each peer has one per (receive key, lane, path id) from the start, 3 × 65 × 16 ×
1 KiB, allocated whether the peer ever sends on them or not; allocating them for the
(lane, path) pairs a peer uses, from a pool filled off the packet path, is the fix (not
done).
""")
