"""The section of docs/benchmarks.md on what a Linux host's default offloads cost the
appliance, from the rows of scripts/bench_offloads.sh (joined by ';')."""
import statistics
import sys

rows = [r.split() for r in sys.argv[1].split(';') if r.strip()]
secs = sys.argv[2]
on = [float(r[4]) for r in rows if r[0] == 'on']
off = [float(r[4]) for r in rows if r[0] == 'off']
print(f"""
## af_packet with the hosts' defaults: super-frames in against segments in

`scripts/bench_offloads.sh`: TCP from host A to host B routed through the appliance
(`vm-af-packet`, one worker, adaptive polling) at a fixed 800 Mbit/s, {secs} s per run,
rounds alternating: host A at Linux's defaults (checksum offload, TSO, GSO on: the appliance
receives GSO super-frames and partial checksums, and segments and completes them itself,
docs/datapath.md) and host A with them off (its kernel does that work; the appliance
receives wire-size frames with complete checksums). CPU is the appliance process's
user + system time, per packet it sent on `wan` (this VM has no cycle counters:
`perf stat` reports cycles as not supported).

| run | host offloads | Mbit/s | packets out | appliance CPU (s) | µs per packet | super-frames in |
|---|---|---|---|---|---|---|""")
for i, r in enumerate(rows, 1):
    print(f"| {(i + 1) // 2} | {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |")
if on and off:
    print(f"""
Median CPU per packet: **{statistics.median(on):.2f} µs** with the hosts' offloads on,
**{statistics.median(off):.2f} µs** with them off: ratio
**{statistics.median(on) / statistics.median(off):.2f}** (on ÷ off). With offloads on, a
super-frame of about 45 segments costs the kernel one delivery to the appliance's socket
instead of 45, and costs the appliance one `recv` and a checksum pass over every segment's
bytes on top of the copy it always makes; the two roughly cancel.""")
