"""Writes the benchmark's input pcap: 1024 distinct UDP/IPv4 frames from a LAN
host (10.10.1.10) routed by the appliance (to 10.20.x.y, via the lan port's
MAC: net_pcap port 0's). argv: output file, and optionally the IPv4 packet's
size (46 by default: a 64 B frame with its FCS; the encrypted tunnel's
benchmark also uses 1400), and `ipv6` for 1024 UDP/IPv6 frames instead
(fd00:10:1::10 to fd00:20:0:x::y, the smallest: a 66 B frame with its FCS)."""
import struct
import sys


def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


dst = bytes([0x02, 0x70, 0x63, 0x61, 0x70, 0x00])  # net_pcap port 0
src = bytes([2, 0, 0, 0, 0, 0x10])
size = int(sys.argv[2]) if len(sys.argv) > 2 else 46
ipv6 = len(sys.argv) > 3 and sys.argv[3] == 'ipv6'
if ipv6:
    with open(sys.argv[1], 'wb') as out:
        out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        src6 = bytes.fromhex('fd000010000100000000000000000010')
        for i in range(1024):
            dst6 = bytes.fromhex('fd000020') + struct.pack('!I', i >> 8) + bytes(7) + bytes([i & 0xff])
            udp = struct.pack('!HHHH', 1024 + i, 5000, 8, 0)
            # UDP over IPv6 needs its checksum (RFC 8200 8.1).
            pseudo = src6 + dst6 + struct.pack('!IxxxB', len(udp), 17)
            udp = udp[:6] + struct.pack('!H', csum(pseudo + udp) or 0xffff)
            ip = struct.pack('!IHBB', 6 << 28, len(udp), 17, 64) + src6 + dst6
            frame = dst + src + b'\x86\xdd' + ip + udp
            out.write(struct.pack('<IIII', 0, i, len(frame), len(frame)) + frame)
    sys.exit(0)
with open(sys.argv[1], 'wb') as out:
    out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(1024):
        payload = bytes(size - 28)
        udp = struct.pack('!HHHH', 1024 + i, 5000, 8 + len(payload), 0) + payload
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                         bytes([10, 10, 1, 10]), bytes([10, 20, i >> 8, i & 0xff]))
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        frame = dst + src + b'\x08\x00' + ip + udp
        out.write(struct.pack('<IIII', 0, i, len(frame), len(frame)) + frame)
