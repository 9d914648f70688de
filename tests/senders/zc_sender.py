#!/usr/bin/env python3
"""A MSG_ZEROCOPY sender for zcdoctor's privileged tests (tests/process.rs, tests/path/pid.rs).

Sends UDP datagrams to TARGET (default 198.18.0.2:9) with MSG_ZEROCOPY, forever, until killed.
  --zerocopy on|off   set SO_ZEROCOPY on the socket first (off: MSG_ZEROCOPY is ignored)
  --drain yes|no      read completions from the error queue (no: they pile up in optmem)
  --family 4|6        IPv4 or IPv6 socket
  --alternate ADDR    send every other datagram to ADDR instead (through a slower device, so
                      completions arrive out of order and the kernel cannot merge them)
  --status FILE       also write READY / ENOBUFS lines to FILE
  --bind-device DEV   SO_BINDTODEVICE the socket first (a VRF: its table routes the sends)
Prints READY once it has sent, ENOBUFS (with its own SO_MEMINFO optmem) the first time a send
fails with ENOBUFS, and after that sleeps without touching the socket.
"""
import argparse
import errno
import socket
import struct
import sys
import time

SO_ZEROCOPY = 60
SO_MEMINFO = 55
MSG_ZEROCOPY = 0x4000000
MSG_ERRQUEUE = 0x2000
SK_MEMINFO_OPTMEM = 6


def optmem(sock):
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 9 * 4)
    return struct.unpack("9I", raw[:36])[SK_MEMINFO_OPTMEM]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zerocopy", choices=["on", "off"], default="on")
    ap.add_argument("--drain", choices=["yes", "no"], default="yes")
    ap.add_argument("--family", choices=["4", "6"], default="4")
    ap.add_argument("--target", default="198.18.0.2")
    ap.add_argument("--port", type=int, default=9)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--connect", action="store_true", help="connect() the socket")
    ap.add_argument("--alternate")
    ap.add_argument("--status")
    ap.add_argument("--bind-device")
    args = ap.parse_args()

    fam = socket.AF_INET6 if args.family == "6" else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if args.bind_device:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.bind_device.encode())
    if args.zerocopy == "on":
        s.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    dest = (args.target, args.port)
    if args.connect:
        s.connect(dest)
    payload = bytes(args.size)
    other = (args.alternate, args.port) if args.alternate else dest

    def say(line):
        print(line, flush=True)
        if args.status:
            with open(args.status, "a") as f:
                f.write(line + "\n")

    sent = 0
    ready = False
    while True:
        try:
            if args.connect:
                s.send(payload, MSG_ZEROCOPY)
            else:
                s.sendto(payload, MSG_ZEROCOPY, other if sent % 2 else dest)
            sent += 1
        except OSError as e:
            if e.errno == errno.ENOBUFS and args.drain == "no":
                say(f"ENOBUFS after {sent} sends; optmem {optmem(s)}")
                while True:
                    time.sleep(3600)
            if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                raise
        if args.drain == "yes":
            while True:
                try:
                    s.recvmsg(0, 128, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
        if not ready and sent >= 4:
            say("READY")
            ready = True
        if args.drain == "yes" or args.zerocopy == "off":
            time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
