"""Writes the many-peers benchmark's inputs into the folder argv[1] for N = argv[2] peers:
  peers-N.toml:  a config whose tunnel lists N peers, one path each on wan (peer p at
                 172.16.0.0/16 + 2 + p, its site 10.(100 + p / 256).(p % 256).0/24);
                 argv[3] "clear" (the decap
                 runs: probes every 10 s, no BFD, so the paths stay `starting` and carry)
                 or "idle" (encrypted, the default probes and BFD, peers that are not
                 there: what an unreachable peer costs); keys under keys/ (made by the
                 appliance binary argv[4]);
  add-N.toml:    (clear) peers 1 to N - 1 of peers-N.toml as `appliancectl peer add` takes
                 them: what a hub of peer 0 alone adds live;
  decap-N.pcap:  1024 tunnel packets in clear, packet i from peer i mod N (its address, its
                 path 0, lane 0, UNORDERED), each carrying a 64 B frame's IPv4/UDP packet
                 from that peer's site to the LAN host 10.10.1.10.
Byte layout: docs/wire-format.md; the packets are bench_tunnel_pcap.py's, spread over peers."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from bench_tunnel_pcap import EPOCH, PCAP_MAC, PEER_MAC, ipv4, pcap, udp  # noqa: E402

out, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
exe = sys.argv[4] if len(sys.argv) > 4 else None

frames = []


def site(p):
    return [10, 100 + p // 256, p % 256]


def remote(p):
    return [172, 16, (2 + p) >> 8, (2 + p) & 0xff]


for i in range(1024):
    p = i % n
    back = ipv4(site(p) + [1 + i % 250], [10, 10, 1, 10], 17, udp(5000, 1024 + i, bytes(18)), i)
    # Version 3 data, UNORDERED on path 0, key 0 (in clear), lane 0, the epoch, then the lane
    # and path sequence numbers and the send time.
    header = bytes([0x30, 0x10, 0, 0]) + (0).to_bytes(2, 'big') + EPOCH.to_bytes(2, 'big') \
        + i.to_bytes(4, 'big') + i.to_bytes(4, 'big') + (1000 * i).to_bytes(4, 'big')
    outer = ipv4(remote(p), [172, 16, 0, 1], 17, udp(49152, 4800, header + back), i)
    frames.append(PCAP_MAC + PEER_MAC + b'\x08\x00' + outer)
pcap(f'{out}/decap-{n}.pcap', frames)

keys = f'{out}/keys'
os.makedirs(keys, exist_ok=True)


def key(name):
    path = f'{keys}/{name}.key'
    if not os.path.exists(path):
        subprocess.run([exe, 'genkey', path], check=True, capture_output=True)
    return subprocess.run([exe, 'pubkey', path], check=True, capture_output=True,
                          text=True).stdout.strip()


lines = [
    '[[interfaces]]', 'port = "lan"', 'address = "10.10.1.1/24"',
    '[[interfaces]]', 'port = "wan"', 'address = "172.16.0.1/16"',
    '[[neighbors]]', 'address = "10.10.1.10"', 'mac = "02:00:00:00:00:10"',
    '[control]', f'socket = "{out}/ctl.sock"', 'metrics = ""',
    '[tunnel]',
]
if mode == 'clear':
    lines += ['encryption = "none"', 'probe_interval = "10s"', 'bfd = { enabled = false }',
              'shaping = { enabled = false }']
else:
    key('hub')
    lines += [f'private_key = "{keys}/hub.key"']
for p in range(n):
    lines += ['[[tunnel.peers]]', f'name = "p{p}"', f'prefixes = ["{".".join(map(str, site(p)))}.0/24"]']
    if mode != 'clear':
        lines += [f'public_key = "{key(f"p{p}")}"']
    lines += ['[[tunnel.peers.paths]]', 'name = "a"', 'id = 0', 'interface = "wan"',
              f'remote = "{".".join(map(str, remote(p)))}"', 'rate = "1gbit"']
    if mode == 'clear':
        lines += ['[[neighbors]]', f'address = "{".".join(map(str, remote(p)))}"',
                  'mac = "02:00:00:00:00:22"']
with open(f'{out}/peers-{n}-{mode}.toml', 'w') as f:
    f.write('\n'.join(lines) + '\n')
if mode == 'clear':
    added = []
    for p in range(1, n):
        added += ['[[peers]]', f'name = "p{p}"', f'prefixes = ["{".".join(map(str, site(p)))}.0/24"]',
                  '[[peers.paths]]', 'name = "a"', 'id = 0', 'interface = "wan"',
                  f'remote = "{".".join(map(str, remote(p)))}"', 'rate = "1gbit"']
    with open(f'{out}/add-{n}.toml', 'w') as f:
        f.write('\n'.join(added) + '\n')
