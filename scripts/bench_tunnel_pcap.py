"""Writes the tunnel benchmark's input pcaps:
  encap.pcap: 1024 distinct 64 B UDP/IPv4 frames from a LAN host to the peer
              site (10.20.x.y), into the lan port;
  decap.pcap: 1024 tunnel packets from the peer (10.10.2.2 -> 10.10.2.1:4800)
              on path 0, lane 0, UNORDERED (delivered at once, as per-flow
              schedulers send them), each carrying a 64 B-frame's IPv4/UDP
              packet from 10.20.x.y to the LAN host 10.10.1.10, into the wan
              port.
Byte layout: docs/wire-format.md."""
import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def ipv4(src, dst, proto, payload, ident, ttl=64):
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), ident, 0, ttl, proto, 0,
                     bytes(src), bytes(dst))
    return ip[:10] + struct.pack('!H', csum(ip)) + ip[12:] + payload


def udp(sport, dport, payload):
    return struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload


def pcap(path, frames):
    with open(path, 'wb') as out:
        out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, f in enumerate(frames):
            out.write(struct.pack('<IIII', 0, i, len(f), len(f)) + f)


# net_pcap numbers its own devices for their MACs (02:70:63:61:70:<n>); each run here
# has one pcap port, the source, so it is always :00.
PCAP_MAC = bytes([0x02, 0x70, 0x63, 0x61, 0x70, 0x00])
HOST_MAC = bytes([2, 0, 0, 0, 0, 0x10])
PEER_MAC = bytes([2, 0, 0, 0, 0, 0x22])
EPOCH = 0x5151

if __name__ == '__main__':
    out_dir = sys.argv[1]
    encap, decap = [], []
    for i in range(1024):
        inner = ipv4([10, 10, 1, 10], [10, 20, i >> 8, i & 0xff], 17, udp(1024 + i, 5000, bytes(18)), i)
        encap.append(PCAP_MAC + HOST_MAC + b'\x08\x00' + inner)
        back = ipv4([10, 20, i >> 8, i & 0xff], [10, 10, 1, 10], 17, udp(5000, 1024 + i, bytes(18)), i)
        # Version 3, type 0 (data); flags UNORDERED and path 0; key 0 (in clear); lane 0;
        # epoch; lane sequence (the mark of an unordered packet); path sequence; send time.
        header = struct.pack('!BBHHHIII', 0x30, 0x10, 0, 0, EPOCH, i, i, 1000 * i)
        outer = ipv4([10, 10, 2, 2], [10, 10, 2, 1], 17, udp(49152, 4800, header + back), i)
        decap.append(PCAP_MAC + PEER_MAC + b'\x08\x00' + outer)
    pcap(out_dir + '/encap.pcap', encap)
    pcap(out_dir + '/decap.pcap', decap)
