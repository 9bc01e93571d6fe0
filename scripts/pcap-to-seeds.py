#!/usr/bin/env python3
"""pcap-to-seeds.py: split a classic pcap (as moat --pcap writes it) into fuzz seed files.

Usage: pcap-to-seeds.py PCAP OUTDIR --target ingress|vnet_frame [--prefix NAME]
                        [--all-directions] [--gateway-mac MAC] [--max N]

One file per Ethernet frame, named PREFIX-NNN-<what>, skipping frames whose bytes were
already written (so a capture with a thousand identical ACKs gives one seed). By default
only frames sent by the guest are kept (Ethernet source != the gateway MAC): they are what
the ingress path parses. For --target ingress each frame is written twice, as the target
reads an input twice: the frame itself, and (NAME.l3) the network-layer packet behind one
selector byte (0 IPv4, 1 IPv6, 2 ARP; fuzz/ingress.cc). For --target vnet_frame the frame
gets the selector byte 0 and a 10-byte virtio-net header with no offloads in front
(fuzz/vnet_frame.cc). Python standard library only.
"""
import argparse
import hashlib
import os
import struct
import sys

GATEWAY_MAC = "02:6d:6f:00:00:01"  # SPEC R-ADDR-1 default
L3_SELECTOR = {0x0800: 0, 0x86DD: 1, 0x0806: 2}


def die(msg):
    """Bad input (a file that is not a pcap, a bad flag value): exit 2, naming it."""
    print(msg, file=sys.stderr)
    sys.exit(2)


def frames(path):
    """Yields (index, bytes) of each record of a classic pcap with LINKTYPE_ETHERNET."""
    try:
        f = open(path, "rb")
    except OSError as e:
        die(f"pcap-to-seeds: {path}: {e.strerror}")
    with f:
        head = f.read(24)
        if len(head) != 24:
            die(f"pcap-to-seeds: {path}: not a pcap file (short header)")
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            e = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            e = ">"
        else:
            die(f"pcap-to-seeds: {path}: not a classic pcap (magic {magic.hex()}; pcapng is not read)")
        linktype = struct.unpack(e + "I", head[20:24])[0] & 0x0FFFFFFF
        if linktype != 1:
            die(f"pcap-to-seeds: {path}: link type {linktype}, want 1 (Ethernet)")
        i = 0
        while True:
            rec = f.read(16)
            if not rec:
                return
            if len(rec) != 16:
                die(f"pcap-to-seeds: {path}: truncated record header after {i} frames")
            _, _, incl, orig = struct.unpack(e + "IIII", rec)
            if incl > 262144:
                die(f"pcap-to-seeds: {path}: record {i} claims {incl} bytes")
            data = f.read(incl)
            if len(data) != incl:
                die(f"pcap-to-seeds: {path}: truncated record {i}")
            yield i, data
            i += 1


def l4_kind(proto, l4):
    """tcp-syn / tcp-data / tcp-fin / tcp-rst / tcp-ack, udp-PORT, or the protocol name."""
    if proto == 6 and len(l4) >= 20:
        flags, off = l4[13], (l4[12] >> 4) * 4
        if flags & 0x04:
            return "tcp-rst"
        if flags & 0x02:
            return "tcp-syn"
        if flags & 0x01:
            return "tcp-fin"
        return "tcp-data" if len(l4) > off else "tcp-ack"
    if proto == 17 and len(l4) >= 8:
        return "udp-%d" % struct.unpack("!H", l4[2:4])[0]
    return {1: "icmp", 58: "icmpv6", 0: "hbh", 44: "frag"}.get(proto, str(proto))


def describe(frame):
    """A short name for a frame (and its kind for --per-kind): arp, ipv4-tcp-syn, ..."""
    if len(frame) < 14:
        return "runt"
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x0806:
        return "arp"
    if et == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 15) * 4
        return "ipv4-" + l4_kind(frame[23], frame[14 + ihl:])
    if et == 0x86DD and len(frame) >= 54:
        return "ipv6-" + l4_kind(frame[20], frame[54:])
    return f"type{et:04x}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pcap")
    ap.add_argument("outdir")
    ap.add_argument("--target", required=True, choices=["ingress", "vnet_frame"])
    ap.add_argument("--prefix", default="pcap")
    ap.add_argument("--all-directions", action="store_true", help="keep frames moat sent too")
    ap.add_argument("--gateway-mac", default=GATEWAY_MAC)
    ap.add_argument("--max", type=int, default=40, help="at most this many frames (default 40)")
    ap.add_argument("--per-kind", type=int, default=2,
                    help="at most this many frames of one kind, e.g. ipv4-tcp-syn (default 2)")
    a = ap.parse_args()
    try:
        gw = bytes(int(x, 16) for x in a.gateway_mac.split(":"))
        if len(gw) != 6:
            raise ValueError
    except ValueError:
        print(f"pcap-to-seeds: --gateway-mac: '{a.gateway_mac}' is not a MAC address", file=sys.stderr)
        return 2
    os.makedirs(a.outdir, exist_ok=True)
    seen = set()
    kinds = {}
    written = 0
    for i, fr in frames(a.pcap):
        if written >= a.max:
            break
        if len(fr) < 14:
            continue
        if not a.all_directions and fr[6:12] == gw:
            continue
        digest = hashlib.sha1(fr).digest()
        if digest in seen:
            continue
        seen.add(digest)
        kind = describe(fr)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kinds[kind] > a.per_kind:
            continue
        name = os.path.join(a.outdir, f"{a.prefix}-{i:03d}-{kind}")
        if a.target == "ingress":
            with open(name, "wb") as f:
                f.write(fr)
            sel = L3_SELECTOR.get(struct.unpack("!H", fr[12:14])[0])
            if sel is not None:
                with open(name + ".l3", "wb") as f:
                    f.write(bytes([sel]) + fr[14:])
        else:
            with open(name, "wb") as f:
                f.write(b"\x00" + bytes(10) + fr)
        written += 1
    print(f"pcap-to-seeds: {written} frames from {a.pcap} into {a.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
