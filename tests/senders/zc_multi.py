#!/usr/bin/env python3
"""A process with several MSG_ZEROCOPY destinations, for zcdoctor's privileged tests
(tests/path/): one connected UDP socket with SO_ZEROCOPY per --peer ADDR[,mark=N][,dev=NAME]
(repeat the option; the same spec twice gives two sockets; mark sets SO_MARK, dev
SO_BINDTODEVICE, both before connect()), sending 1400-byte datagrams (under the MTU: no fragmentation copy) to port 9 in turn,
forever, until killed.

It drains every socket's error queue and counts what the kernel answered, per peer: completions
and those flagged SO_EE_CODE_ZEROCOPY_COPIED, per peer spec. --counts FILE is rewritten (atomically) after each
round once every peer has completions, as JSON {"PEER": {"completions": N, "copied": M}}.
Sends refused by an ICMP error from a local peer (ECONNREFUSED) are retried on the next round.
"""
import argparse
import errno
import json
import os
import socket
import struct
import sys
import time

SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_ZEROCOPY = 5
SO_EE_CODE_ZEROCOPY_COPIED = 1
RECVERR = {(socket.IPPROTO_IP, 11), (socket.IPPROTO_IPV6, 25)}


def drain(sock, count):
    """Reads every queued notification of `sock` into count = [completions, copied]."""
    while True:
        try:
            _, anc, _, _ = sock.recvmsg(0, 256, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        for level, kind, data in anc:
            if (level, kind) not in RECVERR or len(data) < 16:
                continue
            _, origin, _, code, _, lo, hi = struct.unpack("=IBBBBII", data[:16])
            if origin != SO_EE_ORIGIN_ZEROCOPY:
                continue
            n = (hi - lo + 1) & 0xFFFFFFFF
            count[0] += n
            if code & SO_EE_CODE_ZEROCOPY_COPIED:
                count[1] += n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", action="append", required=True)
    ap.add_argument("--port", type=int, default=9)
    ap.add_argument("--size", type=int, default=1400)
    ap.add_argument("--counts", required=True)
    args = ap.parse_args()

    socks = []
    for spec in args.peer:
        addr, *opts = spec.split(",")
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
        for opt in opts:
            key, value = opt.split("=", 1)
            if key == "mark":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, int(value, 0))
            elif key == "dev":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, value.encode())
            else:
                raise SystemExit(f"unknown peer option {key}")
        s.connect((addr, args.port))
        socks.append((spec, s))
    counts = {peer: [0, 0] for peer in args.peer}
    payload = bytes(args.size)
    while True:
        for peer, s in socks:
            try:
                s.send(payload, MSG_ZEROCOPY)
            except OSError as e:
                if e.errno not in (errno.ECONNREFUSED, errno.ENOBUFS, errno.EAGAIN):
                    raise
            drain(s, counts[peer])
        if all(c[0] > 0 for c in counts.values()):
            tmp = args.counts + ".tmp"
            with open(tmp, "w") as f:
                json.dump({p: {"completions": c[0], "copied": c[1]} for p, c in counts.items()}, f)
            os.rename(tmp, args.counts)
        time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main())
