"""Formats the encrypted tunnel's section of docs/benchmarks.md from the lines of
scripts/bench_crypto.sh (argv[1], ';'-separated) and the same run's testpmd 5tswap Mpps
(argv[2], space-separated)."""
import statistics
import sys

med = statistics.median
lines = [l.split() for l in sys.argv[1].split(';') if l.strip()]
testpmd = [float(x) for x in sys.argv[2].split()]
pairs = {}   # (mode, size) -> [(a, b)]
ossl = {}    # (cipher, size) -> [bytes/s]
for l in lines:
    if l[0] == 'openssl' and len(l) == 4 and l[3]:
        ossl.setdefault((l[1], int(l[2])), []).append(float(l[3]))
    elif len(l) == 4:
        pairs.setdefault((l[0], int(l[1])), []).append((float(l[2]), float(l[3])))
modes = ['none', 'aes-256-gcm', 'chacha20-poly1305']
print("""
## The encrypted tunnel: sealing and opening, one worker per side

Two appliances joined by a `net_memif` link (shared memory: no kernel, no copy through a
socket), one worker each on its own CPU, after a real handshake. Site A's LAN port is a
`net_pcap` source replaying 1024 distinct UDP frames to the peer site; A routes,
classifies, schedules (`flow-hash`), encapsulates and seals each into the tunnel. Site B
opens each (replay window, tag), decapsulates and routes it to a `net_null` sink. What B
sends to its sink is what crossed whole: both workers did their part for each packet, so
the pair's rate is a lower bound of both sealing and opening per worker. Runs alternate in
clear (`encryption = "none"`), with AES-256-GCM and with ChaCha20-Poly1305; beside them the
cipher alone on one core, `openssl speed -evp <cipher> -bytes <size>` (OpenSSL's own
assembly, one call per buffer), at the same sizes: inner IPv4 packets of 46 bytes (a
64-byte frame) and of 1400 bytes. Goals: at 1400 B, each cipher's pair rate in inner bytes
≥ 75 % of the cipher's own bytes/s; at 64 B, ≥ 1/6 of testpmd 5tswap.

How to read it: the pair in clear is the harness's own ceiling (two appliances, a memif
copy each way, on two shared vCPUs), so the encrypted pair can be no faster. "ns per packet
added" is what encryption costs the slower side per packet (the pair's time per packet,
encrypted less clear), and "cipher in the data path" the payload bytes per second that
implies: the figure to hold against the cipher alone.
""")
for size in (46, 1400):
    print(f"### Inner packets of {size} bytes\n")
    print("| mode | A sealed and sent (Mpps) | B opened and delivered (Mpps) | delivered Gbit/s (inner) | ÷ testpmd 5tswap | ns per packet added | cipher in the data path (Gbit/s) | the cipher alone, one core (Gbit/s) | data path ÷ alone |")
    print("|---|---|---|---|---|---|---|---|---|")
    clear = pairs.get(('none', size), [])
    clear_b = med([y for _, y in clear]) if clear else None
    for mode in modes:
        runs = pairs.get((mode, size), [])
        if not runs:
            continue
        a = med([x for x, _ in runs])
        b = med([y for _, y in runs])
        gbit = b * 1e6 * size * 8 / 1e9
        tp = f"{b / med(testpmd):.3f}" if testpmd else "-"
        name = "in clear" if mode == 'none' else mode
        if mode == 'none' or not clear_b or not b:
            print(f"| {name} | {a:.2f} | {b:.2f} | {gbit:.2f} | {tp} | - | - | - | - |")
            continue
        # What sealing (or opening, whichever side is slower) adds per packet, and the
        # cipher's speed that implies: bytes of payload per added second.
        added_ns = 1e3 / b - 1e3 / clear_b
        in_path = size * 8 / added_ns if added_ns > 0 else float('inf')
        c = ossl.get((mode, size))
        cg = med(c) * 8 / 1e9 if c else None
        ratio = f"{in_path / cg:.2f}" if cg else "-"
        print(f"| {name} | {a:.2f} | {b:.2f} | {gbit:.2f} | {tp} | {added_ns:.0f} | {in_path:.1f} | {f'{cg:.2f}' if cg else '-'} | {ratio} |")
    print()
    print("Each run (A Mpps / B Mpps): " + "; ".join(
        f"{m}: " + ", ".join(f"{x:.2f}/{y:.2f}" for x, y in pairs.get((m, size), []))
        for m in modes) + "\n")
print("""What limits it (read from the runs of 2026-12-07 on this machine): AES-256-GCM in the
data path runs at the speed of `openssl speed` at 1400 B (ring and OpenSSL both use the
CPU's AES and carry-less multiply instructions); ring's ChaCha20-Poly1305 is about half of
OpenSSL's, which has an AVX-512 implementation ring lacks, so `auto` keeps AES-256-GCM
wherever the CPU has AES. At 64 B the cost is per call, not per byte: sealing or opening
one small packet costs 170-200 ns, more than the rest of the worker's work per packet, and
the 1/6-of-testpmd goal is not met (it would need a multi-buffer AEAD, which neither ring
nor aws-lc-rs offers; DPDK's `crypto_aesni_mb` does). The clear pair's own rate at 1400 B
varies 4x between runs (the memif copies on two shared vCPUs), which makes "ns per packet
added" at 1400 B uncertain; the encrypted runs themselves vary far less.

Open: in this harness an appliance sometimes exits with SIGSEGV when both are stopped at
the same moment (its memif peer going away while its worker polls the port); the figures
are taken before the stop. Not traced yet; memif is a benchmark-only driver here.
""")
print(f"Medians of {len(pairs.get(('none', 46), []))} alternating runs; testpmd 5tswap from the "
      "routed-forwarding table above (same `make bench`). Reproduce: `bash scripts/bench_crypto.sh` "
      "after `make build-release` (root, hugepages).")
