#!/usr/bin/env python3
"""Sends COUNT MSG_ZEROCOPY messages and counts, from its own error queue, how many the kernel
reported copied (SO_EE_CODE_ZEROCOPY_COPIED): the sender's side of watch's tests
(tests/guest/scenarios/watch.rs). Prints one JSON line when every completion is in:
  {"pid": P, "socket": INODE, "sends": N, "completions": N, "copied": N, "notifications": N}
  --proto udp|tcp     UDP datagrams, or a TCP stream (connect first)
  --timestamping      SO_TIMESTAMPING with SOF_TIMESTAMPING_TX_SOFTWARE|SOFTWARE|OPT_ID
                      (and OPT_TSONLY with --tsonly): the timestamp clones are read and dropped
  --listen            bind a UDP socket on TARGET:PORT first and never read it (local delivery
                      without an ICMP port unreachable)
  --channels N        QEMU multifd's pattern (TCP): a main socket that sends without
                      MSG_ZEROCOPY, and N sockets that send with it, to the same peer, in turn;
                      COUNT sends per channel. Prints {"pid", "main": INODE, "channels": [per
                      socket as above]}
  --hold              after printing, keep the socket open until stdin closes (so a watcher
                      can still find the socket's holder)
  --ready FILE        write the socket's inode to FILE, then wait for FILE.go before sending
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

SO_ZEROCOPY = 60
SO_TIMESTAMPING = 37
MSG_ZEROCOPY = 0x4000000
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_ZEROCOPY = 5
SO_EE_CODE_ZEROCOPY_COPIED = 1
TS_TX_SOFTWARE = 1 << 1
TS_SOFTWARE = 1 << 4
TS_OPT_ID = 1 << 7
TS_OPT_TSONLY = 1 << 11


def drain(sock, state, block):
    """Reads the error queue: zerocopy ranges are counted, timestamp clones dropped."""
    while True:
        if block:
            # The error queue shows as POLLERR (select's sets never show it).
            p = select.poll()
            p.register(sock, 0)
            if not p.poll(200):
                return
        try:
            _, anc, _, _ = sock.recvmsg(256, 1024, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        for level, kind, data in anc:
            if len(data) < 16 or kind not in (11, 25):  # IP_RECVERR, IPV6_RECVERR
                continue
            _errno, origin, _t, code, _pad, _info, _data = struct.unpack("=IBBBBII", data[:16])
            if origin != SO_EE_ORIGIN_ZEROCOPY:
                continue
            lo, hi = _info, _data
            n = (hi - lo + 1) & 0xFFFFFFFF
            state["notifications"] += 1
            state["completions"] += n
            if code & SO_EE_CODE_ZEROCOPY_COPIED:
                state["copied"] += n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--target", default="198.18.0.2")
    ap.add_argument("--port", type=int, default=9)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1400)
    ap.add_argument("--timestamping", action="store_true")
    ap.add_argument("--tsonly", action="store_true")
    ap.add_argument("--listen", action="store_true")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--channels", type=int, default=0)
    ap.add_argument("--ready")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    family = socket.AF_INET6 if ":" in a.target else socket.AF_INET
    kind = socket.SOCK_STREAM if a.proto == "tcp" or a.channels else socket.SOCK_DGRAM
    if a.listen:
        sink = socket.socket(family, socket.SOCK_DGRAM)
        sink.bind((a.target, a.port))
    main_sock = None
    if a.channels:
        main_sock = socket.socket(family, kind)
        main_sock.connect((a.target, a.port))
    socks = []
    for _ in range(max(a.channels, 1)):
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
        if a.timestamping:
            flags = TS_TX_SOFTWARE | TS_SOFTWARE | TS_OPT_ID
            if a.tsonly:
                flags |= TS_OPT_TSONLY
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
        sock.connect((a.target, a.port))
        socks.append(sock)
    inode = os.fstat(socks[0].fileno()).st_ino
    if a.ready:
        with open(a.ready + ".tmp", "w") as f:
            f.write(f"{inode}\n")
        os.rename(a.ready + ".tmp", a.ready)
        deadline = time.time() + a.timeout
        while not os.path.exists(a.ready + ".go"):
            if time.time() > deadline:
                sys.exit("no go file")
            time.sleep(0.05)
    states = [{"notifications": 0, "completions": 0, "copied": 0, "sends": 0} for _ in socks]
    payload = b"z" * a.size
    deadline = time.time() + a.timeout
    start = time.time()
    while any(st["sends"] < a.count for st in states) and time.time() < deadline:
        for sock, st in zip(socks, states):
            if st["sends"] >= a.count:
                continue
            if main_sock is not None:
                main_sock.send(payload[:64])
            try:
                sock.send(payload, MSG_ZEROCOPY)
                st["sends"] += 1
            except (BlockingIOError, InterruptedError):
                drain(sock, st, True)
            except OSError as e:
                if e.errno == 105:  # ENOBUFS: optmem full until completions are read
                    drain(sock, st, True)
                else:
                    raise
            if st["sends"] % 64 == 0:
                drain(sock, st, False)
    # Every completion, or none for 3 s (a kernel that reports none).
    for sock, st in zip(socks, states):
        quiet = time.time()
        while st["completions"] < st["sends"] and time.time() < deadline and time.time() - quiet < 3:
            before = st["completions"]
            drain(sock, st, True)
            if st["completions"] != before:
                quiet = time.time()
    seconds = round(time.time() - start, 2)
    rows = [{"socket": os.fstat(s.fileno()).st_ino, **st} for s, st in zip(socks, states)]
    if a.channels:
        out = {"pid": os.getpid(), "main": os.fstat(main_sock.fileno()).st_ino, "channels": rows,
               "seconds": seconds}
    else:
        out = {"pid": os.getpid(), **rows[0], "seconds": seconds}
    print(json.dumps(out), flush=True)
    if a.hold:
        sys.stdin.read()


if __name__ == "__main__":
    main()
